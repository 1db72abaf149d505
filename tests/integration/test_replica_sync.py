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
    EnrolImage,
    EraseSubject,
    SearchRequest,
    create_gallery,
    enrol_image,
    erase_subject,
    search,
)
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
