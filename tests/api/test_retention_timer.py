"""The service enforces retention on its own: a gallery's period of hours is applied by a
background timer, with no request, and audited as a ``retention apply`` run is."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faceledger.access import AgreementTerms
from faceledger.api import ServiceOptions
from faceledger.api.concurrency import SerialEngine
from faceledger.api.retention import RetentionTimer
from faceledger.audit import AuditOp
from faceledger.errors import InvalidArgument
from faceledger.gallery import Workspace, local_operator
from faceledger.store.validate import MAX_RETENTION_HOURS
from faceledger.usecases import EnrolImage, RetentionRun, apply_retention, enrol_image
from tests.api.live import GALLERY, Deployment, deploy, serve
from tests.postgres import PostgresCluster

API = "/api/v1"
T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
FAST = ServiceOptions(retention_interval_s=0.2, retention_first_run_s=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the background run did not come"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_service_erases_an_expired_subject_without_any_request(
    backend: str,
    tmp_path: Path,
    serial_engine: SerialEngine,
    data_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = None
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg")
        url = cluster.create_database()
    clock = Clock()
    dep = deploy(tmp_path / "ws", serial_engine, database_url=url, clock=clock)
    admin = dep.user("admin")
    with serve(dep, FAST) as live, live.client() as c:
        r = c.post(
            f"{API}/galleries",
            json={"name": "flight", "legal_basis": "statute", "retention_hours": 12},
            headers=dep.headers("admin"),
        )
        assert r.status_code == 201, r.text
        assert (r.json()["retention_hours"], r.json()["retention_days"]) == (12, None)
        enroller = dep.ws.access.grant("enroller", "flight", "enrol", by=admin)
        img = data_dir / "london/images"
        enrol_image(dep.ws, enroller, EnrolImage("flight", "061", img / "061_neutral.jpg"))
        clock.now = T0 + timedelta(hours=2)
        enrol_image(dep.ws, enroller, EnrolImage("flight", "062", img / "062_neutral.jpg"))
        flight = dep.ws.store.get_gallery_by_name("flight")

        clock.now = T0 + timedelta(hours=13)  # 061 is 13 h old, 062 11 h: no request follows
        wait_for(lambda: dep.ws.store.find_subject(flight.id, "061") is None)
        timer = live.service.retention
        assert timer is not None
        runs = timer.runs
        wait_for(lambda: timer.runs >= runs + 2)  # later runs find nothing and write nothing
        assert dep.ws.store.find_subject(flight.id, "062") is not None
        assert timer.failures == 0
    assert not timer.running

    (receipt,) = dep.ws.audit.entries(operation=AuditOp.ERASURE_RECEIPT)
    assert receipt.record.actor == "service:retention"
    assert receipt.record.details["subject"] == "061"
    assert receipt.record.details["reason"] == "retention period of 12 hours expired"
    (purge,) = dep.ws.audit.entries(operation=AuditOp.RETENTION_PURGE)
    assert purge.record.actor == "service:retention"
    assert purge.record.details["receipts"] == [receipt.seq]
    assert purge.timestamp == T0 + timedelta(hours=13)
    assert dep.ws.audit.verify().ok
    dep.ws.close()


def test_gallery_periods_are_validated_by_the_api(deployment: Deployment) -> None:
    with serve(deployment, ServiceOptions(retention_interval_s=None)) as live, live.client() as c:
        assert live.service.retention is None
        for body in (
            {"retention_days": 1, "retention_hours": 1},
            {"retention_hours": 0},
            {"retention_hours": -3},
            {"retention_hours": MAX_RETENTION_HOURS + 1},
            {"retention_hours": 1.5},
        ):
            r = c.post(
                f"{API}/galleries",
                json={"name": "g", "legal_basis": "consent", **body},
                headers=deployment.headers("admin"),
            )
            assert r.status_code == 422, (body, r.text)
            assert r.json()["code"] == "invalid_argument"
        r = c.get(f"{API}/galleries", headers=deployment.headers("admin"))
        assert [g["name"] for g in r.json()["items"]] == ["watchlist"]
        assert r.json()["items"][0]["retention_hours"] is None


def test_a_failed_run_is_logged_and_the_timer_goes_on(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def failing_once(ws: Workspace, *args: object) -> RetentionRun:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database on fire")
        return apply_retention(ws, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("faceledger.api.retention.apply_retention", failing_once)
    timer = RetentionTimer(deployment.ws, interval_s=0.05, first_run_s=0.0)
    with timer.lock:  # a run in progress elsewhere: the timer waits, never overlaps it
        timer.start()
        time.sleep(0.3)
        assert calls == [] and timer.runs == 0
    wait_for(lambda: timer.runs >= 2)
    assert timer.failures == 1 and "database on fire" in caplog.text
    timer.close()
    assert not timer.running
    closed_at = len(calls)
    time.sleep(0.2)
    assert len(calls) == closed_at


def test_a_bad_schedule_is_refused(deployment: Deployment) -> None:
    for bad in ({"retention_interval_s": -1}, {"retention_first_run_s": float("nan")}):
        with pytest.raises(InvalidArgument, match="retention"):
            ServiceOptions(**bad)
    with pytest.raises(InvalidArgument, match="interval_s must be positive"):
        RetentionTimer(deployment.ws, interval_s=0, first_run_s=0)


def test_the_timer_records_an_agreement_that_expired(
    tmp_path: Path, serial_engine: SerialEngine
) -> None:
    clock = Clock()
    dep = deploy(tmp_path / "ws", serial_engine, clock=clock)
    ws = dep.ws
    local = local_operator(ws, "root")
    ws.orgs.create_org("county", "County", by=local)
    admin = dep.user("admin")
    ws.orgs.define_purpose("default", "missing person", "", by=admin)
    deal = ws.orgs.create_agreement(
        AgreementTerms(
            gallery=GALLERY,
            grantee_org="county",
            purposes=("missing person",),
            legal_basis="MoU 4",
            starts_at=T0,
            expires_at=T0 + timedelta(hours=2),
        ),
        by=admin,
    )
    timer = RetentionTimer(ws, interval_s=60, first_run_s=60)
    timer.run_once()
    assert list(ws.audit.entries(operation=AuditOp.AGREEMENT_EXPIRE)) == []
    clock.now = T0 + timedelta(hours=3)
    timer.run_once()
    timer.run_once()  # recorded once, not at every run
    (entry,) = ws.audit.entries(operation=AuditOp.AGREEMENT_EXPIRE)
    assert entry.record.actor == "service:retention"
    assert entry.record.details["agreement_id"] == deal.id
    assert ws.audit.scopes(entry.seq) == {"default", "county"}
    assert timer.failures == 0
