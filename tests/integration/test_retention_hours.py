"""Retention periods in hours through the use cases and the CLI: subjects and kept probes
expire by the hour, with the reasons and audit entries of any retention run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceledger import Engine, Settings
from faceledger.audit import AuditOp
from faceledger.cli.app import app
from faceledger.errors import InvalidArgument
from faceledger.gallery import local_operator, open_workspace
from faceledger.store.validate import MAX_RETENTION_HOURS
from faceledger.usecases import (
    ApplyRetention,
    CreateGallery,
    EnrolImage,
    SearchRequest,
    apply_retention,
    create_gallery,
    enrol_image,
    search,
)

T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_an_hours_period_erases_subjects_and_probes_by_the_hour(
    tmp_path: Path, data_dir: Path, engine: Engine
) -> None:
    clock = Clock()
    ws = open_workspace(Settings(data_dir=tmp_path), clock=clock, engine=engine)
    create_gallery(
        ws, local_operator(ws, "admin"), CreateGallery("flight", "statute", retention_hours=12)
    )
    created = next(ws.audit.entries(operation=AuditOp.GALLERY_CREATE))
    assert created.record.details["retention_hours"] == 12
    assert created.record.details["retention_days"] is None
    me = local_operator(ws, "admin")
    img = data_dir / "london/images"
    enrol_image(ws, me, EnrolImage("flight", "061", img / "061_neutral.jpg"))
    clock.now = T0 + timedelta(hours=2)
    enrol_image(ws, me, EnrolImage("flight", "062", img / "062_neutral.jpg"))
    probe = search(
        ws,
        me,
        SearchRequest(img / "061_smiling.jpg", ("flight",), "t", "c", keep_probe=True),
    ).search_id

    clock.now = T0 + timedelta(hours=13)  # 061 is 13 h old; 062 and the probe 11 h
    run = apply_retention(ws, me, ApplyRetention())
    assert [r.subject for r in run.receipts] == ["061"] and run.probes_deleted == []
    receipt = ws.audit.get(run.receipts[0].audit_seq)
    assert receipt.record.details["reason"] == "retention period of 12 hours expired"
    flight = ws.store.get_gallery_by_name("flight")
    assert [s.external_id for s in ws.store.list_subjects(flight.id).items] == ["062"]

    purges = len(list(ws.audit.entries(operation=AuditOp.RETENTION_PURGE)))
    quiet = apply_retention(ws, me, ApplyRetention(quiet=True))  # nothing due: nothing written
    assert (quiet.receipts, quiet.probes_deleted) == ([], [])
    assert len(list(ws.audit.entries(operation=AuditOp.RETENTION_PURGE))) == purges

    clock.now = T0 + timedelta(hours=14, minutes=1)
    run = apply_retention(ws, me, ApplyRetention(quiet=True))
    assert [r.subject for r in run.receipts] == ["062"] and run.probes_deleted == [probe]
    purge = list(ws.audit.entries(operation=AuditOp.RETENTION_PURGE))[-1]
    assert purge.record.details["receipts"] == [run.receipts[0].audit_seq]
    gone = purge.record.details["probe_images"]
    assert isinstance(gone, list) and len(gone) == 1 and isinstance(gone[0], dict)
    assert gone[0]["reason"] == "retention period of 12 hours expired"
    assert ws.store.counts(flight.id).subjects == 0
    assert ws.audit.verify().ok
    ws.close()


def test_a_gallery_takes_one_bounded_period(tmp_path: Path, engine: Engine) -> None:
    ws = open_workspace(Settings(data_dir=tmp_path), engine=engine)
    me = local_operator(ws, "admin")
    for days, hours in [(1, 12), (None, 0), (None, -1), (None, MAX_RETENTION_HOURS + 1)]:
        with pytest.raises(InvalidArgument, match="retention"):
            create_gallery(ws, me, CreateGallery("g", "consent", "", days, hours))
    assert ws.store.list_galleries() == []
    assert list(ws.audit.entries(operation=AuditOp.GALLERY_CREATE)) == []
    ws.close()


def test_cli_creates_and_lists_a_gallery_in_hours(tmp_path: Path) -> None:
    def cli(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "--operator", "t", *args])
        return r.exit_code, " ".join(r.output.split())

    create = ("gallery", "create", "--legal-basis", "statute")
    assert cli(*create, "flight", "--retention-hours", "12")[0] == 0
    assert cli(*create, "custody", "--retention-days", "30")[0] == 0
    code, out = cli(*create, "both", "--retention-days", "1", "--retention-hours", "1")
    assert code == 2 and "not both" in out
    code, out = cli(*create, "zero", "--retention-hours", "0")
    assert code == 2 and "retention_hours" in out
    code, out = cli("gallery", "list")
    assert code == 0 and "12 h" in out and "30 d" in out
    assert "both" not in out and "zero" not in out
