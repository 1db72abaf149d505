"""Matplotlib figures of evaluation results, rendered off-screen to PNG bytes.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly (no pyplot, no global state,
no display needed), so reports can be built in servers, workers and CI alike.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from faceledger.evaluate.metrics import ErrorCurve, Scores

_SIZE = (6.4, 4.2)
_DPI = 100
_GENUINE = "#1b7837"
_IMPOSTOR = "#b2182b"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _empty(fig: Figure, title: str, message: str) -> bytes:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _png(fig)


def roc_png(curve: ErrorCurve, marks: Sequence[tuple[str, float, float]] = ()) -> bytes:
    """True-match rate (1 - FNMR) against FMR on a log FMR axis; ``marks``: (label, fmr, fnmr)."""
    fig = Figure(figsize=_SIZE)
    if curve.genuine == 0 or curve.impostor == 0:
        return _empty(fig, "ROC", "needs genuine and impostor pairs")
    ax = fig.add_subplot()
    floor = 1.0 / curve.impostor
    x = np.maximum(curve.fmr, floor / 2)
    ax.step(x, 1.0 - curve.fnmr, where="post", color="#2166ac", lw=1.6)
    for label, fmr, fnmr in marks:
        ax.plot([max(fmr, floor / 2)], [1.0 - fnmr], "o", color="black", ms=4)
        ax.annotate(
            label,
            (max(fmr, floor / 2), 1.0 - fnmr),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 1.0)
    # zoom on the measurable range (FMR >= 1/impostors), where the curve carries information
    shown = 1.0 - curve.fnmr[curve.fmr >= floor]
    low = float(shown.min()) if shown.size else 0.0
    ax.set_ylim(max(0.0, low - 0.05 * max(1.0 - low, 0.2)), 1.0 + 0.01)
    ax.set_xlabel("false-match rate (FMR), log scale; left edge: below 1/impostor pairs")
    ax.set_ylabel("true-match rate (1 - FNMR)")
    ax.set_title("ROC")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def det_png(curve: ErrorCurve, marks: Sequence[tuple[str, float, float]] = ()) -> bytes:
    """FNMR against FMR, both on log axes; zero rates are drawn at half the smallest step."""
    fig = Figure(figsize=_SIZE)
    if curve.genuine == 0 or curve.impostor == 0:
        return _empty(fig, "DET", "needs genuine and impostor pairs")
    ax = fig.add_subplot()
    fx, fy = 0.5 / curve.impostor, 0.5 / curve.genuine
    ax.step(
        np.maximum(curve.fmr, fx), np.maximum(curve.fnmr, fy), where="post", color="#762a83", lw=1.6
    )
    for label, fmr, fnmr in marks:
        p = (max(fmr, fx), max(fnmr, fy))
        ax.plot([p[0]], [p[1]], "o", color="black", ms=4)
        ax.annotate(label, p, textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(fx, 1.0)
    ax.set_ylim(fy, 1.0)
    ax.set_xlabel("false-match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title("DET (zero rates drawn at the axis edge)")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def histogram_png(
    genuine: Scores,
    impostor: Scores,
    thresholds: Sequence[tuple[str, float]] = (),
    title: str = "Score distributions",
) -> bytes:
    """Densities of genuine and impostor scores (finite ones) with threshold lines."""
    fig = Figure(figsize=_SIZE)
    g = genuine[np.isfinite(genuine)]
    i = impostor[np.isfinite(impostor)]
    if g.size == 0 and i.size == 0:
        return _empty(fig, title, "no comparable pairs")
    ax = fig.add_subplot()
    both = np.concatenate((g, i))
    bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 60).tolist()
    if i.size:
        ax.hist(
            i, bins=bins, density=True, alpha=0.55, color=_IMPOSTOR, label=f"impostor ({i.size:,})"
        )
    if g.size:
        ax.hist(
            g, bins=bins, density=True, alpha=0.55, color=_GENUINE, label=f"genuine ({g.size:,})"
        )
    for label, t in thresholds:
        if np.isfinite(t):
            ax.axvline(t, color="black", ls="--", lw=1)
            ax.text(
                t,
                ax.get_ylim()[1] * 0.98,
                f"{label} ",
                fontsize=7,
                va="top",
                ha="right",
                rotation=90,
            )
    ax.set_xlabel("similarity score (higher = more alike)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def group_histogram_png(
    by_group: Mapping[str, Scores], cross: Scores, threshold: float, title: str
) -> bytes:
    """Impostor score densities per same-group bucket and for cross-group pairs."""
    fig = Figure(figsize=_SIZE)
    series = [(f"{k} / {k}", v) for k, v in by_group.items() if v.size]
    if cross.size:
        series.append(("cross-group", cross))
    if not series:
        return _empty(fig, title, "no labelled pairs")
    ax = fig.add_subplot()
    lo = min(float(v.min()) for _, v in series)
    hi = max(float(v.max()) for _, v in series)
    bins = np.linspace(lo, hi + 1e-9, 60).tolist()
    for name, v in series:
        ax.hist(
            v,
            bins=bins,
            density=True,
            histtype="step",
            lw=1.4,
            ls=":" if name == "cross-group" else "-",
            label=f"{name} ({v.size:,})",
        )
    ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set_xlabel("impostor similarity score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)


def cmc_png(cmc: Sequence[float]) -> bytes:
    fig = Figure(figsize=_SIZE)
    if not cmc:
        return _empty(fig, "CMC", "no mated searches")
    ax = fig.add_subplot()
    ranks = np.arange(1, len(cmc) + 1)
    ax.plot(ranks, cmc, "o-", color="#2166ac", ms=4, lw=2)
    ax.set_xticks(ranks)
    ax.set_ylim(min(cmc) - 0.05 if min(cmc) > 0.05 else 0.0, 1.0)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (mate at or above rank)")
    ax.set_title("CMC (closed-set, no threshold)")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def group_bars_png(
    rates: Mapping[str, Mapping[str, float | None]], title: str, log: bool = False
) -> bytes:
    """Grouped bars: ``rates[group][measure]`` (missing values are left out)."""
    fig = Figure(figsize=_SIZE)
    groups = list(rates)
    measures = sorted({m for r in rates.values() for m, v in r.items() if v is not None})
    if not groups or not measures:
        return _empty(fig, title, "no groups")
    ax = fig.add_subplot()
    width = 0.8 / len(measures)
    x = np.arange(len(groups))
    for k, m in enumerate(measures):
        vals = [rates[g].get(m) for g in groups]
        ys = [v if v is not None else np.nan for v in vals]
        ax.bar(x + k * width - 0.4 + width / 2, ys, width, label=m)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def matrix_png(matrix: Mapping[str, Mapping[str, float | None]], title: str) -> bytes:
    """Heat map of FMR for each pair of groups (log colour scale)."""
    fig = Figure(figsize=_SIZE)
    names = list(matrix)
    if not names:
        return _empty(fig, title, "no groups")
    m = np.array(
        [[np.nan if matrix[r].get(c) is None else matrix[r][c] for c in names] for r in names],
        dtype=float,
    )
    ax = fig.add_subplot()
    positive = m[np.isfinite(m) & (m > 0)]
    floor = float(positive.min()) / 2 if positive.size else 1e-6
    shown = np.log10(np.where(np.isfinite(m), np.maximum(m, floor), np.nan))
    im = ax.imshow(shown, cmap="magma_r")
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    finite = shown[np.isfinite(shown)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    for r in range(len(names)):
        for c in range(len(names)):
            v = m[r, c]
            if np.isfinite(v):
                dark = hi > lo and (shown[r, c] - lo) / (hi - lo) > 0.5
                size = 7 if len(names) <= 8 else 5
                ax.text(
                    c,
                    r,
                    f"{v:.1e}",
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if dark else "black",
                )
    fig.colorbar(im, ax=ax, label="log10 FMR")
    ax.set_title(title)
    return _png(fig)
