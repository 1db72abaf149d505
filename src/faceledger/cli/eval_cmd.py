"""``faceledger eval pairs | identify | impostors | cluster``: measured error rates, as JSON.

Settings come from the root callback (``ctx.obj``, built once from FACELEDGER_* and the root
options); a command run without it (e.g. the sub-app alone) uses ``Settings()`` defaults.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from faceledger.cache import TemplateCache, open_cache
from faceledger.cli.output import console, err_console, guarded, progress_bar
from faceledger.config import Settings
from faceledger.errors import CalibrationError
from faceledger.evaluate.clustering import DEFAULT_FMR as DEFAULT_CLUSTER_FMR
from faceledger.evaluate.clustering import run_clustering
from faceledger.evaluate.identify import run_identify
from faceledger.evaluate.impostors import run_impostors
from faceledger.evaluate.jsonio import dumps, write_json
from faceledger.evaluate.pairs import run_pairs
from faceledger.evaluate.protocols import read_image_list, read_labels, read_pairs
from faceledger.evaluate.report import (
    RunInfo,
    identify_html,
    impostors_html,
    pairs_html,
    write_html,
)
from faceledger.gallery.evaluation import GallerySearch
from faceledger.models import ModelRegistry
from faceledger.version import __version__

eval_app = typer.Typer(
    name="eval",
    help="Measure error rates on a protocol: 1:1 pairs, open-set 1:N, false matches by group.",
    no_args_is_help=True,
)


JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Write the results as JSON to this file ('-' for stdout)."),
]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", help="Write a self-contained HTML report here.")
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(help="Report per-group figures at this score threshold instead."),
]
CacheOpt = Annotated[
    bool, typer.Option(help="Reuse templates cached by image hash under the data dir.")
]


def _settings(ctx: typer.Context) -> Settings:
    obj = ctx.obj
    if isinstance(obj, Settings):
        return obj
    if ctx.parent is not None and isinstance(ctx.parent.obj, Settings):
        return ctx.parent.obj
    return Settings()


def _cache(settings: Settings, enabled: bool) -> TemplateCache | None:
    if not enabled:
        return None
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    return open_cache(settings, card.file("embedder").sha256)


def _calibrated(settings: Settings, target_fmr: float | None) -> tuple[float, float] | None:
    """(target, threshold) from the model card's calibration table, if it has one."""
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    target = target_fmr if target_fmr is not None else settings.default_fmr
    if card.calibration is None:
        return None
    try:
        return target, card.calibration.threshold_for(target)
    except CalibrationError:
        return None


def _run_info(ctx: typer.Context, settings: Settings, datasets: tuple[str, ...]) -> RunInfo:
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    words: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None or isinstance(value, bool):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if param.param_type_name == "argument":
                words.append(str(v))
            else:
                words += [param.opts[0], str(v)]
    params = shlex.join(words)
    cal = card.calibration
    return RunInfo(
        command=f"faceledger eval {ctx.info_name} {params}".strip(),
        datasets=datasets,
        model_id=card.id,
        model_name=card.name,
        model_version=card.version,
        calibration=(cal.source or "present") if cal else "none",
        settings={
            "detector": settings.detector,
            "face selection": settings.face_selection,
            "flip average": str(card.flip_average),
        },
        version=__version__,
    )


def _emit(data: dict[str, Any], json_out: Path | None) -> Console:
    """Write JSON; return the console for the human summary (stderr when JSON is on stdout)."""
    if json_out is not None and str(json_out) == "-":
        sys.stdout.write(dumps(data))
        return err_console
    if json_out is not None:
        write_json(data, json_out)
    return console


def _rate(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.2f}%" if pct else f"{x:.3g}"


@eval_app.command("pairs")
def pairs(
    ctx: typer.Context,
    pairs_csv: Annotated[Path, typer.Argument(help="Pairs CSV: a,b,same[,group_a,group_b].")],
    folds: Annotated[
        int, typer.Option(help="k-fold accuracy over N contiguous folds in file order (0: off).")
    ] = 10,
    json_out: JsonOpt = None,
    report: ReportOpt = None,
    fmr: Annotated[
        float | None,
        typer.Option(
            help="Target FMR of the one threshold for per-group figures "
            "(default: the settings' default FMR)."
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    cache: CacheOpt = True,
) -> None:
    """1:1 verification: ROC/DET, EER, FNMR at FMR 1e-2..1e-5, k-fold accuracy, groups."""
    settings = _settings(ctx)

    def run() -> None:
        protocol = read_pairs(pairs_csv)
        images = protocol.images()
        store = _cache(settings, cache)
        with progress_bar("embedding", len(images)) as advance:
            ev = run_pairs(
                protocol,
                settings,
                on_done=lambda _o: advance(),
                cache=store,
                folds=folds or None,
                target_fmr=fmr,
                threshold=threshold,
                calibrated=_calibrated(settings, fmr),
            )
        data = ev.to_json()
        out = _emit(data, json_out)
        if report is not None:
            write_html(pairs_html(ev, _run_info(ctx, settings, (str(pairs_csv),))), report)
        table = Table(title=f"{pairs_csv}: {data['pairs']:,} pairs")
        for col in ("genuine", "impostor", "no face", "EER", "k-fold accuracy"):
            table.add_column(col, justify="right")
        f = data["folds"]
        table.add_row(
            f"{data['genuine']:,}",
            f"{data['impostor']:,}",
            f"{data['no_face']:,}",
            _rate(data["eer"], pct=True),
            f"{100 * f['accuracy_mean']:.2f}% ± {100 * f['accuracy_std']:.2f}" if f else "—",
        )
        out.print(table)
        ops = Table(title="FNMR at FMR")
        for col in ("target FMR", "threshold", "FMR", "FNMR", "FNMR 95% CI"):
            ops.add_column(col, justify="right")
        for key, op in data["fmr_operating_points"].items():
            if op["measurable"]:
                ci = op["fnmr_ci"]
                ops.add_row(
                    key,
                    f"{op['threshold']:.4f}",
                    _rate(op["fmr"]),
                    _rate(op["fnmr"], pct=True),
                    f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—",
                )
            else:
                ops.add_row(key, "not measurable", op["reason"], "", "")
        out.print(ops)
        if data["groups"]:
            th = data["threshold"]
            gt = Table(title=f"per group at threshold {th['value']:.4f} ({th['rule']})")
            for col in ("group", "genuine", "impostor", "FMR", "FNMR"):
                gt.add_column(col, justify="right")
            rows = [*data["groups"].items(), ("cross-group", data["cross_group"])]
            for name, g in rows:
                gt.add_row(
                    name,
                    f"{g['genuine']:,}",
                    f"{g['impostor']:,}",
                    _rate(g["fmr"]),
                    _rate(g["fnmr"], pct=True),
                )
            out.print(gt)
            d = data["differential"]
            out.print(
                f"FMR differential (max/min): {_rate(d['fmr']['ratio'])}; "
                f"FNMR differential: {_rate(d['fnmr']['ratio'])}"
            )
        cal = data["calibration_check"]
        if cal:
            out.print(
                f"model card threshold {cal['threshold']:.4f} (declared FMR {cal['target_fmr']:g})"
                f": measured FMR {_rate(cal['measured_fmr'])}, FNMR {_rate(cal['fnmr'], pct=True)}"
            )

    guarded(run)


@eval_app.command("identify")
def identify(
    ctx: typer.Context,
    gallery: Annotated[Path, typer.Option(help="Gallery CSV: image,subject[,group].")],
    probes: Annotated[Path, typer.Option(help="Probes CSV: image,subject[,group].")],
    json_out: JsonOpt = None,
    report: ReportOpt = None,
    fpir: Annotated[
        float, typer.Option(help="Target FPIR of the threshold for per-group figures.")
    ] = 0.01,
    rank: Annotated[int, typer.Option(help="FNIR counts a mate as found within this rank.")] = 1,
    threshold: ThresholdOpt = None,
    cache: CacheOpt = True,
) -> None:
    """Open-set 1:N: CMC rank 1..20, FNIR at FPIR 0.1/0.01/0.003, per probe group."""
    settings = _settings(ctx)

    def run() -> None:
        g = read_image_list(gallery)
        p = read_image_list(probes)
        n_images = len({e.image for e in (*g.entries, *p.entries)})
        store = _cache(settings, cache)
        # the ranking `faceledger search` uses, and the thresholds it declares (one code path)
        search = GallerySearch(settings, settings.model_id)
        with progress_bar("embedding", n_images) as advance:
            ev = run_identify(
                g,
                p,
                settings,
                on_done=lambda _o: advance(),
                cache=store,
                search=search,
                rank=rank,
                target_fpir=fpir,
                threshold=threshold,
                declare=search.declare,
            )
        data = ev.to_json()
        out = _emit(data, json_out)
        if report is not None:
            info = _run_info(ctx, settings, (str(gallery), str(probes)))
            write_html(identify_html(ev, info), report)
        table = Table(
            title=f"{data['searches']:,} searches against {data['gallery_subjects']:,} "
            "enrolled subjects"
        )
        for col in ("mated", "non-mated", "no face", "rank-1", "rank-5", "rank-20"):
            table.add_column(col, justify="right")
        cmc = data["cmc"]
        table.add_row(
            f"{data['mated']:,}",
            f"{data['nonmated']:,}",
            f"{data['no_face']:,}",
            _rate(cmc[0] if cmc else None, pct=True),
            _rate(cmc[4] if len(cmc) > 4 else None, pct=True),
            _rate(cmc[19] if len(cmc) > 19 else None, pct=True),
        )
        out.print(table)
        ops = Table(title=f"FNIR at FPIR (rank {rank})")
        for col in ("target FPIR", "threshold", "FPIR", "FNIR"):
            ops.add_column(col, justify="right")
        for key, op in data["fpir_operating_points"].items():
            if op["measurable"]:
                ops.add_row(
                    key, f"{op['threshold']:.4f}", _rate(op["fpir"]), _rate(op["fnir"], pct=True)
                )
            else:
                ops.add_row(key, "not measurable", op["reason"], "")
        out.print(ops)
        if data["declared_operating_points"]:
            out.print(_declared_table(data, settings.default_fpir))
        if data["groups"]:
            gt = Table(title="per probe group")
            for col in ("group", "mated", "non-mated", "rank-1", "FNIR", "FPIR"):
                gt.add_column(col, justify="right")
            for name, r in data["groups"].items():
                gt.add_row(
                    name,
                    str(r["mated"]),
                    str(r["nonmated"]),
                    _rate(r["rank1"], pct=True),
                    _rate(r["fnir"], pct=True),
                    _rate(r["fpir"]),
                )
            out.print(gt)

    guarded(run)


def _declared_table(data: dict[str, Any], default_fpir: float) -> Table:
    """The thresholds `faceledger search` declares for this gallery, and what they measure."""
    points = list(data["declared_operating_points"].values())
    scores = "/".join(sorted({p["normalisation"] for p in points}))
    table = Table(
        title=f"thresholds `faceledger search` declares for {data['gallery_templates']:,} "
        f"templates ({scores} scores), measured here"
    )
    for col in ("declared", "threshold", "from", "measured", "95% CI", "ratio", "FNIR"):
        table.add_column(col, justify="right")
    for point in points:
        m = point["measured"]
        ci = m["fpir_ci"]
        declared = f"{point['declared_fpir']:g}"
        if point["declared_fpir"] == default_fpir:
            declared += " default"
        table.add_row(
            declared,
            f"{point['threshold']:.4f}" + (" *" if point["extrapolated"] else ""),
            point["source"],
            _rate(m["fpir"]),
            f"{ci[0]:.2g}-{ci[1]:.2g}" if ci else "—",
            _rate(point["measured_over_declared"]),
            _rate(m["fnir"], pct=True),
        )
    if any(p["extrapolated"] for p in points):
        table.caption = "* from the calibration's fitted tail, beyond its measured scores"
    return table


@eval_app.command("impostors")
def impostors(
    ctx: typer.Context,
    labels_csv: Annotated[
        Path,
        typer.Argument(help="Labels CSV: image,<label columns>; every row a different person."),
    ],
    group_column: Annotated[
        list[str] | None,
        typer.Option(help="Label column(s) to group by (default: every non-numeric column)."),
    ] = None,
    json_out: JsonOpt = None,
    report: ReportOpt = None,
    fmr: Annotated[
        float | None,
        typer.Option(
            help="Target FMR on all pairs that sets the threshold "
            "(default: the settings' default FMR)."
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    cache: CacheOpt = True,
) -> None:
    """False-match rate by group from every cross-image pair (same- vs cross-group)."""
    settings = _settings(ctx)

    def run() -> None:
        labels = read_labels(labels_csv)
        store = _cache(settings, cache)
        with progress_bar("embedding", len(labels.images)) as advance:
            ev = run_impostors(
                labels,
                settings,
                on_done=lambda _o: advance(),
                cache=store,
                group_columns=group_column,
                target_fmr=fmr,
                threshold=threshold,
            )
        data = ev.to_json()
        out = _emit(data, json_out)
        if report is not None:
            write_html(impostors_html(ev, _run_info(ctx, settings, (str(labels_csv),))), report)
        out.print(
            f"{data['impostor']:,} impostor pairs from {data['images_used']:,} images "
            f"({data['images'] - data['images_used']} without a face); threshold "
            f"{data['threshold']['value']:.4f} ({data['threshold']['rule']}), FMR {data['fmr']:.3g}"
        )
        for name, col in data["columns"].items():
            t = Table(title=f"by {name}")
            for c in ("group", "pairs", "false matches", "FMR", "mean score"):
                t.add_column(c, justify="right")
            for g, r in [*col["groups"].items(), ("cross-group", col["cross_group"])]:
                t.add_row(
                    g,
                    f"{r['pairs']:,}",
                    f"{r['false_matches']:,}",
                    _rate(r["fmr"]),
                    _rate(r["score_mean"]),
                )
            out.print(t)
            d = col["differential"]
            out.print(
                f"same-group / cross-group FMR: {_rate(col['same_to_cross_ratio'])}; "
                f"max/min group FMR: {_rate(d['ratio'])} ({d['max_group']} / {d['min_group']})"
            )

    guarded(run)


@eval_app.command("cluster")
def cluster(
    ctx: typer.Context,
    labels_csv: Annotated[
        Path, typer.Argument(help="Labels CSV: image,subject (one face per image).")
    ],
    json_out: JsonOpt = None,
    fmr: Annotated[
        float, typer.Option(help="Target FMR of the default's link threshold.")
    ] = DEFAULT_CLUSTER_FMR,
    cache: CacheOpt = True,
) -> None:
    """Clustering into identities: the default against the open tools' distance constants
    (pairwise and BCubed precision/recall/F1, clusters vs identities)."""
    settings = _settings(ctx)

    def run() -> None:
        labels = read_image_list(labels_csv)
        store = _cache(settings, cache)
        n_images = len({e.image for e in labels.entries})
        with progress_bar("embedding", n_images) as advance:
            ev = run_clustering(
                labels, settings, target_fmr=fmr, cache=store, on_done=lambda _o: advance()
            )
        out = _emit(ev.to_json(), json_out)
        table = Table(
            title=f"{labels_csv}: {ev.faces:,} faces of {ev.identities} identities "
            f"({ev.images - ev.faces} images without a face)"
        )
        table.add_column("setting", no_wrap=True)
        for col in ("clusters", "pairwise P", "R", "F1", "BCubed P", "R", "F"):
            table.add_column(col, justify="right")
        for r in ev.results:
            s = r.scores
            name = f"{r.name} (default)" if r.name == ev.default else r.name
            table.add_row(
                name,
                f"{s.clusters} / {s.identities}",
                *(
                    f"{v:.3f}"
                    for v in (
                        s.pairwise_precision,
                        s.pairwise_recall,
                        s.pairwise_f1,
                        s.bcubed_precision,
                        s.bcubed_recall,
                        s.bcubed_f1,
                    )
                ),
            )
        out.print(table)
        out.print(
            f"default: cosine >= {ev.threshold:.4f} at target FMR {ev.target_fmr:g} "
            "(model card calibration)"
        )

    guarded(run)
