"""Kept cluster sets on real faces, on SQLite and PostgreSQL: three London people × 2 photos
and one photo holding two faces of a fourth (a PIL composite). Keep → show; a merge across
cannot-link refused; merge/split/name/dismiss/undo, each with its audit entry in the same
transaction; another organisation's reviewer refused; a cluster enrolled and found by a 1:N
search with the person's other photo; a dismissed cluster refused; expired sets purged by
retention with nothing left."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image
from typer.testing import CliRunner

from faceledger import Engine
from faceledger.access import Role, User
from faceledger.cli.app import app
from faceledger.config import Settings
from faceledger.errors import (
    AuthenticationFailed,
    CannotLink,
    Conflict,
    PermissionDenied,
    StoreError,
)
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.review import cluster_sets as tables
from faceledger.store import generate_key
from faceledger.usecases import (
    ApplyRetention,
    ClusterImages,
    CreateGallery,
    EnrolCluster,
    ImagesClustered,
    SearchRequest,
    apply_retention,
    cluster_face_crop,
    cluster_images,
    create_gallery,
    dismiss_cluster,
    enrol_cluster,
    list_cluster_sets,
    merge_clusters,
    name_cluster,
    search,
    show_cluster_set,
    split_cluster,
    undo_cluster_action,
)
from tests.postgres import PostgresCluster


@dataclass(frozen=True)
class Photos:
    pairs: dict[str, tuple[Path, Path]]
    """Person id -> (neutral, smiling) photos clustered."""
    composite: Path
    """Both photos of :attr:`twice` side by side: two faces of one image."""
    twice: str
    other: Path
    """The composite's person's smiling photo alone (never clustered)."""

    def all(self) -> tuple[Path, ...]:
        return (*[p for pair in self.pairs.values() for p in pair], self.composite)


@pytest.fixture(scope="module")
def photos(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Photos:
    london = data_dir / "london" / "images"
    ids = sorted({p.name.split("_")[0] for p in london.glob("*_neutral.jpg")})[:4]
    pairs = {i: (london / f"{i}_neutral.jpg", london / f"{i}_smiling.jpg") for i in ids[:3]}
    twice = ids[3]
    a = Image.open(london / f"{twice}_neutral.jpg").convert("RGB")
    b = Image.open(london / f"{twice}_smiling.jpg").convert("RGB")
    both = Image.new("RGB", (a.width + b.width, max(a.height, b.height)), "white")
    both.paste(a, (0, 0))
    both.paste(b, (a.width, 0))
    composite = tmp_path_factory.mktemp("cluster_sets") / "two.jpg"
    both.save(composite, quality=92)
    return Photos(pairs, composite, twice, london / f"{twice}_smiling.jpg")


@pytest.fixture(params=["sqlite", "postgresql"])
def ws(request: pytest.FixtureRequest, tmp_path: Path, engine: Engine) -> Iterator[Workspace]:
    url = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    w = open_workspace(Settings(data_dir=tmp_path / "ws", database_url=url), engine=engine)
    yield w
    w.close()


@dataclass(frozen=True)
class People:
    local: User
    alice: User
    """Clusters (searcher, default organisation)."""
    bob: User
    """Reviewer of the default organisation."""
    eve: User
    """Reviewer of another organisation."""


def _people(ws: Workspace) -> People:
    local = local_operator(ws, "x")
    alice = ws.access.create_user("alice", [Role.SEARCHER], by=local)
    bob = ws.access.create_user("bob", [Role.REVIEWER], by=local)
    ws.orgs.create_org("other", "Other", by=local)
    eve = ws.access.create_user("eve", [Role.REVIEWER], by=local, org="other")
    return People(local, alice, bob, eve)


def _keep(ws: Workspace, who: User, photos: Photos) -> ImagesClustered:
    req = ClusterImages(photos.all(), "identify unknown people", "C-25", keep=True)
    res = cluster_images(ws, who, req)
    assert res.set_id is not None
    return res


def _cluster_of(res: ImagesClustered, path: Path) -> int:
    (k,) = [f.cluster for f in res.faces if f.image == str(path)]
    return k


def _ops(ws: Workspace) -> list[str]:
    return [str(e.record.operation) for e in ws.audit.entries()]


def _rows(ws: Workspace) -> dict[str, int]:
    with ws.db.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (tables.sets, tables.faces, tables.clusters, tables.actions)
        }


def _membership(ws: Workspace, who: User, set_id: str) -> set[frozenset[int]]:
    return {frozenset(c.faces) for c in show_cluster_set(ws, who, set_id).clusters}


def test_keep_show_and_review_with_undo(ws: Workspace, photos: Photos) -> None:
    ppl = _people(ws)
    res = _keep(ws, ppl.alice, photos)
    sid = res.set_id
    assert sid is not None
    (entry,) = [e for e in ws.audit.entries() if e.record.operation == "cluster"]
    assert entry.seq == res.audit_seq and entry.record.details["cluster_set_id"] == sid

    cs = show_cluster_set(ws, ppl.bob, sid)
    assert len(cs.faces) == len(res.faces) == 8
    assert {frozenset(c.faces) for c in cs.clusters} == {frozenset(m) for m in res.clusters}
    assert cs.purpose == "identify unknown people" and cs.case_ref == "C-25"
    assert cs.created_by == ppl.alice.id and cs.owner_org == "default"
    assert cs.expires_at - cs.created_at == timedelta(days=30)
    assert ws.cluster_sets.crop(ppl.bob, cs, 0)[:2] == b"\xff\xd8"  # a JPEG
    original = _membership(ws, ppl.bob, sid)

    # another organisation's reviewer sees nothing; a local operator reads but may not act
    with pytest.raises(PermissionDenied):
        show_cluster_set(ws, ppl.eve, sid)
    with pytest.raises(PermissionDenied):
        name_cluster(ws, ppl.eve, sid, 0, "x")
    assert show_cluster_set(ws, ppl.local, sid).set_id == sid
    with pytest.raises(AuthenticationFailed):
        name_cluster(ws, ppl.local, sid, 0, "x")

    # two faces of one photo are two people: the merge is refused and nothing is written
    left, right = sorted(
        (f for f in res.faces if f.image == str(photos.composite)), key=lambda f: f.box.left
    )
    assert left.cluster != right.cluster
    before, rows = _ops(ws), _rows(ws)
    with pytest.raises(CannotLink):
        merge_clusters(ws, ppl.bob, sid, left.cluster, right.cluster)
    assert _ops(ws) == before and _rows(ws) == rows

    p1, p2, p3 = (_cluster_of(res, pair[0]) for pair in photos.pairs.values())
    assert len({p1, p2, p3}) == 3
    p2_faces = sorted(show_cluster_set(ws, ppl.bob, sid).cluster(p2).faces)
    merged = merge_clusters(ws, ppl.bob, sid, p1, p2)
    assert len(merged.cluster(p1).faces) == 4
    split = split_cluster(ws, ppl.alice, sid, p1, tuple(p2_faces))
    new = next(c.cluster for c in split.clusters if sorted(c.faces) == p2_faces)
    assert new not in {c.cluster for c in merged.clusters}
    named = name_cluster(ws, ppl.bob, sid, new, "man in the blue coat")
    assert named.cluster(new).label == "man in the blue coat"
    dismissed = dismiss_cluster(ws, ppl.bob, sid, p3, "a poster, not a person")
    assert dismissed.cluster(p3).dismissed
    with pytest.raises(Conflict):
        name_cluster(ws, ppl.bob, sid, p3, "x")

    # a change whose audit entry cannot be written is not made either
    rows = _rows(ws)
    real_append = ws.audit.append

    def broken(*args: object, **kwargs: object) -> object:
        raise StoreError("audit write failed")

    ws.audit.append = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreError):
            merge_clusters(ws, ppl.bob, sid, p1, left.cluster)
    finally:
        ws.audit.append = real_append  # type: ignore[method-assign]
    assert _rows(ws) == rows
    assert len(show_cluster_set(ws, ppl.bob, sid).cluster(p1).faces) == 2

    undone = undo_cluster_action(ws, ppl.bob, sid)  # the dismissal
    assert not undone.cluster(p3).dismissed
    assert undo_cluster_action(ws, ppl.bob, sid).cluster(new).label is None  # the label
    undo_cluster_action(ws, ppl.bob, sid)  # the split
    assert len(show_cluster_set(ws, ppl.bob, sid).cluster(p1).faces) == 4
    undo_cluster_action(ws, ppl.bob, sid)  # the merge
    assert _membership(ws, ppl.bob, sid) == original
    with pytest.raises(Conflict):
        undo_cluster_action(ws, ppl.bob, sid)

    reviews = [e for e in ws.audit.entries() if e.record.operation == "cluster_review"]
    assert [e.record.details["action"] for e in reviews] == [
        "merge",
        "split",
        "name",
        "dismiss",
        "undo",
        "undo",
        "undo",
        "undo",
    ]
    assert [e.record.actor for e in reviews][:2] == [ppl.bob.id, ppl.alice.id]
    assert all(e.record.details["cluster_set_id"] == sid for e in reviews)
    assert all(e.record.case_ref == "C-25" for e in reviews)
    assert "blue coat" not in str(reviews[2].record.details)  # a label's hash, not its text
    final = show_cluster_set(ws, ppl.bob, sid)
    assert [a.audit_seq for a in final.actions] == [e.seq for e in reviews]
    assert [a.undone for a in final.actions] == [True] * 4 + [False] * 4


def test_sets_listed_to_their_readers_and_crops_shown_audited(
    ws: Workspace, photos: Photos
) -> None:
    ppl = _people(ws)
    first = _keep(ws, ppl.alice, photos).set_id
    second = _keep(ws, ppl.alice, photos).set_id
    listed = list_cluster_sets(ws, ppl.bob)
    assert {s.set_id for s in listed} == {first, second}
    assert first is not None
    shown = show_cluster_set(ws, ppl.bob, first)
    counts = (len(shown.faces), len(shown.clusters), "C-25")
    assert all((s.faces, s.clusters, s.case_ref) == counts for s in listed)
    assert listed[0].created_at >= listed[1].created_at  # newest first
    assert len(list_cluster_sets(ws, ppl.alice, limit=1)) == 1
    assert list_cluster_sets(ws, ppl.eve) == []  # another organisation's reviewer
    jpeg = cluster_face_crop(ws, ppl.bob, first, 0)
    assert jpeg[:2] == b"\xff\xd8"
    (view,) = [e for e in ws.audit.entries() if e.record.operation == "cluster_face_view"]
    assert view.record.actor == "bob" and view.record.details["cluster_set_id"] == first
    with pytest.raises(PermissionDenied):
        cluster_face_crop(ws, ppl.eve, first, 0)


def test_enrol_a_cluster_then_search_finds_it_and_retention_purges(
    ws: Workspace, photos: Photos
) -> None:
    ppl = _people(ws)
    res = _keep(ws, ppl.alice, photos)
    sid = res.set_id
    assert sid is not None
    create_gallery(ws, ppl.local, CreateGallery("leads", "warrant"))
    local = local_operator(ws, "x")  # now holding a grant on the new gallery
    left = min((f for f in res.faces if f.image == str(photos.composite)), key=lambda f: f.box.left)
    p3 = _cluster_of(res, photos.pairs[sorted(photos.pairs)[2]][0])
    dismiss_cluster(ws, ppl.bob, sid, p3, "not our case")
    with pytest.raises(Conflict):
        enrol_cluster(ws, local, EnrolCluster(sid, p3, "leads", "nobody", "warrant"))
    with pytest.raises(PermissionDenied):  # no enrol grant
        enrol_cluster(ws, ppl.bob, EnrolCluster(sid, left.cluster, "leads", "u1", "warrant"))

    done = enrol_cluster(
        ws, local, EnrolCluster(sid, left.cluster, "leads", "unknown-1", "warrant", "case C-25")
    )
    assert len(done.template_ids) == 1 and done.subject.external_id == "unknown-1"
    entry = list(ws.audit.entries())[-1]
    assert entry.record.operation == "cluster_enrol" and entry.seq == done.audit_seq
    d = entry.record.details
    assert (d["cluster_set_id"], d["legal_basis"], d["faces"]) == (sid, "warrant", 1)
    assert entry.record.galleries == ("leads",)
    assert ws.images.count() == 0  # no image kept in the gallery
    actions = show_cluster_set(ws, ppl.bob, sid).actions
    assert actions[-1].action == "enrol"
    with pytest.raises(Conflict):  # an enrolment is undone by erasure, not here
        undo_cluster_action(ws, ppl.bob, sid)

    found = search(
        ws,
        local,
        SearchRequest(photos.other, ("leads",), "identify unknown people", "C-25"),
    )
    (face,) = found.faces
    assert [c.external_id for c in face.candidates] == ["unknown-1"]

    # retention: kept until 30 days, then gone with everything it held
    now = ws.clock()
    early = apply_retention(ws, local, ApplyRetention(now=now + timedelta(days=29)))
    assert early.cluster_sets_deleted == []
    assert _rows(ws)[tables.faces.name] == 8
    run = apply_retention(ws, local, ApplyRetention(now=now + timedelta(days=31)))
    assert run.cluster_sets_deleted == [sid]
    assert set(_rows(ws).values()) == {0}
    purge = [e for e in ws.audit.entries() if e.record.operation == "cluster_set_purge"]
    assert len(purge) == 1 and purge[0].record.details["cluster_set_ids"] == [sid]
    assert purge[0].record.details["faces"] == 8
    # the enrolled subject is the gallery's now, under the gallery's own retention
    assert ws.store.counts().templates == 1


def test_kept_faces_are_encrypted_with_the_template_key(
    tmp_path: Path, engine: Engine, photos: Photos
) -> None:
    key = tmp_path / "template.key"
    key.write_text(generate_key().hex(), encoding="ascii")
    ws = open_workspace(Settings(data_dir=tmp_path / "ws", template_key=key), engine=engine)
    try:
        local = local_operator(ws, "x")
        res = _keep(ws, local, photos)
        sid = res.set_id
        assert sid is not None
        with ws.db.connect() as conn:
            rows = conn.execute(sa.select(tables.faces)).all()
        assert rows and all(r.encrypted for r in rows)
        assert all(len(r.template) != 128 * 4 for r in rows)  # nonce + tag: not the raw vector
        assert all(r.crop[:2] != b"\xff\xd8" for r in rows)
        kept = ws.cluster_sets.get(local, sid)
        assert ws.cluster_sets.crop(local, kept, 0)[:2] == b"\xff\xd8"
        create_gallery(ws, local, CreateGallery("leads", "consent"))
        local = local_operator(ws, "x")
        k = _cluster_of(res, photos.pairs[sorted(photos.pairs)[0]][0])
        done = enrol_cluster(ws, local, EnrolCluster(sid, k, "leads", "p1", "consent"))
        assert len(done.template_ids) == 2
    finally:
        ws.close()


def test_cli_keep_show_and_review_needs_an_account(tmp_path: Path, photos: Photos) -> None:
    base = ["--data-dir", str(tmp_path / "ws"), "--operator", "tester"]
    runner = CliRunner()
    args = [*base, "cluster", *map(str, photos.all()), "--purpose", "p", "--case", "C-1", "--keep"]
    kept = runner.invoke(app, args)
    assert kept.exit_code == 0, kept.output
    match = re.search(r"kept as cluster set ([0-9a-f]{32})", kept.output)
    assert match is not None, kept.output
    sid = match.group(1)
    shown = runner.invoke(app, [*base, "clusters", "show", sid, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["set_id"] == sid and len(data["faces"]) == 8
    table = runner.invoke(app, [*base, "clusters", "show", sid])
    assert table.exit_code == 0 and sid in table.output
    refused = runner.invoke(app, [*base, "clusters", "name", sid, "0", "someone"])
    assert refused.exit_code != 0 and "account" in refused.output
