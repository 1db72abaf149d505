"""One self-contained HTML report per evaluation: figures as embedded PNG, tables, plain notes.

The file needs nothing else (no scripts, fonts or network), so it can be mailed, archived next
to the JSON, or opened offline. Notes are written for someone choosing a threshold.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from faceledger.evaluate.identify import IdentifyEvaluation
from faceledger.evaluate.impostors import ImpostorsEvaluation
from faceledger.evaluate.metrics import NotMeasurable, VerifyOperatingPoint, rate_key
from faceledger.evaluate.openset import IdentOperatingPoint
from faceledger.evaluate.pairs import PairsEvaluation
from faceledger.evaluate.plots import (
    cmc_png,
    det_png,
    group_bars_png,
    group_histogram_png,
    histogram_png,
    matrix_png,
    roc_png,
)


@dataclass(frozen=True)
class RunInfo:
    """Provenance shown at the top of a report."""

    command: str
    datasets: tuple[str, ...]
    model_id: str
    model_name: str = ""
    model_version: str = ""
    calibration: str = "none"
    """Where the model card's calibration table came from, or ``none``."""
    settings: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    version: str = ""


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:640px}
.notes li{margin:.35em 0}.muted{color:#777}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _ci(ci: tuple[float, float] | None) -> str:
    return "—" if ci is None else f"[{ci[0]:.2g}, {ci[1]:.2g}]"


def _one_in(rate: float | None) -> str:
    if rate is None:
        return "—"
    if rate <= 0:
        return "none observed"
    return f"about 1 in {round(1 / rate):,}"


def _folds_text(folds: dict[str, float] | None) -> str:
    if not folds:
        return "—"
    mean, std = folds["accuracy_mean"], folds["accuracy_std"]
    return f"{100 * mean:.2f}% ± {100 * std:.2f} ({folds['n']:.0f} folds)"


def _figure(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    def cell(tag: str, k: int, v: object) -> str:
        cls = ' class="l"' if k < left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", k, v) for k, v in enumerate(r)) + "</tr>" for r in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _page(title: str, info: RunInfo, sections: Sequence[str]) -> str:
    prov = [
        ("command", info.command),
        ("data set", ", ".join(info.datasets)),
        ("model card", f"{info.model_id} {info.model_version} — {info.model_name}".strip()),
        ("calibration table", info.calibration),
        *[(k, v) for k, v in info.settings.items()],
        ("created", info.created),
        ("faceledger", info.version),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        + _table([], [(k, v) for k, v in prov if v], left=2)
        + "".join(sections)
        + "</body></html>\n"
    )


def _notes(items: Sequence[str]) -> str:
    return (
        "<h2>What these numbers mean for choosing a threshold</h2><ul class='notes'>"
        + "".join(f"<li>{_e(i)}</li>" for i in items)
        + "</ul>"
    )


# ---------------------------------------------------------------------------- pairs


def pairs_html(ev: PairsEvaluation, info: RunInfo) -> str:
    j = ev.to_json()
    ng, ni = j["genuine"], j["impostor"]
    marks: list[tuple[str, float, float]] = []
    rows: list[list[object]] = []
    for target, op in ev.operating.items():
        if isinstance(op, VerifyOperatingPoint):
            rows.append(
                [
                    rate_key(target),
                    _fmt(op.threshold, 5),
                    f"{op.false_matches:,}/{op.impostor:,}",
                    _fmt(op.fmr, 3),
                    _ci(op.fmr_ci),
                    _pct(op.fnmr),
                    _ci(op.fnmr_ci),
                ]
            )
            marks.append((f"FMR≤{rate_key(target)}", op.fmr, op.fnmr or 0.0))
        elif isinstance(op, NotMeasurable):
            rows.append([rate_key(target), "not measurable", op.reason, "", "", "", ""])
    summary = _table(
        [
            "pairs",
            "genuine",
            "impostor",
            "no face (pairs)",
            "EER",
            "EER threshold",
            "k-fold accuracy",
        ],
        [
            [
                f"{j['pairs']:,}",
                f"{ng:,}",
                f"{ni:,}",
                f"{j['no_face']:,}",
                _pct(j["eer"]),
                _fmt(j["eer_threshold"], 5),
                _folds_text(j["folds"]),
            ]
        ],
        left=0,
    )
    op_table = _table(
        ["target FMR", "threshold", "false matches", "FMR", "95% CI", "FNMR", "95% CI"], rows
    )
    thresholds = [
        (f"FMR≤{rate_key(t)}", op.threshold)
        for t, op in ev.operating.items()
        if isinstance(op, VerifyOperatingPoint)
    ]
    figs = [
        _figure(
            roc_png(ev.curve, marks),
            "ROC curve",
            "ROC: share of genuine pairs accepted against the false-match rate.",
        ),
        _figure(
            det_png(ev.curve, marks),
            "DET curve",
            "DET: both error rates on log axes; lower-left is better.",
        ),
        _figure(
            histogram_png(ev.genuine_scores, ev.impostor_scores, thresholds),
            "score histograms",
            "Score distributions; dashed lines are the thresholds in the table.",
        ),
    ]
    sections = [
        "<h2>Summary</h2>",
        summary,
        "<h2>FNMR at fixed false-match rates</h2>",
        op_table,
        "<h2>Plots</h2><div class='figs'>" + "".join(figs) + "</div>",
    ]
    cal = ev.calibration_check
    if cal is not None:
        sections += [
            "<h2>The model card's calibrated threshold on this data</h2>",
            _table(
                ["declared FMR", "threshold", "measured FMR", "95% CI", "FNMR", "95% CI"],
                [[rate_key(cal.target), _fmt(cal.threshold, 5), _fmt(cal.fmr, 3),
                  _ci(cal.fmr_ci), _pct(cal.fnmr), _ci(cal.fnmr_ci)]],
            ),
        ]  # fmt: skip
    if ev.groups is not None:
        g = ev.groups
        grows = [
            [
                name,
                f"{r.genuine:,}",
                f"{r.impostor:,}",
                _fmt(r.fmr, 3),
                _ci(r.fmr_ci),
                _pct(r.fnmr),
                _ci(r.fnmr_ci),
            ]
            for name, r in [*g.groups.items(), ("cross-group", g.cross_group)]
        ]
        d_fmr, d_fnmr = g.fmr_differential, g.fnmr_differential
        sections += [
            f"<h2>Per group at threshold {_fmt(g.threshold, 5)} "
            f"({_e(ev.threshold.rule if ev.threshold else '')})</h2>",
            _table(["group", "genuine", "impostor", "FMR", "95% CI", "FNMR", "95% CI"], grows),
            f"<p>FMR differential (max/min): <b>{_fmt(d_fmr.ratio, 3)}</b> "
            f"({_e(d_fmr.max_group)} vs {_e(d_fmr.min_group)}); FNMR differential: "
            f"<b>{_fmt(d_fnmr.ratio, 3)}</b> ({_e(d_fnmr.max_group)} vs "
            f"{_e(d_fnmr.min_group)}). A ratio is undefined (—) when the lowest rate is 0.</p>",
            "<div class='figs'>"
            + _figure(
                group_bars_png(
                    {k: {"FMR": v.fmr, "FNMR": v.fnmr} for k, v in g.groups.items()},
                    "Error rates per group",
                ),
                "per-group error rates",
                "FMR and FNMR of each group at the one threshold above.",
            )
            + "</div>",
        ]
    sections.append(_notes(pairs_notes(ev)))
    return _page("Verification (1:1) evaluation", info, sections)


def pairs_notes(ev: PairsEvaluation) -> list[str]:
    ni = int((~ev.same).sum())
    notes = [
        "A pair is accepted as the same person when its score is at or above the threshold. "
        "Raising the threshold lowers false matches (strangers accepted) and raises false "
        "non-matches (the right person refused): choose it by the false-match rate you can "
        "accept, then read the cost in refused genuine users.",
    ]
    for target, op in ev.operating.items():
        if isinstance(op, VerifyOperatingPoint):
            notes.append(
                f"At threshold {op.threshold:.4f} (target FMR {rate_key(target)}): strangers "
                f"were accepted in {op.false_matches} of {op.impostor:,} impostor pairs "
                f"({_one_in(op.fmr)}; the true rate is plausibly up to {op.fmr_ci[1]:.2g}), "
                f"and {_pct(op.fnmr)} of genuine pairs were refused."
            )
    if ni:
        notes.append(
            f"With {ni:,} impostor pairs, false-match rates below 1/{ni:,} "
            f"({1 / ni:.1g}) cannot be measured here and are reported as not measurable; "
            "nothing is extrapolated. Use a larger impostor set to calibrate stricter thresholds."
        )
    if ev.eer is not None:
        notes.append(
            f"The equal error rate ({_pct(ev.eer.value)}) summarises the model on this data; it "
            "is not a recommended operating point: most uses need far fewer false matches."
        )
    cal = ev.calibration_check
    if cal is not None:
        if cal.fmr_ci[0] > cal.target:
            verdict = "higher than declared: on data like this it lets more strangers through"
        elif cal.fmr_ci[1] < cal.target:
            verdict = "lower than declared: stricter than needed on data like this"
        else:
            verdict = "consistent with the declared rate"
        notes.append(
            f"The model card declares FMR {rate_key(cal.target)} at threshold "
            f"{cal.threshold:.4f}; on this data that threshold gives FMR {cal.fmr:.2g} "
            f"({verdict}). Calibrate on data like yours when they differ."
        )
    nf = int(ev.failed.sum())
    if nf:
        notes.append(
            f"{nf:,} pairs could not be compared (no usable face in an image); they count as "
            "non-matches, which raises FNMR for genuine pairs."
        )
    if ev.groups is not None and ev.groups.fmr_differential.max_group:
        d = ev.groups.fmr_differential
        notes.append(
            f"False matches are not spread evenly: {d.max_group} has the highest FMR "
            f"({_fmt(d.max_rate, 3)}) and {d.min_group} the lowest ({_fmt(d.min_rate, 3)}). "
            "A threshold set on everyone together protects the worst group less; "
            "`faceledger calibrate --worst-group` sets it so that every group meets the target."
        )
    notes.append(
        "These figures hold for images like the ones measured (camera, pose, quality, "
        "population). Measure on data like your own before relying on a threshold."
    )
    return notes


# ---------------------------------------------------------------------------- identify


def identify_html(ev: IdentifyEvaluation, info: RunInfo) -> str:
    j = ev.to_json()
    summary = _table(
        [
            "searches",
            "mated",
            "non-mated",
            "no face (probes)",
            "gallery subjects",
            "gallery images",
            "rank-1",
        ],
        [
            [
                f"{j['searches']:,}",
                f"{j['mated']:,}",
                f"{j['nonmated']:,}",
                f"{j['no_face']:,}",
                f"{j['gallery_subjects']:,}",
                f"{j['gallery_images']:,}",
                _pct(j["rank1"]),
            ]
        ],
        left=0,
    )
    rows: list[list[object]] = []
    for target, op in ev.operating.items():
        if isinstance(op, IdentOperatingPoint):
            rows.append(
                [
                    rate_key(target),
                    _fmt(op.threshold, 5),
                    f"{op.false_positives:,}/{op.nonmated:,}",
                    _fmt(op.fpir, 3),
                    _ci(op.fpir_ci),
                    _pct(op.fnir),
                    _ci(op.fnir_ci),
                ]
            )
        elif isinstance(op, NotMeasurable):
            rows.append([rate_key(target), "not measurable", op.reason, "", "", "", ""])
    declared_rows: list[list[object]] = [
        [
            f"{t:g}",
            _fmt(p.declared.threshold, 5) + (" (tail)" if p.declared.extrapolated else ""),
            p.declared.source,
            p.declared.normalisation,
            f"{p.measured.false_positives:,}/{p.measured.nonmated:,}",
            _fmt(p.measured.fpir, 4),
            _ci(p.measured.fpir_ci),
            _fmt(p.ratio, 2),
            _pct(p.measured.fnir),
        ]
        for t, p in ev.declared.items()
    ]
    cmc = ev.cmc or []
    cmc_rows = [[r, _pct(v)] for r, v in enumerate(cmc, 1) if r in (1, 2, 3, 5, 10, 20)]
    sections = [
        "<h2>Summary</h2>",
        summary,
        f"<h2>FNIR at fixed FPIR (mate within rank {ev.rank})</h2>",
        _table(
            ["target FPIR", "threshold", "false positives", "FPIR", "95% CI", "FNIR", "95% CI"],
            rows,
        ),
    ]
    if declared_rows:
        sections += [
            "<h2>Declared thresholds, measured</h2>",
            "<p>The thresholds <code>faceledger search</code> declares for these FPIRs over a "
            "gallery of this size (counted on the gallery's own members when it holds enough "
            "of them, else from the model card's calibration), and the FPIR measured at them "
            "on these probes (ratio: measured over declared).</p>",
            _table(
                [
                    "declared FPIR",
                    "threshold",
                    "from",
                    "scores",
                    "false positives",
                    "measured FPIR",
                    "95% CI",
                    "ratio",
                    "FNIR",
                ],
                declared_rows,
            ),
        ]
    sections += [
        "<h2>CMC</h2>",
        _table(["rank", "identification rate"], cmc_rows),
        "<div class='figs'>"
        + _figure(
            cmc_png(cmc),
            "CMC curve",
            "Share of mated searches with the mate at or above each rank, ignoring any threshold.",
        )
        + "</div>",
    ]
    if ev.groups:
        grows = [
            [
                name,
                g.mated,
                g.nonmated,
                _pct(g.rank1),
                _pct(g.at_threshold.fnir) if g.at_threshold else "—",
                _fmt(g.at_threshold.fpir, 3) if g.at_threshold else "—",
            ]
            for name, g in ev.groups.items()
        ]
        sections += [
            f"<h2>Per probe group at threshold {_fmt(ev.threshold, 5)} "
            f"({_e(ev.threshold_rule or 'none')})</h2>",
            _table(["group", "mated", "non-mated", "rank-1", "FNIR", "FPIR"], grows),
            "<div class='figs'>"
            + _figure(
                group_bars_png(
                    {
                        k: {
                            "rank-1 miss": None if g.rank1 is None else 1 - g.rank1,
                            "FNIR": g.at_threshold.fnir if g.at_threshold else None,
                            "FPIR": g.at_threshold.fpir if g.at_threshold else None,
                        }
                        for k, g in ev.groups.items()
                    },
                    "Error rates per probe group",
                ),
                "per-group identification errors",
                "Rank-1 misses, FNIR and FPIR per probe group at the threshold above.",
            )
            + "</div>",
        ]
    sections.append(_notes(identify_notes(ev)))
    return _page("Identification (1:N) evaluation", info, sections)


def identify_notes(ev: IdentifyEvaluation) -> list[str]:
    notes = [
        "In a 1:N search, a candidate is returned only if its score is at or above the "
        "threshold. FPIR is the share of searches for people who are NOT enrolled that still "
        "return someone: each one can put an innocent person on a candidate list.",
        f"FNIR is the share of searches for enrolled people whose mate is not returned within "
        f"rank {ev.rank} above the threshold. Rank-1 accuracy ignores the threshold and "
        "overstates what a thresholded system finds.",
    ]
    for op in ev.operating.values():
        if isinstance(op, IdentOperatingPoint):
            notes.append(
                f"At threshold {op.threshold:.4f}, {op.false_positives} of {op.nonmated:,} "
                f"non-enrolled searches returned a candidate (FPIR {_fmt(op.fpir, 3)}), and "
                f"{_pct(op.fnir)} of enrolled people were missed."
            )
    notes.append(
        "FPIR grows with the number of people enrolled: a threshold measured on this gallery "
        f"({ev.enrolled_subjects:,} subjects) gives more false positives on a larger one. "
        "Re-measure at your gallery's size."
    )
    if ev.subjects_without_template:
        notes.append(
            f"{ev.subjects_without_template} enrolled subjects have no usable gallery image; "
            "their searches count as misses."
        )
    return notes


# ---------------------------------------------------------------------------- impostors


def impostors_html(ev: ImpostorsEvaluation, info: RunInfo) -> str:
    j = ev.to_json()
    trows = [
        [k, _fmt(v, 5) if v is not None else "not measurable"]
        for k, v in j["fmr_thresholds"].items()
    ]
    sections = [
        "<h2>Summary</h2>",
        _table(
            ["images", "with a template", "impostor pairs", "threshold", "rule", "FMR"],
            [
                [
                    f"{j['images']:,}",
                    f"{j['images_used']:,}",
                    f"{j['impostor']:,}",
                    _fmt(ev.threshold, 5),
                    ev.threshold_rule,
                    _fmt(j["fmr"], 3),
                ]
            ],
            left=0,
        ),
        "<h2>Thresholds for target FMR on all pairs</h2>",
        _table(["target FMR", "threshold"], trows),
    ]
    for name, col in ev.columns.items():
        cj = j["columns"][name]
        grows = [
            [
                g,
                f"{r.images:,}",
                f"{r.pairs:,}",
                f"{r.false_matches:,}",
                _fmt(r.fmr, 3),
                _ci(r.fmr_ci),
                _fmt(r.score_mean, 4),
            ]
            for g, r in [*col.groups.items(), ("cross-group", col.cross_group)]
        ]
        sections += [
            f"<h2>By {_e(name)} at threshold {_fmt(ev.threshold, 5)}</h2>",
            _table(
                ["group", "images", "pairs", "false matches", "FMR", "95% CI", "mean score"], grows
            ),
            f"<p>Same-group FMR {_fmt(cj['same_group_fmr'], 3)} vs cross-group "
            f"{_fmt(col.cross_group.fmr, 3)} (ratio {_fmt(cj['same_to_cross_ratio'], 3)}); "
            f"highest/lowest group FMR: {_fmt(col.differential.ratio, 3)} "
            f"({_e(col.differential.max_group)} vs {_e(col.differential.min_group)}).</p>",
            "<div class='figs'>"
            + _figure(
                group_histogram_png(
                    col.scores_by_group,
                    col.cross_scores,
                    ev.threshold,
                    f"Impostor scores by {name}",
                ),
                f"impostor score distributions by {name}",
                "Same-group impostor pairs (solid) against cross-group ones (dotted); "
                "dashed line: threshold.",
            )
            + _figure(
                group_bars_png(
                    {k: {"FMR": v.fmr} for k, v in col.groups.items()},
                    f"FMR per {name} (same-group pairs)",
                ),
                f"FMR per {name}",
                "False-match rate of same-group impostor pairs.",
            )
            + _figure(
                matrix_png(col.matrix, f"FMR by pair of {name} groups"),
                f"FMR matrix by {name}",
                "FMR for impostor pairs of each combination of groups.",
            )
            + "</div>",
        ]
    sections.append(_notes(impostors_notes(ev)))
    return _page("False matches by group (impostor pairs)", info, sections)


def impostors_notes(ev: ImpostorsEvaluation) -> list[str]:
    overall = ev.to_json()["fmr"]
    notes = [
        "Every pair here is two different people, so every score at or above the threshold "
        "is a false match. The threshold was set on all pairs together.",
        "NIST IR 8280 found that impostor pairs of the same sex, age group and ethnicity score "
        "higher than mixed pairs: look-alike strangers come from one's own group. Same-group "
        "rates are the ones that matter when searching or verifying people of that group.",
    ]
    for name, col in ev.columns.items():
        d = col.differential
        if d.max_group and d.min_group and d.max_group != d.min_group:
            notes.append(
                f"By {name}: {d.max_group} pairs are falsely matched {_one_in(d.max_rate)}, "
                f"{d.min_group} pairs {_one_in(d.min_rate)}. A threshold giving FMR "
                f"{_fmt(overall, 2)} on everyone together gives a different rate to each group; "
                "`faceledger calibrate --worst-group` picks one that every group meets."
            )
    notes.append(
        "Groups in a data set differ in more than their label (age mix, children, image "
        "quality, duplicates). Before blaming a difference on the label, look at other columns "
        "too, e.g. `--group-column age` (numeric columns are grouped in age bands)."
    )
    notes.append(
        f"{len(ev.labels.images) - ev.images_used} images without a usable face were left out."
    )
    return notes


def write_html(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
