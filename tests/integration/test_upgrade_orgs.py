"""A workspace made by the release before organisations (commit 3e90ea6) opens with this code.

The fixtures (tests/fixtures/release_3e90ea6/, README.md there) were made by that release's
own code: a SQLite workspace and a plain SQL dump of the same kind of workspace on
PostgreSQL. Each test copies one into ``tmp_path`` (the committed files are never opened in
place) and checks the upgrade's promise (``faceledger.access.orgs``): nothing is written on
open, every old user and gallery is the default organisation's, old searches and audit
entries are the default organisation's, and a new organisation sees none of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceledger import Engine, Settings
from faceledger.access import DEFAULT_ORG, GrantLevel, Role
from faceledger.errors import PermissionDenied
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.usecases import (
    SearchRequest,
    list_galleries,
    list_searches,
    read_search,
    search,
)
from tests.postgres import SUPERUSER, PostgresCluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "release_3e90ea6"


def _load_dump(cluster: PostgresCluster, dump: Path) -> str:
    """A fresh database holding ``dump`` (loaded by psql, as an operator restoring would)."""
    name = f"up_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(name)
    subprocess.run(
        [
            str(cluster.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(cluster.socket_dir),
            "-U",
            SUPERUSER,
            "-d",
            name,
            "-f",
            str(dump),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def upgraded(
    request: pytest.FixtureRequest, tmp_path: Path, engine: Engine
) -> Iterator[tuple[Workspace, dict[str, Any]]]:
    """The old workspace copied into ``tmp_path`` and opened with this code, and what the
    script that made it recorded (keys, search id, audit entries)."""
    source = FIXTURES / request.param
    data = tmp_path / "ws"
    shutil.copytree(source, data)
    summary = json.loads((data / "keys.json").read_text(encoding="utf-8"))
    if request.param == "sqlite":
        url = None  # <data_dir>/faceledger.db, the copy
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = _load_dump(cluster, data / "faceledger.sql")
    ws = open_workspace(Settings(data_dir=data, database_url=url), engine=engine)
    yield ws, summary
    ws.close()


def test_old_accounts_and_gallery_are_the_default_orgs(
    upgraded: tuple[Workspace, dict[str, Any]],
) -> None:
    ws, summary = upgraded
    for name, key in summary["keys"].items():
        user = ws.access.authenticate(key)
        assert user.id == name
        assert user.org == DEFAULT_ORG
        assert user.roles == frozenset(Role(r) for r in summary["roles"][name])
        want = summary["grants"].get(name)
        assert dict(user.grants) == ({} if want is None else {"mugshots": GrantLevel(want)})
    assert ws.orgs.owner_of("mugshots") == DEFAULT_ORG
    assert DEFAULT_ORG in {o.id for o in ws.orgs.orgs()}
    enroller = ws.access.authenticate(summary["keys"]["enroller"])
    assert [g.gallery.name for g in list_galleries(ws, enroller)] == ["mugshots"]
    assert list_galleries(ws, enroller)[0].counts.subjects == 3


def test_old_search_and_audit_chain_read_back(
    upgraded: tuple[Workspace, dict[str, Any]], data_dir: Path
) -> None:
    ws, summary = upgraded
    old = summary["search"]
    n_old = summary["audit_entries"]

    # opening wrote nothing: the chain is exactly the old one, and verifies
    report = ws.audit.verify()
    assert report.ok, report.reason
    assert report.entries == n_old

    auditor = ws.access.authenticate(summary["keys"]["auditor"])
    seen = read_search(ws, auditor, old["search_id"])
    record = seen.record
    assert seen.galleries is None  # the auditor of its organisation sees all of it
    assert record.requester_org == DEFAULT_ORG
    assert record.owner_of("mugshots") == DEFAULT_ORG
    assert (record.actor, record.purpose, record.case_ref) == (
        "searcher",
        old["purpose"],
        old["case_ref"],
    )
    assert record.audit_seq == old["audit_seq"]
    lead = record.lead(old["lead_rank"])
    assert lead.lead.subject_id == old["lead_subject"]
    assert str(lead.status) == old["lead_status"]
    assert [(d.reviewer, str(d.verdict)) for d in lead.decisions] == [("reviewer", "confirmed")]
    listed = list_searches(ws, auditor, limit=10)
    assert [v.record.search_id for v in listed.items] == [old["search_id"]]

    # the default organisation's auditors read every old entry in their scope
    scoped = [e.seq for e in ws.audit.entries(scope=DEFAULT_ORG)]
    assert scoped == list(range(1, n_old + 1))

    # the searcher searches again; the new search is the default organisation's, and the
    # chain still verifies with the new entries after the old ones
    searcher = ws.access.authenticate(summary["keys"]["searcher"])
    probe = data_dir / "london" / "images" / "008_smiling.jpg"
    result = search(
        ws,
        searcher,
        SearchRequest(probe, ("mugshots",), purpose="a second look", case_ref="CASE-2"),
    )
    assert result.audit_seq > n_old
    again = read_search(ws, auditor, result.search_id).record
    assert again.requester_org == DEFAULT_ORG
    assert again.leads and again.leads[0].lead.subject_id == "008"
    ids = {v.record.search_id for v in list_searches(ws, auditor, limit=10).items}
    assert ids == {old["search_id"], result.search_id}
    report = ws.audit.verify()
    assert report.ok, report.reason
    assert report.entries > n_old
    scoped_after = {e.seq for e in ws.audit.entries(scope=DEFAULT_ORG)}
    assert set(range(1, n_old + 1)) <= scoped_after
    assert result.audit_seq in scoped_after


def test_a_new_organisation_sees_nothing_old(
    upgraded: tuple[Workspace, dict[str, Any]],
) -> None:
    ws, summary = upgraded
    old_search = summary["search"]["search_id"]
    n_old = summary["audit_entries"]
    local = local_operator(ws, "root")
    op = ws.access.create_user("op", ["operator"], by=local, org=None)
    assert op.org == DEFAULT_ORG
    ws.orgs.create_org("harbour", "Harbour police", by=op)
    boss = ws.access.create_user("harbour-admin", ["admin"], by=op, org="harbour")
    assert boss.org == "harbour"
    auditor = ws.access.create_user("harbour-auditor", ["auditor"], by=boss)
    searcher = ws.access.create_user("harbour-searcher", ["searcher"], by=boss)
    assert {auditor.org, searcher.org} == {"harbour"}
    assert ws.orgs.owner_of("mugshots") == DEFAULT_ORG

    for user in (boss, auditor, searcher):
        assert list_galleries(ws, user) == []
    for user in (auditor, searcher):
        assert list_searches(ws, user, limit=10).items == ()
        with pytest.raises(PermissionDenied):
            read_search(ws, user, old_search)
    with pytest.raises(PermissionDenied):
        ws.access.grant("harbour-searcher", "mugshots", "search", by=boss)
    scoped = {e.seq for e in ws.audit.entries(scope="harbour")}
    assert scoped.isdisjoint(range(1, n_old + 1))

    # the default organisation still has every old entry, and the chain still verifies
    assert set(range(1, n_old + 1)) <= {e.seq for e in ws.audit.entries(scope=DEFAULT_ORG)}
    report = ws.audit.verify()
    assert report.ok, report.reason
