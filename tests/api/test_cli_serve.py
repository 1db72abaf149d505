"""``faceledger users ...`` bootstraps accounts and keys, and ``faceledger serve`` serves them
(a real process on a loopback port)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from faceledger.cli import serve_cmd
from faceledger.config import Settings
from faceledger.gallery import open_workspace
from tests.api.live import free_socket

REPO = Path(__file__).resolve().parents[2]


def _cli(data_dir: Path) -> typer.Typer:
    """The commands on a root that sets the workspace, like ``faceledger --data-dir``."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Settings(data_dir=data_dir, operator="ops")

    serve_cmd.register(app)
    return app


def test_users_commands_bootstrap_an_admin_and_manage_keys_and_grants(tmp_path: Path) -> None:
    app, run = _cli(tmp_path / "ws"), CliRunner().invoke
    r = run(app, ["users", "create", "alice", "--role", "searcher"])
    assert r.exit_code == 2 and "admin" in r.output  # the first user must be an admin
    r = run(app, ["users", "create", "root", "--role", "admin", "--key"])
    assert r.exit_code == 0, r.output
    token = re.search(r"flk_[0-9a-f]{12}_\S+", r.output)
    assert token is not None
    r = run(app, ["users", "create", "alice", "--role", "searcher", "--role", "reviewer"])
    assert r.exit_code == 0, r.output
    r = run(app, ["users", "issue-key", "alice", "--label", "laptop"])
    alice_token = re.search(r"flk_[0-9a-f]{12}_\S+", r.output)
    assert r.exit_code == 0 and alice_token is not None
    r = run(app, ["users", "grant", "alice", "nowhere", "search"])
    assert r.exit_code == 2 and "not_found" in r.output
    r = run(app, ["users", "list", "--json"])
    assert r.exit_code == 0 and '"alice"' in r.output

    ws = open_workspace(Settings(data_dir=tmp_path / "ws"))
    try:
        assert ws.access.authenticate(token.group(0)).id == "root"
        alice = ws.access.authenticate(alice_token.group(0))
        assert alice.id == "alice" and {str(r) for r in alice.roles} == {"searcher", "reviewer"}
        creators = [(e.record.actor, e.record.details["user"]) for e in ws.audit.entries(
            operation="user_create")]  # fmt: skip
        assert creators == [("root", "root"), ("local:ops", "alice")]  # no key: local
        (key,) = ws.access.api_keys("alice")
    finally:
        ws.close()
    r = run(app, ["users", "revoke-key", key.key_id])
    assert r.exit_code == 0
    r = run(app, ["users", "deactivate", "alice"])
    assert r.exit_code == 0


def test_serve_runs_the_service_until_stopped(tmp_path: Path) -> None:
    sock = free_socket()  # find a free port, then let the server bind it
    port = sock.getsockname()[1]
    sock.close()
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from tests.api.test_cli_serve import _cli
        _cli(Path({str(tmp_path / "ws")!r}))(
            ["serve", "--port", "{port}", "--log-level", "warning"]
        )
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "the service did not answer"
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["users"] is False
        ui = httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=5)
        assert ui.status_code == 200 and "faceledger" in ui.text
        assert "script-src 'self'" in ui.headers["content-security-policy"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"no users yet" in out
