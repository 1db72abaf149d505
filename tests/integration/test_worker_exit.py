"""#19 item 11: after ``kill -9`` of a bulk enrolment, its worker processes exit too.

The workers come from a fork server and hold the pipe that would tell the fork server that
the caller died, so without their own watch on the caller they (~200 MB each), the fork
server and the resource tracker lived on for minutes. Only the caller is killed here, not
its process group: the rest must notice on their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _group(pgid: int) -> dict[int, str]:
    """pid → command line of the live processes of process group ``pgid``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found[int(entry.name)] = cmd
    return found


def _wait_for(predicate: object, timeout_s: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return bool(predicate())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_exit_when_the_enrolling_process_is_killed(tmp_path: Path, data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELEDGER_")}
    env.update(FACELEDGER_DATA_DIR=str(tmp_path / "ws"), FACELEDGER_WORKERS="2")
    cli = [sys.executable, "-m", "faceledger"]
    subprocess.run(
        [*cli, "gallery", "create", "orl", "--legal-basis", "consent"],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*cli, "enroll", "orl", str(data_dir / "orl")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so that we can find its children
    )
    try:

        def workers() -> list[int]:
            return [
                pid
                for pid, cmd in _group(proc.pid).items()
                if pid != proc.pid and "forkserver" in cmd
            ]

        # the fork server and two workers under it
        assert _wait_for(lambda: len(workers()) >= 3, 90), _group(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the caller only, not its group
        proc.wait(10)
        gone = _wait_for(lambda: not _group(proc.pid), 20)
        assert gone, f"still alive 20 s after the caller died: {_group(proc.pid)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
