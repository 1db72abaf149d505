"""Fixtures of the service tests: one model engine for the session, London images as bytes,
and deployments served by a real uvicorn server on a loopback port."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

from faceledger.api.concurrency import SerialEngine
from faceledger.config import Settings
from tests.api.live import Deployment, Live, deploy, serve
from tests.postgres import PostgresCluster

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def serial_engine() -> SerialEngine:
    """The real model, loaded once and shared by every deployment of the session."""
    engine = SerialEngine(Settings())
    engine.warm_up()
    return engine


@pytest.fixture(scope="session")
def london(data_dir: Path) -> dict[str, bytes]:
    """Bytes of every London image (~14 MB), by file stem (``001_neutral``...)."""
    folder = data_dir / "london" / "images"
    paths = sorted(folder.glob("*.jpg"))
    return {p.stem: p.read_bytes() for p in paths}


@pytest.fixture(scope="session")
def blank_png() -> bytes:
    """A valid image without any face."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (180, 200, 220)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def deployment(tmp_path: Path, serial_engine: SerialEngine) -> Iterator[Deployment]:
    dep = deploy(tmp_path / "ws", serial_engine)
    yield dep
    dep.ws.close()


@pytest.fixture
def live(deployment: Deployment) -> Iterator[Live]:
    with serve(deployment) as server:
        yield server


@pytest.fixture(scope="session")
def pg(pg_cluster: PostgresCluster) -> PostgresCluster:
    """The run's one PostgreSQL server (``tests/conftest.py``); a schema per test."""
    return pg_cluster


# module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and later tests call asyncio.run()
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser test needs Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()
