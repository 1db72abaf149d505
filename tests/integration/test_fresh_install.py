"""A new user's first hour: the README's install-and-demo command, run literally in a clean
copy of the repository with a fresh virtual environment and an empty per-user cache, then the
service from that same install (``serve --help``, and a real ``serve`` answering ``/docs``).

Slow (a whole install: about two minutes with pip's cache warm, as in CI after
``scripts/test.sh`` has installed the same packages), so it runs once per suite.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_first_command() -> str:
    """The first command of the README's "Two commands" block (install, then the demo)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no 'Two commands' bash block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[0]


def clean_copy(dest: Path) -> None:
    """The files a clean clone has (tracked, plus new files git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_readme_install_then_demo_and_serve(tmp_path: Path) -> None:
    command = readme_first_command()
    assert "pip install" in command and "faceledger demo" in command, command
    checkout = tmp_path / "faceledger"  # no ../shared beside it, as on a user's machine
    clean_copy(checkout)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FACELEDGER_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")  # no graph built before
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    env["COLUMNS"] = "200"
    t0 = time.perf_counter()
    done = subprocess.run(
        ["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True, timeout=900
    )
    took = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    out = " ".join(done.stdout.split())
    assert "run by onnxruntime" in out and "built and cached" in out, out[:2000]
    assert "no candidate" in out and "lead is confirmed" in out and "audit verify: OK" in out
    assert (tmp_path / "user-cache/faceledger/models").is_dir()
    print(f"README command: {took:.0f} s")

    exe = checkout / ".venv/bin/faceledger"
    helped = subprocess.run(
        [str(exe), "serve", "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "--port" in helped.stdout, helped.stderr

    port = _free_port()
    server = subprocess.Popen(
        [str(exe), "--data-dir", str(tmp_path / "ws"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.5)
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert httpx.get(f"{url}/docs/swagger-ui-bundle.js", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
