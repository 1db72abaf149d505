"""Three `faceledger serve` processes on loopback ports sharing one PostgreSQL server, each
with its own data folder: stateless replicas behind what would be a load balancer. Twice:
each replica with an in-process index of its own, then every gallery's index in one real
Milvus server shared by the three (``FACELEDGER_INDEX_URI``).

- an enrolment through one replica is found by a search through another at once;
- enrolments and searches through all three at the same time leave one unbroken audit chain
  (the head is serialised across processes) with every entry in it, and each search's record
  is read through another replica;
- a key revoked through one replica is refused by the others at the very next request;
- a subject erased through one replica is never a candidate through another;
- PostgreSQL restarted under the replicas: requests meanwhile get 503 `store_error`, the
  replicas answer again once it is back, and nothing written before is lost.

A dedicated PostgreSQL server (not the session's): this test stops and starts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from faceledger.access import Role
from faceledger.config import Settings
from faceledger.gallery import local_operator, open_workspace
from faceledger.usecases import CreateGallery, create_gallery
from tests.milvus_server import MilvusServer
from tests.postgres import PostgresCluster, PostgresUnavailable
from tests.replicas import API, Replica, start_replicas, stop_replicas

REPLICAS = 3
PURPOSE = {"purpose": "replica test", "case_ref": "R-1"}


@dataclass
class Replicas:
    urls: list[str]
    running: list[Replica]
    pg: PostgresCluster
    database_url: str
    keys: dict[str, str]
    index_uri: str | None

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def logs(self) -> str:
        return "\n---\n".join(r.log_tail() for r in self.running)


def _bootstrap(url: str, data: Path, index_uri: str | None) -> dict[str, str]:
    """Users, keys, a gallery and grants, written straight to the shared database."""
    ws = open_workspace(Settings(data_dir=data / "setup", database_url=url, index_uri=index_uri))
    try:
        local = local_operator(ws, "setup")
        create_gallery(ws, local, CreateGallery("mugs", "statute"))
        keys = {}
        for name, roles in (
            ("admin", [Role.ADMIN]),
            ("auditor", [Role.AUDITOR]),
            ("enroller", [Role.ENROLLER]),
            ("searcher", [Role.SEARCHER]),
            ("other", [Role.SEARCHER]),
        ):
            ws.access.create_user(name, roles, by=local)
            keys[name] = ws.access.issue_api_key(name, by=local).token
        for name, level in (("enroller", "enrol"), ("searcher", "search"), ("other", "search")):
            ws.access.grant(name, "mugs", level, by=local)
        return keys
    finally:
        ws.close()


@pytest.fixture(scope="module", params=["index files", "milvus"])
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Each replica with index files of its own, or all on one real Milvus server."""
    index_uri = None
    if request.param == "milvus":
        server: MilvusServer = request.getfixturevalue("milvus_server")
        index_uri = server.uri
    try:
        pg = PostgresCluster()
        pg.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL server unavailable: {exc}")
    try:
        data = tmp_path_factory.mktemp("replicas")
        url = pg.create_database()
        keys = _bootstrap(url, data, index_uri)
        running = start_replicas(url, data, REPLICAS, index_uri=index_uri)
        try:
            yield Replicas([r.url for r in running], running, pg, url, keys, index_uri)
        finally:
            stop_replicas(running)
    finally:
        pg.stop()


def _enrol(r: Replicas, at: int, subject: str, image: Path) -> httpx.Response:
    return httpx.post(
        f"{r.urls[at]}{API}/galleries/mugs/subjects/{subject}/images",
        files={"image": (image.name, image.read_bytes(), "image/jpeg")},
        headers=r.headers("enroller"),
        timeout=60,
    )


def _search(r: Replicas, at: int, image: Path, who: str = "searcher") -> httpx.Response:
    return httpx.post(
        f"{r.urls[at]}{API}/search",
        files={"image": (image.name, image.read_bytes(), "image/jpeg")},
        data={"galleries": "mugs", **PURPOSE},
        headers=r.headers(who),
        timeout=60,
    )


def _people(img: Path) -> list[str]:
    """London people with a neutral and a smiling photo."""
    stems = {p.stem for p in img.glob("*.jpg")}
    return sorted(s[:-8] for s in stems if s.endswith("_neutral") and f"{s[:-8]}_smiling" in stems)


def _top(resp: httpx.Response) -> str | None:
    assert resp.status_code == 200, resp.text
    found = resp.json()["faces"][0]["candidates"]
    return found[0]["subject"] if found else None


def test_replicas_share_enrolments_audit_keys_and_erasures(
    replicas: Replicas, data_dir: Path, tmp_path: Path
) -> None:
    r = replicas
    img = data_dir / "london" / "images"
    first, people = _people(img)[:3], _people(img)[3:15]
    # enrolled through replica 0, found through 1 and 2 at once
    for pid in first:
        assert _enrol(r, 0, pid, img / f"{pid}_neutral.jpg").status_code == 201, r.logs()
    assert _top(_search(r, 1, img / f"{first[1]}_smiling.jpg")) == first[1]
    assert _top(_search(r, 2, img / f"{first[2]}_smiling.jpg")) == first[2]

    # all three at once: enrolments through 0 and 1, searches through 2 (and 0, 1)
    with ThreadPoolExecutor(6) as pool:
        enrolled = list(
            pool.map(
                lambda k: _enrol(r, k % 2, people[k], img / f"{people[k]}_neutral.jpg"),
                range(len(people)),
            )
        )
        searched = list(
            pool.map(lambda k: _search(r, k % 3, img / f"{first[0]}_smiling.jpg"), range(9))
        )
    assert [e.status_code for e in enrolled] == [201] * len(people)
    for k, made in enumerate(searched):  # each search's record is read through another
        seen = httpx.get(
            f"{r.urls[(k + 1) % 3]}{API}/searches/{made.json()['search_id']}",
            headers=r.headers("searcher"),
            timeout=10,
        )
        assert seen.status_code == 200 and seen.json()["audit_seq"] == made.json()["audit_seq"]
    assert all(_top(s) == first[0] for s in searched)
    for k, pid in enumerate(people):
        assert _top(_search(r, (k + 2) % 3, img / f"{pid}_smiling.jpg")) == pid
    head = httpx.get(f"{r.urls[2]}{API}/audit/verify", headers=r.headers("auditor"), timeout=60)
    assert head.status_code == 200, head.text
    report = head.json()
    assert report["ok"] is True, report
    assert report["entries"] >= 3 + len(people) + 2 + 9 + len(people)

    # the index the replicas used: their own files, or the one Milvus
    ws = open_workspace(Settings(data_dir=tmp_path, database_url=r.database_url))
    try:
        kind = ws.store.get_gallery_by_name("mugs").index_description["kind"]
    finally:
        ws.close()
    assert (kind == "milvus") == (r.index_uri is not None), kind

    # a key revoked through replica 0 is refused by 1 and 2 at the next request
    assert _search(r, 1, img / f"{first[0]}_smiling.jpg", who="other").status_code == 200
    assert _search(r, 2, img / f"{first[0]}_smiling.jpg", who="other").status_code == 200
    keys = httpx.get(
        f"{r.urls[0]}{API}/users/other/keys", headers=r.headers("admin"), timeout=10
    ).json()
    key_id = keys[0]["key_id"]
    gone = httpx.delete(f"{r.urls[0]}{API}/keys/{key_id}", headers=r.headers("admin"), timeout=10)
    assert gone.status_code == 204, gone.text
    for at in (1, 2):
        refused = _search(r, at, img / f"{first[0]}_smiling.jpg", who="other")
        assert refused.status_code == 401, refused.text

    # erased through replica 2: never a candidate through 0 or 1
    erased = httpx.delete(
        f"{r.urls[2]}{API}/galleries/mugs/subjects/{first[1]}",
        params={"reason": "the person asked"},
        headers=r.headers("enroller"),
        timeout=30,
    )
    assert erased.status_code == 200, erased.text
    for at in (0, 1):
        assert _top(_search(r, at, img / f"{first[1]}_smiling.jpg")) != first[1]


def test_postgres_restarted_under_the_replicas(replicas: Replicas, data_dir: Path) -> None:
    r = replicas
    img = data_dir / "london" / "images"
    pid = _people(img)[20]
    assert _enrol(r, 1, pid, img / f"{pid}_neutral.jpg").status_code == 201
    r.pg.pause()
    try:
        down = _search(r, 0, img / f"{pid}_smiling.jpg")
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "store_error"
    finally:
        r.pg.resume()
    for at in range(REPLICAS):
        assert _top(_search(r, at, img / f"{pid}_smiling.jpg")) == pid, r.logs()
    head = httpx.get(f"{r.urls[0]}{API}/audit/verify", headers=r.headers("auditor"), timeout=60)
    assert head.status_code == 200 and head.json()["ok"] is True, head.text
