"""The ``faceledger`` command: a thin composition of the engine's pieces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, get_args

import typer

from faceledger.cli import (
    audit_cmds,
    calibrate_cmd,
    cluster_cmds,
    core_cmds,
    demo,
    document_cmds,
    gallery_cmds,
    keys_cmd,
    org_cmds,
    serve_cmd,
    video_cmds,
)
from faceledger.cli.eval_cmd import eval_app
from faceledger.config import RuntimeName, Settings

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
        str | None,
        typer.Option(
            help="Face detector: hog (fast), cnn (accurate, slow) or hog+cnn "
            "(the CNN only where HOG finds no face)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model card id.")] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Extra folder of model cards (JSON).")
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="What runs the model: auto (onnxruntime, dlib's runtime where it cannot "
            "load), onnx, or dlib (the reference)."
        ),
    ] = None,
    operator: Annotated[
        str | None, typer.Option(help="Your name in the audit log (default: the OS user).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Workspace folder (database, indexes, caches).")
    ] = None,
    database: Annotated[str | None, typer.Option(help="SQLite path or postgresql:// URL.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes for bulk work (0 = one per core).")
    ] = None,
) -> None:
    """Settings come from FACELEDGER_* environment variables, overridden by these options."""
    if runtime is not None and runtime not in get_args(RuntimeName):
        raise typer.BadParameter(f"--runtime must be one of {', '.join(get_args(RuntimeName))}")
    ctx.obj = Settings.from_env(
        os.environ,
        runtime=runtime,
        detector=detector,
        model_id=model,
        model_dir=model_dir,
        workers=workers,
        operator=operator,
        data_dir=data_dir,
        database_url=database,
    )


core_cmds.register(app)
calibrate_cmd.register(app)
demo.register(app)
gallery_cmds.register(app)
audit_cmds.register(app)
org_cmds.register(app)
app.add_typer(eval_app, name="eval")
keys_cmd.register(app)
serve_cmd.register(app)
video_cmds.register(app)
document_cmds.register(app)
cluster_cmds.register(app)


def main() -> None:
    app()
