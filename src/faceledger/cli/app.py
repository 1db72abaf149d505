"""The ``faceledger`` command: a thin composition of the engine's pieces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from faceledger.cli import calibrate_cmd, core_cmds, demo
from faceledger.config import Settings

app = typer.Typer(
    name="faceledger",
    help="Open face recognition with measured error rates and an accountable audit trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    detector: Annotated[
        str | None, typer.Option(help="Face detector: hog (fast) or cnn (accurate, slow).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model card id.")] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Extra folder of model cards (JSON).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes for bulk work (0 = one per core).")
    ] = None,
) -> None:
    """Settings come from FACELEDGER_* environment variables, overridden by these options."""
    ctx.obj = Settings.from_env(
        os.environ, detector=detector, model_id=model, model_dir=model_dir, workers=workers
    )


core_cmds.register(app)
calibrate_cmd.register(app)
demo.register(app)


def main() -> None:
    app()
