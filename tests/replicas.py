"""`faceledger serve` processes sharing one database, each with a data folder of its own: the
replicas of tests/api/test_replicas.py and benchmarks/replicas.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.api.live import free_socket

API = "/api/v1"


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]

    def log_tail(self, chars: int = 3000) -> str:
        if self.proc.poll() is None or self.proc.stdout is None:
            return ""
        return self.proc.stdout.read().decode(errors="replace")[-chars:]


def free_port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def start_replicas(
    database_url: str,
    data: Path,
    n: int,
    *,
    index_uri: str | None = None,
    timeout_s: float = 120.0,
) -> list[Replica]:
    """Start ``n`` replicas on loopback (``data/replica<i>`` each) and wait until each answers
    /health; the retention timer is off (it belongs to one replica, not to every one).
    ``index_uri``: a Milvus holding every gallery's index for all of them (else each keeps
    index files of its own)."""
    started: list[Replica] = []
    try:
        for i in range(n):
            port = free_port()
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "FACELEDGER_DATABASE_URL": database_url,
                "FACELEDGER_DATA_DIR": str(data / f"replica{i}"),
                **({"FACELEDGER_INDEX_URI": index_uri} if index_uri else {}),
            }
            cmd = [sys.executable, "-m", "faceledger", "serve", "--port", str(port)]
            cmd += ["--log-level", "warning", "--retention-interval", "0"]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            started.append(Replica(f"http://127.0.0.1:{port}", proc))
        deadline = time.monotonic() + timeout_s
        for r in started:
            _wait_healthy(r, deadline)
    except BaseException:
        stop_replicas(started)
        raise
    return started


def _wait_healthy(r: Replica, deadline: float) -> None:
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            raise RuntimeError(f"replica {r.url} exited: {r.log_tail()}")
        try:
            if httpx.get(f"{r.url}{API}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"replica {r.url} did not answer")


def stop_replicas(replicas: list[Replica]) -> None:
    for r in replicas:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGINT)
    for r in replicas:
        try:
            r.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait(timeout=10)
