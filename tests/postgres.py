"""A throw-away PostgreSQL cluster for tests: a real server, not a mock.

``initdb`` (from ``pg_config --bindir``) into a fresh temporary folder; the server listens only
on a Unix socket inside that folder (no TCP port), trusts local connections, and is stopped
and deleted afterwards. fsync and synchronous commit are off: the data is thrown away, and
the tests stay fast.

Running as root: ``initdb`` and ``postgres`` refuse to run as root. When the tests run as
uid 0 the server binaries run as an unprivileged account instead (``postgres`` if it exists,
else ``nobody``), through ``subprocess``'s own user/group switch (the same as ``runuser``,
with no shell and no extra package); the temporary folder is created under the system
temporary folder and handed to that account. The test process, as root, can still reach the
socket. As any other user the binaries simply run as that user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

import psycopg

SUPERUSER = "faceledger"
_SOCKET_MAX = 100  # sun_path is 108 bytes; the socket's own name adds ~20


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL installation (pg_config missing or the cluster failed to start)."""


def find_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise PostgresUnavailable("pg_config not found on PATH: install PostgreSQL 15 server")
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    bindir = Path(out.stdout.strip())
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (bindir / tool).is_file():
            raise PostgresUnavailable(f"{bindir / tool} not found: install the PostgreSQL server")
    return bindir


def server_version(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' account")


class PostgresCluster:
    """Start with :meth:`start` (or ``with``); then :meth:`create_schema` (cheap, one per test)
    or :meth:`create_database` gives a fresh, empty place and its URL."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.version = server_version(self.bindir)
        self._account = _server_account()
        self.base: Path | None = None
        self._running = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="fl-pg-"))
        if len(str(base / "socket")) > _SOCKET_MAX:  # a long TMPDIR would overflow sun_path
            shutil.rmtree(base)
            base = Path(tempfile.mkdtemp(prefix="fl-pg-", dir="/tmp"))
        self.base = base
        (base / "socket").mkdir()
        if self._account is not None:
            for p in (base, base / "socket"):
                os.chown(p, self._account.pw_uid, self._account.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            self._running = True  # from here on stop() must try to stop a server
            self._pg_ctl_start()
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", None) or b""
            log = self.log_tail()
            self.stop()
            raise PostgresUnavailable(
                f"cannot start PostgreSQL: {exc}\n{detail.decode(errors='replace')}\n{log}"
            ) from exc

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-k {self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=60",
                "-c shared_buffers=32MB",
            ]
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-o", options,
            "start",
        )  # fmt: skip

    def pause(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected), keeping its data."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server paused by :meth:`pause` again, on the same socket and data."""
        self._pg_ctl_start()

    def stop(self) -> None:
        base, self.base = self.base, None
        if base is None:
            return
        if self._running:
            self._running = False
            stop = ("-D", str(base / "data"), "-m", "immediate", "-w", "stop")
            self._exec(base, "pg_ctl", *stop, check=False)
        shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "socket"

    @property
    def log_file(self) -> Path:
        return self._base() / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for the socket (the form faceledger's open_database takes)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name by default) and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe database name {name!r}")
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
        return self.url(name)

    def create_schema(self, name: str | None = None, database: str = "postgres") -> str:
        """Create an empty schema and return a URL whose connections use it (search_path).

        Much cheaper than a database (CREATE DATABASE forces checkpoints): one per test.
        """
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe schema name {name!r}")
        with self.admin(database) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(database)}&options=-csearch_path%3D{name}"

    def drop_schema(self, name: str, database: str = "postgres") -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe schema name {name!r}")
        with self.admin(database) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def drop_database(self, name: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe database name {name!r}")
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to ``database`` as the superuser."""
        return psycopg.connect(
            host=str(self.socket_dir), user=SUPERUSER, dbname=database, autocommit=True
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, RuntimeError):
            return ""

    # ------------------------------------------------------------------ internals

    def _base(self) -> Path:
        if self.base is None:
            raise RuntimeError("the cluster is not started")
        return self.base

    def _run(self, tool: str, *args: str) -> None:
        self._exec(self._base(), tool, *args, check=True)

    def _exec(self, cwd: Path, tool: str, *args: str, check: bool) -> None:
        """Run a server binary in ``cwd``, as the server account when we are root."""
        account = self._account
        subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            check=check,
            timeout=60,
            cwd=str(cwd),
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LC_ALL": "C",
                "LANG": "C",
                "TZ": "UTC",
                "HOME": str(cwd),
            },
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )
