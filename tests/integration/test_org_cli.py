"""Organisations on the command line: the deployment creates two, their administrators share a
gallery under an agreement, a partner's searcher gets redacted leads, the owner's reviewer
releases one, and revocation ends the sharing at the next request (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from faceledger.cli.app import app
from faceledger.cli.org_cmds import parse_when
from faceledger.errors import InvalidArgument
from tests.postgres import PostgresCluster

PURPOSE = "violent felony investigation"
KEY = re.compile(r"flk_[0-9a-f]{12}_\S+")


@dataclass
class World:
    """One workspace per backend, built once for the module."""

    env: dict[str, str | None]
    probe: str
    keys: dict[str, str] = field(default_factory=dict)
    agreement_id: str = ""

    def cli(self, *args: str, as_user: str | None = None) -> Result:
        env = dict(self.env)
        if as_user is not None:  # acting as the account, not as the local operator
            env.update(FACELEDGER_API_KEY=self.keys[as_user], FACELEDGER_OPERATOR=None)
        return CliRunner().invoke(app, list(args), env=env)

    def ok(self, *args: str, as_user: str | None = None) -> str:
        r = self.cli(*args, as_user=as_user)
        assert r.exit_code == 0, f"{args}: {r.output}"
        return r.output

    def user(self, name: str, org: str, role: str, *, as_user: str | None = None) -> None:
        out = self.ok(
            "users", "create", name, "--role", role, "--org", org, "--key", as_user=as_user
        )
        found = KEY.search(out)
        assert found is not None, out
        self.keys[name] = found.group(0)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[World]:
    env: dict[str, str | None] = {
        "FACELEDGER_DATA_DIR": str(tmp_path_factory.mktemp(f"orgs-{request.param}")),
        "FACELEDGER_OPERATOR": "deploy",
        "FACELEDGER_WORKERS": "1",
        "FACELEDGER_API_KEY": None,
        "FACELEDGER_API_KEY_FILE": None,
        "FACELEDGER_DATABASE_URL": None,
        "COLUMNS": "200",
    }
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        env["FACELEDGER_DATABASE_URL"] = cluster.create_database()
    images = data_dir / "london/images"
    w = World(env, probe=str(images / "008_smiling.jpg"))

    # the deployment (local operator): organisations and their administrators
    w.ok("org", "create", "metro", "--name", "Metro Police")
    w.ok("org", "create", "county", "--name", "County Sheriff")
    w.user("metro-admin", "metro", "admin")
    w.user("county-admin", "county", "admin")

    # each administrator: a gallery, users, purposes
    out = w.ok("gallery", "create", "metro-g", "--legal-basis", "statute", as_user="metro-admin")
    assert "'metro'" in out
    w.ok("gallery", "create", "county-g", "--legal-basis", "statute", as_user="county-admin")
    r = w.cli("gallery", "create", "x-g", "--legal-basis", "statute", "--org", "metro",
              as_user="county-admin")  # fmt: skip
    assert r.exit_code == 2 and "[permission_denied]" in r.output
    w.user("metro-reviewer", "metro", "reviewer", as_user="metro-admin")
    w.ok("users", "grant", "metro-reviewer", "metro-g", "view_images", as_user="metro-admin")
    w.user("county-searcher", "county", "searcher", as_user="county-admin")
    w.ok("users", "grant", "county-searcher", "county-g", "search", as_user="county-admin")
    w.ok("org", "purpose-add", PURPOSE, "--description", "Part II offences", as_user="metro-admin")
    w.ok("org", "purpose-add", "missing person", as_user="metro-admin")

    # the deployment enrols (it holds every right over the local files)
    for gallery, number in (("metro-g", "005"), ("metro-g", "008"), ("county-g", "030")):
        image = str(images / f"{number}_neutral.jpg")
        w.ok("enroll", gallery, image, "--subject", number)

    # metro shares its gallery with county: redacted, one candidate, one purpose
    now = datetime.now(UTC)
    out = w.ok(
        "agreement", "create", "--gallery", "metro-g", "--grantee", "county",
        "--purpose", PURPOSE, "--legal-basis", "Mutual aid compact s.4",
        "--starts", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "--expires", (now + timedelta(days=30)).date().isoformat(),
        "--max-candidates", "1", "--redacted", "--json",
        as_user="metro-admin",
    )  # fmt: skip
    terms = json.loads(out)
    assert terms["owner_org"] == "metro" and terms["grantee_org"] == "county"
    assert terms["redacted"] is True and terms["max_candidates"] == 1
    assert terms["purposes"] == [PURPOSE] and terms["state"] == "active"
    assert terms["starts_at"].endswith(("Z", "+00:00"))  # no zone given: UTC
    w.agreement_id = terms["agreement_id"]
    w.ok("users", "grant", "county-searcher", "metro-g", "search", as_user="county-admin")
    yield w


def _search(w: World, *galleries: str, purpose: str = PURPOSE, json_out: bool = False) -> Result:
    args = ["search", w.probe, "--purpose", purpose, "--case", "C-1"]
    for g in galleries:
        args += ["--gallery", g]
    return w.cli(*args, *(["--json"] if json_out else []), as_user="county-searcher")


def test_shared_gallery_redacted_released_then_revoked(world: World) -> None:
    w = world
    # both parties see the agreement; lists follow organisations
    listed = json.loads(w.ok("agreement", "list", "--json", as_user="county-admin"))
    assert [a["agreement_id"] for a in listed] == [w.agreement_id]
    shown = w.ok("agreement", "show", w.agreement_id, as_user="metro-admin")
    assert PURPOSE in shown and "metro-g" in shown
    orgs = json.loads(w.ok("org", "list", "--json", as_user="county-admin"))
    assert {o["id"] for o in orgs} == {"metro", "county"}
    assert {o["id"] for o in json.loads(w.ok("org", "list", "--json"))} >= {"metro", "county"}
    purposes = json.loads(
        w.ok("org", "purposes", "--org", "metro", "--json", as_user="county-admin")
    )
    assert {p["name"] for p in purposes} == {PURPOSE, "missing person"}
    users = json.loads(w.ok("users", "list", "--json", as_user="metro-admin"))
    assert {u["id"]: u["org"] for u in users} == {"metro-admin": "metro", "metro-reviewer": "metro"}

    # county's searcher searches both galleries: owners named, metro's lead redacted, capped
    r = _search(w, "metro-g", "county-g", json_out=True)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["gallery_owners"] == {"county-g": "county", "metro-g": "metro"}
    assert res["redacted_galleries"] == ["metro-g"]
    (face,) = res["faces"]
    metro_leads = [c for c in face["candidates"] if c["gallery"] == "metro-g"]
    assert len(metro_leads) == 1  # max 1 candidate
    (lead,) = metro_leads
    assert lead["subject"] == "[redacted]" and lead["template_id"] == 0
    assert all(c["subject"] != "008" for c in face["candidates"])
    search_id, rank = res["search_id"], lead["rank"]

    text = _search(w, "metro-g", "county-g")
    assert text.exit_code == 0, text.output
    assert "metro-g (owned by metro, leads redacted)" in text.output
    assert "county-g (owned by county)" in text.output
    assert f"lead #{rank}: metro-g of metro, redacted" in text.output

    # a purpose outside the agreement is refused with its typed error
    r = _search(w, "metro-g", purpose="missing person")
    assert r.exit_code == 2 and "[purpose_outside_agreement]" in r.output, r.output

    # county may not release metro's lead; metro's reviewer may, once
    r = w.cli("review", "release", search_id, str(rank), "--note", "x", as_user="county-admin")
    assert r.exit_code == 2 and "[permission_denied]" in r.output
    r = w.cli("review", "release", search_id, str(rank), "--note", "x")  # no key: refused
    assert r.exit_code == 2
    out = w.ok(
        "review", "release", search_id, str(rank), "--note", "warrant 77 seen",
        as_user="metro-reviewer",
    )  # fmt: skip
    assert f"released lead #{rank} of {search_id}: metro-g/008" in out
    r = w.cli("review", "release", search_id, str(rank), "--note", "again",
              as_user="metro-reviewer")  # fmt: skip
    assert r.exit_code == 2 and "[conflict]" in r.output

    # metro changes the terms, then revokes: county's next search of metro-g is refused
    out = w.ok("agreement", "change", w.agreement_id, "--no-max-candidates", "--json",
               as_user="metro-admin")  # fmt: skip
    changed = json.loads(out)
    assert changed["max_candidates"] is None and changed["redacted"] is True
    r = w.cli("agreement", "revoke", w.agreement_id, "--reason", "x", as_user="county-admin")
    assert r.exit_code == 2 and "[permission_denied]" in r.output
    out = w.ok("agreement", "revoke", w.agreement_id, "--reason", "case closed",
               as_user="metro-admin")  # fmt: skip
    assert "revoked agreement" in out
    state = json.loads(w.ok("agreement", "show", w.agreement_id, "--json", as_user="metro-admin"))
    assert state["state"] == "revoked" and state["revoked_by"] == "metro-admin"
    r = _search(w, "metro-g")
    assert r.exit_code == 2 and "[permission_denied]" in r.output, r.output
    assert _search(w, "county-g").exit_code == 0  # its own gallery still


def test_cli_input_errors_are_typed(world: World) -> None:
    w = world
    r = w.cli(
        "agreement", "create", "--gallery", "county-g", "--grantee", "metro",
        "--purpose", "anything", "--legal-basis", "x", "--starts", "yesterday",
        "--expires", "2099-01-01", as_user="county-admin",
    )  # fmt: skip
    assert r.exit_code == 2 and "[invalid_argument]" in r.output and "--starts" in r.output
    r = w.cli(
        "agreement", "create", "--gallery", "county-g", "--grantee", "metro",
        "--purpose", "anything", "--legal-basis", "x", "--starts", "2020-01-01",
        "--expires", "2099-01-01", "--level", "enrol", as_user="county-admin",
    )  # fmt: skip
    assert r.exit_code == 2 and "[invalid_argument]" in r.output
    r = w.cli("org", "create", "rogue", as_user="metro-admin")
    assert r.exit_code == 2 and "[permission_denied]" in r.output
    r = w.cli("agreement", "show", "nope", as_user="metro-admin")
    assert r.exit_code == 2 and "[not_found]" in r.output
    r = w.cli("agreement", "change", "nope", as_user="metro-admin")
    assert r.exit_code == 2 and "nothing to change" in r.output


def test_parse_when_reads_iso_dates_as_utc_without_a_zone() -> None:
    assert parse_when("2030-05-01", "--x") == datetime(2030, 5, 1, tzinfo=UTC)
    assert parse_when("2030-05-01T10:00:00+02:00", "--x").utcoffset() == timedelta(hours=2)
    with pytest.raises(InvalidArgument, match="--x"):
        parse_when("1 May", "--x")
