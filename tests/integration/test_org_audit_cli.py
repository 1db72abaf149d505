"""An organisation's auditor at the command line: its export of the shared audit chain (its
entries whole, the others as stubs) verifies without the database and breaks when edited, and
``audit report --org`` writes the lead-rate report as JSON and HTML."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from faceledger import Settings
from faceledger.gallery import local_operator, open_workspace
from tests.integration.test_cli_core import run
from tests.integration.test_org_report import T0, Clock, _build


def test_an_org_auditor_exports_verifies_and_reports(tmp_path: Path, data_dir: Path) -> None:
    clock = Clock()
    ws = open_workspace(Settings(data_dir=tmp_path / "ws"), clock=clock)
    try:
        _build(ws, clock, data_dir / "london/images")
        key = ws.access.issue_api_key("alpha-auditor", by=local_operator(ws, "t")).token
        total = ws.audit.head().seq
        alpha = len(list(ws.audit.entries(scope="alpha")))
    finally:
        ws.close()
    env = {"FACELEDGER_DATA_DIR": str(tmp_path / "ws"), "FACELEDGER_API_KEY": key}

    export = tmp_path / "alpha.jsonl"
    done = run("audit", "export", "--out", str(export), env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    assert len(lines) == total
    shown = [x for x in lines if not x.get("withheld")]
    assert len(shown) == alpha and 0 < alpha < total
    assert all(set(x) >= {"seq", "hash", "prev_hash"} for x in lines if x.get("withheld"))

    ok = run("audit", "verify-export", str(export))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{total - alpha} withheld" in ok.stdout

    # an edited visible entry: its hash no longer matches
    victim = next(i for i, x in enumerate(lines) if not x.get("withheld") and x["body"]["seq"] > 1)
    lines[victim]["body"]["purpose"] = "something else"
    bad = tmp_path / "edited.jsonl"
    bad.write_text("".join(json.dumps(x) + "\n" for x in lines))
    broken = run("audit", "verify-export", str(bad))
    assert broken.returncode == 1 and "BROKEN" in broken.stdout

    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    start, end = T0.date().isoformat(), (T0 + timedelta(days=30)).date().isoformat()
    rep = run(
        "audit", "report", "--org", "alpha", "--from", start, "--to", end,
        "--json", str(out_json), "--html", str(out_html), env=env,
    )  # fmt: skip
    assert rep.returncode == 0, rep.stdout + rep.stderr
    report = json.loads(out_json.read_text())
    assert report["org"] == "alpha"
    assert "<img" in out_html.read_text()
    refused = run("audit", "report", "--org", "beta", "--from", start, "--to", end, env=env)
    assert refused.returncode != 0
