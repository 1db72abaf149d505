"""A throw-away Milvus standalone server for tests: the real server binary, not milvus-lite.

The ``milvus`` wheel on PyPI (2.3.x, Linux x86-64 only) bundles the Milvus standalone
binary, compressed, with the shared libraries it needs; Milvus standalone embeds its own
etcd and keeps segments on the local disk, so nothing else is needed. This module unpacks the
binary once (:func:`unpack_binaries`, ~5 s), writes a config from the wheel's template into
a fresh folder, and runs ``milvus run standalone`` there with every port on a free loopback
port (below Linux's ephemeral range, so outgoing connections cannot take one meanwhile).

:class:`MilvusServer` is started and stopped by the test (``with`` or :meth:`start` /
:meth:`stop`); :meth:`kill` sends SIGKILL (a crash) and :meth:`start` afterwards restarts
it on the same folder and ports, as an operator's restart would: the data survives.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

# The ports of Milvus standalone's components, as the wheel's config template names them.
PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
# Every component advertises this address (in its embedded etcd) instead of the machine's
# first network address: all traffic stays on loopback.
_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)
_HOST = "127.0.0.1"

FAST_TICKS: Mapping[str, object] = {"proxy.timeTickInterval": 50}
"""Tests' setting: the proxy's time tick every 50 ms instead of 200. A Strong-consistency
request waits for the tick after it arrived, so single searches take ~0.1 s instead of
~0.5 s; what the server answers does not change."""


class MilvusUnavailable(RuntimeError):
    """This platform cannot run the Milvus server binary of the ``milvus`` wheel."""


def unsupported_reason() -> str | None:
    """Why this platform cannot run the bundled server, or None when it can."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return (
            f"the milvus wheel bundles a Linux x86-64 server binary only "
            f"(this is {sys.platform}/{platform.machine()})"
        )
    return None


def _milvus_package() -> Any:
    import milvus  # the 'milvus' wheel (extra 'milvus' of pyproject.toml)

    return milvus


def server_version() -> str:
    return str(_milvus_package().__version__)


def unpack_binaries(folder: Path) -> Path:
    """Unpack the wheel's server binary and libraries into ``folder/bin`` (skipped when
    already there); returns the binary. ``MilvusUnavailable`` when it cannot run here."""
    reason = unsupported_reason()
    if reason is not None:
        raise MilvusUnavailable(reason)
    _milvus_package()._initialize_data_files(str(folder))
    exe = folder / "bin" / "milvus"
    try:
        probe = subprocess.run(
            [str(exe), "--help"],
            env=_env(exe.parent, metrics_port=0, run_dir=folder / "run"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:  # exec format error, noexec mount...
        raise MilvusUnavailable(f"{exe} cannot run here: {exc}") from None
    out = probe.stdout + probe.stderr
    if "error while loading shared libraries" in out or "GLIBC" in out:
        raise MilvusUnavailable(f"{exe} cannot run here: {out.strip()[-500:]}")
    return exe


def _env(bin_dir: Path, *, metrics_port: int, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DEPLOY_MODE="STANDALONE",
        METRICS_PORT=str(metrics_port),
        MILVUS_RUN_DIR=str(run_dir),
        LD_LIBRARY_PATH=":".join(p for p in (str(bin_dir), env.get("LD_LIBRARY_PATH", "")) if p),
    )
    return env


def _die_with_parent(command: list[str]) -> list[str]:
    """``command`` run through util-linux's ``setpriv --pdeathsig KILL`` (where there is one):
    the server is SIGKILLed when the test process dies, however it dies, so that none
    outlives an interrupted run. (Not ``preexec_fn``: unsafe once gRPC's threads run.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *command] if setpriv else command


def free_ports(count: int, *, low: int = 20000, high: int = 32000) -> list[int]:
    """``count`` distinct loopback ports free now, picked at random in ``[low, high)``."""
    chosen: list[int] = []
    rng = random.Random()
    for _ in range(50 * count):
        if len(chosen) == count:
            break
        port = rng.randrange(low, high)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((_HOST, port))
            except OSError:
                continue
        chosen.append(port)
    if len(chosen) < count:
        raise RuntimeError(f"found only {len(chosen)} free loopback ports of {count}")
    return chosen


class MilvusServer:
    """One Milvus standalone server with its data, config and logs under ``base``."""

    def __init__(
        self,
        base: Path,
        *,
        binaries: Path | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        """``binaries``: a folder :func:`unpack_binaries` filled (shared between servers);
        by default the binary is unpacked into ``base`` itself. ``settings``: milvus.yaml
        values by dotted key (``{"dataCoord.gc.interval": 1}``); only keys the template
        already has."""
        self.base = base.resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.exe = unpack_binaries(binaries or self.base)
        ports = free_ports(len(PORT_KEYS) + 2)
        self.ports = dict(zip(PORT_KEYS, ports, strict=False))
        self.metrics_port, self.etcd_peer_port = ports[-2:]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took until the server answered."""
        self._write_config(dict(settings or {}))

    @property
    def port(self) -> int:
        return self.ports["proxy_port"]

    @property
    def uri(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self, settings: dict[str, object]) -> None:
        config = _milvus_package().MilvusServerConfig(data_dir=str(self.base))
        config.resolve_storage()  # data, logs and etcd folders under base
        for key, port in self.ports.items():
            config.set(key, port)
        for component in _COMPONENTS:
            config.set(f"{component}.ip", _HOST)
        for key, value in settings.items():
            config.set(key, value)
        config.write_config()  # base/configs/milvus.yaml, base/configs/glog.conf
        # The embedded etcd listens on 2379/2380 (etcd's defaults) unless given a config file
        # of its own: another server, or a real etcd, could hold those. Its data folder and log
        # still come from milvus.yaml.
        etcd_config = self.base / "configs" / "embedEtcd.yaml"
        client = f"http://{_HOST}:{self.ports['etcd_port']}"
        peer = f"http://{_HOST}:{self.etcd_peer_port}"
        etcd_config.write_text(
            f"name: default\n"
            f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
        )
        path = self.base / "configs" / "milvus.yaml"
        text = path.read_text()
        embed = "  use:\n    embed: true"
        assert text.count(embed) == 1, "the wheel's config template changed: update this"
        path.write_text(text.replace(embed, f"  config:\n    path: {etcd_config}\n{embed}"))

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 120.0) -> None:
        """Start (or restart, on the same data and ports) and wait until it serves."""
        if self.running:
            return
        started = time.monotonic()
        logs = self.base / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / "milvus-stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                _die_with_parent([str(self.exe), "run", "standalone"]),
                cwd=self.base,  # the binary reads configs/milvus.yaml from here
                env=_env(
                    self.exe.parent, metrics_port=self.metrics_port, run_dir=self.base / "run"
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest does not reach it first
            )
        try:
            self._wait_healthy(started + timeout)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_healthy(self, deadline: float) -> None:
        url = f"http://{_HOST}:{self.metrics_port}/healthz"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(
                    f"Milvus server exited with {self.proc.returncode if self.proc else '?'} "
                    f"while starting; log tail:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if b"OK" in resp.read():
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"Milvus server not healthy after start; log tail:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash or an OOM kill."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill()

    def remove_data(self) -> None:
        """Delete the stopped server's data (~300 MB: etcd and the message queue preallocate
        their logs); its config and logs stay, for a failed run's post-mortem."""
        if self.running:
            raise RuntimeError("stop the Milvus server before removing its data")
        for folder in ("data", "run"):
            shutil.rmtree(self.base / folder, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        path = self.base / "logs" / "milvus-stdout.log"
        try:
            return path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> MilvusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
