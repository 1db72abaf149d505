"""A real uvicorn server on a loopback port in a background thread, and a prepared deployment
(workspace, users of every role with API keys, one gallery with grants) to run it on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page, expect

from faceledger.access import AccessControl, GrantLevel, Role, User
from faceledger.api import ServiceOptions, create_app
from faceledger.api.service import Service
from faceledger.audit import utc_now
from faceledger.config import Settings
from faceledger.gallery import Workspace, open_workspace
from faceledger.pipeline import Engine
from faceledger.usecases import CreateGallery, create_gallery

GALLERY = "watchlist"
ROLES: dict[str, tuple[Role, ...]] = {
    "admin": (Role.ADMIN,),
    "enroller": (Role.ENROLLER,),
    "searcher": (Role.SEARCHER,),
    "reviewer": (Role.REVIEWER,),
    "reviewer2": (Role.REVIEWER,),
    "auditor": (Role.AUDITOR,),
}
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
"""argon2 parameters are a deployment choice; the default ones cost ~0.1-0.6 s a key here, so
deployments made for tests use cheap ones (``test_auth`` keeps the defaults)."""

GRANTS = {
    "enroller": GrantLevel.ENROL,
    "searcher": GrantLevel.SEARCH,
    "reviewer": GrantLevel.VIEW_IMAGES,
    "reviewer2": GrantLevel.VIEW_IMAGES,
}


@dataclass
class Deployment:
    """A workspace with one user per role (user id = role name) and their API keys."""

    settings: Settings
    ws: Workspace
    tokens: dict[str, str]
    users: dict[str, User] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def user(self, who: str) -> User:
        return self.ws.access.get_user(who)


def deploy(
    data_dir: Path,
    engine: Engine,
    *,
    database_url: str | None = None,
    gallery: str | None = GALLERY,
    hasher: PasswordHasher | None = CHEAP_HASHER,
    users: tuple[str, ...] = tuple(ROLES),
    clock: Callable[[], datetime] = utc_now,
    **settings: Any,
) -> Deployment:
    """A fresh workspace with users, keys, and (unless ``gallery`` is None) a gallery with
    grants: enroller ``enrol``, searcher ``search``, reviewers ``view_images``. ``clock``:
    the workspace's (store, audit log, retention)."""
    config = Settings(data_dir=data_dir, database_url=database_url, **settings)
    ws = open_workspace(config, engine=engine, clock=clock)
    if hasher is not None:
        ws.access = AccessControl(ws.audit, hasher=hasher)
    admin = ws.access.create_user("admin", [Role.ADMIN], by=None)
    for name in users:
        if name != "admin":
            ws.access.create_user(name, ROLES[name], by=admin)
    tokens = {name: ws.access.issue_api_key(name, by=admin).token for name in users}
    if gallery is not None:
        create_gallery(ws, admin, CreateGallery(gallery, legal_basis="consent"))
        for name, level in GRANTS.items():
            if name in users:
                ws.access.grant(name, gallery, level, by=admin)
    return Deployment(config, ws, tokens)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Live:
    app: FastAPI
    url: str

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@contextmanager
def live_server(app: FastAPI) -> Iterator[Live]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) until the block ends."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def serve(deployment: Deployment, options: ServiceOptions | None = None) -> Iterator[Live]:
    """The service of ``deployment`` on a live loopback server."""
    app = create_app(deployment.settings, deployment.ws, options=options)
    with live_server(app) as live:
        yield live


@dataclass
class WatchedPage:
    """A browser page on ``live`` that records script errors and every request leaving the
    service (the UI must load nothing from elsewhere)."""

    page: Page
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.outside == []


def watched_page(context: BrowserContext, live: Live) -> WatchedPage:
    """A new page of ``context`` with generous timeouts (the model takes ~0.5 s an image on a
    busy machine) and its errors and outside requests recorded."""
    context.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    watched = WatchedPage(context.new_page())
    watched.page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    local = (live.url, "blob:", "data:")
    watched.page.on(
        "request",
        lambda req: None if req.url.startswith(local) else watched.outside.append(req.url),
    )
    return watched


def sign_in(page: Page, live: Live, dep: Deployment, who: str) -> None:
    """Sign ``who`` in on the web UI with their API key (signing out whoever was in)."""
    page.goto(f"{live.url}/ui/#/")
    if page.locator("#signout").is_visible():
        page.click("#signout")
    page.fill("#key", dep.tokens[who])
    page.click("#signin-submit")
    expect(page.locator("#who")).to_contain_text(who)


AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"

AXE_RUN = """async () => {
  const out = await axe.run(document, { resultTypes: ["violations"] });
  return out.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: npm install --prefix tests/api/axe (scripts/test.sh)")
    # evaluated through the DevTools protocol: the page's CSP (script-src 'self') forbids an
    # inline <script>, and the test must not weaken it
    page.evaluate(AXE.read_text() + "\n;void 0")
    found: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    return found
