"""Console output helpers shared by the commands: JSON shapes, error reporting, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from faceledger import usecases as uc
from faceledger.errors import FaceLedgerError
from faceledger.serialize import face_position, fmr_json
from faceledger.types import Decision, FaceResult, FMREstimate

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def fail(exc: FaceLedgerError) -> NoReturn:
    err_console.print(
        f"[bold red]error[/] {escape('[' + exc.code + ']')}: {escape(exc.message)}",
        highlight=False,
    )
    raise typer.Exit(2)


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn`` and turn faceledger errors into a clean message and exit status 2."""
    try:
        return fn()
    except FaceLedgerError as exc:
        fail(exc)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fmr_text(est: FMREstimate) -> str:
    if est.upper_bound:
        return f"< {est.value:.1e}"
    return f"{est.value:.1e}"


def face_json(face: FaceResult) -> dict[str, Any]:
    d = face.detection
    out: dict[str, Any] = {
        "box": asdict(d.box),
        "landmarks": [[round(p.x, 2), round(p.y, 2)] for p in d.landmarks.points],
        "confidence": round(d.confidence, 4),
        "raw_score": round(d.raw_score, 4),
        "detector": d.detector,
        "quality": asdict(face.quality),
        **face_position(face),
        "other_faces": face.others,
    }
    out["quality"]["flags"] = list(face.quality.flags)
    if face.template is not None:
        out["model_id"] = face.template.model_id
    return out


def decision_json(dec: Decision) -> dict[str, Any]:
    return {
        "outcome": dec.outcome.value,
        "score": round(dec.score, 6),
        "estimated_fmr": fmr_json(dec.fmr),
        "target_fmr": dec.target_fmr,
        "threshold": round(dec.threshold, 6),
        "model_id": dec.model_id,
        "group_fmr_at_threshold": dict(dec.group_fmr),
    }


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f}/s" if speed else "  ?/s", style="progress.data.speed")


class ProgressHandle:
    """What a long command reports progress through."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def describe(self, description: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)

    def set_total(self, total: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def __call__(self, *_: object) -> None:
        self.advance()


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool = True
) -> Iterator[ProgressHandle]:
    """A rich progress bar (count, rate, elapsed, ETA) on stderr."""
    if not enabled:
        yield ProgressHandle(None, None)
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield ProgressHandle(progress, task)


def face_used(face: FaceResult, *, verb: str = "compared") -> str:
    """``face 3 of 30 (primary); 29 others not compared`` — or ``""`` for a lone face."""
    if face.faces_in_image <= 1:
        return ""
    if face.selection is None:
        return f"face {face.face_index} of {face.faces_in_image}"
    return (
        f"face {face.face_index} of {face.faces_in_image} ({face.selection}); "
        f"{face.others} other{'s' if face.others != 1 else ''} not {verb}"
    )


def print_search(res: uc.SearchResult) -> None:
    """A search's candidate lists (or "no candidate") as the CLI prints them."""
    console.print(
        f"search {res.search_id} (audit entry {res.audit_seq}) of {', '.join(res.galleries)}: "
        f"{res.templates_searched} templates at target FPIR {res.target_fpir:g}"
    )
    for face in res.faces:
        q = face.face.quality
        flags = f" flags: {', '.join(q.flags)}" if q.flags else ""
        used = face_used(face.face, verb="searched")
        console.print(
            f"face {face.face.face_index}: quality {q.score:.0f}/100{flags}; threshold "
            f"{face.threshold:.4f} (per-comparison FMR {face.comparison_fmr:.1e}; from the "
            f"{face.threshold_source})"
        )
        if face.face.others:
            console.print(f"  [yellow]{used}[/]: --all-faces searches every face")
        if not face.candidates:
            console.print(
                "  [bold]no candidate[/]: nobody in the galleries scored above the threshold"
            )
            continue
        table = Table(show_header=True)
        score = "similarity" if face.normalisation == "none" else f"{face.normalisation} score"
        for col in ("rank", "gallery", "subject", "name", score, "cosine", "est. FMR", "est. FPIR"):
            table.add_column(col)
        for c in face.candidates:
            table.add_row(
                str(c.rank),
                escape(c.gallery),
                escape(c.external_id),  # "[redacted]" is not rich markup
                escape(c.display_name or ""),
                f"{c.score:.4f}",
                "-" if c.similarity is None else f"{c.similarity:.4f}",
                fmr_text(c.fmr),
                "-" if c.fpir is None else f"{c.fpir:.1e}",
            )
        console.print(table)
    console.print(
        "[dim]Candidates are leads for trained reviewers, not identifications; "
        "record review decisions before acting on any.[/]"
    )
