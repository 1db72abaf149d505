"""Two workspaces on one database, each with its own index folder: what two replicas of the
service (or the CLI beside the service) see of each other's writes, on SQLite and PostgreSQL.

An enrolment through one is found by a search through the other at once (its index notices
the gallery's generation moved and reconciles); an erasure through one is never returned by
the other; a replica's own writes keep its index in step without a reconcile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.gallery.indexes import IndexManager
from faceledger.usecases import (
    CreateGallery,
    DeleteGallery,
    EnrolImage,
    EraseSubject,
    SearchRequest,
    create_gallery,
    delete_gallery,
    enrol_image,
    erase_subject,
    search,
)
from tests.milvus_server import MilvusServer
from tests.postgres import PostgresCluster


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(
    request: pytest.FixtureRequest, tmp_path: Path, pg_cluster: PostgresCluster
) -> Iterator[tuple[Workspace, Workspace]]:
    sqlite = request.param == "sqlite"
    url = str(tmp_path / "shared.db") if sqlite else pg_cluster.create_schema()
    a = open_workspace(Settings(data_dir=tmp_path / "a", database_url=url))
    b = open_workspace(Settings(data_dir=tmp_path / "b", database_url=url))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _top(ws: Workspace, image: Path) -> str | None:
    me = local_operator(ws, "officer")
    res = search(ws, me, SearchRequest(image, ("mugs",), purpose="find", case_ref="C-1"))
    found = res.faces[0].candidates
    return found[0].external_id if found else None


def test_writes_through_one_replica_are_seen_by_the_other(
    pair: tuple[Workspace, Workspace], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    img = data_dir / "london" / "images"
    create_gallery(a, local_operator(a, "officer"), CreateGallery("mugs", "statute"))
    # (the local operator's grants cover the galleries that exist when it is made)
    me_a, me_b = local_operator(a, "officer"), local_operator(b, "officer")
    for pid in ("001", "002", "003"):
        enrol_image(a, me_a, EnrolImage("mugs", pid, img / f"{pid}_neutral.jpg"))
    assert _top(b, img / "002_smiling.jpg") == "002"  # b opens its index from the store

    reconciles: list[int] = []
    real = IndexManager._reconcile

    def counted(self: IndexManager, gallery: object, idx: object) -> tuple[int, int]:
        reconciles.append(id(self))
        return real(self, gallery, idx)  # type: ignore[arg-type]

    monkeypatch.setattr(IndexManager, "_reconcile", counted)

    # enrolled through a: b finds them at once (one reconcile of b's index)
    enrol_image(a, me_a, EnrolImage("mugs", "004", img / "004_neutral.jpg"))
    enrol_image(a, me_a, EnrolImage("mugs", "005", img / "005_neutral.jpg"))
    assert id(a.indexes) not in reconciles, "a reconciled after its own writes"
    assert _top(b, img / "005_smiling.jpg") == "005"
    assert reconciles.count(id(b.indexes)) == 1
    assert _top(b, img / "004_smiling.jpg") == "004"
    assert reconciles.count(id(b.indexes)) == 1, "b reconciled again with nothing changed"

    # erased through b: never a candidate through a
    erase_subject(b, me_b, EraseSubject("mugs", "005", "request of the person"))
    assert _top(a, img / "005_smiling.jpg") != "005"
    assert 5 not in {int(i) for i in a.store.template_ids(a.store.get_gallery_by_name("mugs").id)}
    gallery = a.store.get_gallery_by_name("mugs")
    ids_a = set(a.indexes.get(gallery, 128).ids().tolist())
    ids_b = set(b.indexes.get(gallery, 128).ids().tolist())
    assert ids_a == ids_b == set(a.store.template_ids(gallery.id).tolist())
    assert len(ids_a) == 4


def test_one_shared_milvus_index_for_every_workspace(
    tmp_path: Path, pg_cluster: PostgresCluster, milvus_server: MilvusServer, data_dir: Path
) -> None:
    """``index_uri``: every gallery's index is a partition of one Milvus server. A workspace
    that never opened the gallery's index still drops its partition with the gallery."""
    url = pg_cluster.create_schema()
    opened = [
        open_workspace(
            Settings(data_dir=tmp_path / n, database_url=url, index_uri=milvus_server.uri)
        )
        for n in ("a", "b", "c")
    ]
    a, b, c = opened
    img = data_dir / "london" / "images"
    try:
        create_gallery(a, local_operator(a, "officer"), CreateGallery("mugs", "statute"))
        me_a = local_operator(a, "officer")
        for pid in ("001", "002", "003"):
            enrol_image(a, me_a, EnrolImage("mugs", pid, img / f"{pid}_neutral.jpg"))
        assert _top(b, img / "003_smiling.jpg") == "003"
        gallery = a.store.get_gallery_by_name("mugs")
        assert gallery.index_description["kind"] == "milvus"
        view = b.indexes.get(gallery, 128)
        assert len(view) == 3  # b's view of the shared index
        enrol_image(a, me_a, EnrolImage("mugs", "004", img / "004_neutral.jpg"))
        assert len(b.indexes.get(gallery, 128)) == 4  # the generation moved: b read it again
        erase_subject(a, me_a, EraseSubject("mugs", "002", "request of the person"))
        assert _top(b, img / "002_smiling.jpg") != "002"
        inner = view.inner  # type: ignore[attr-defined]
        client = inner._client
        assert client.has_partition(inner.collection, inner.partition)
        delete_gallery(c, local_operator(c, "officer"), DeleteGallery("mugs", "closed"))
        assert not client.has_partition(inner.collection, inner.partition)
    finally:
        for ws in opened:
            ws.close()
