"""Clustering over HTTP on real images: uploads clustered and kept as a set, the set shown,
merged and the merge undone, a cluster enrolled into a gallery; who may do what; a purpose
required."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from faceledger.video import Appearance, Shot, compose
from tests.api.live import GALLERY, Deployment, Live

API = "/api/v1"
STEMS = ("001_neutral", "001_smiling", "005_neutral", "005_smiling")


def _cluster(
    c: httpx.Client,
    dep: Deployment,
    london: dict[str, bytes],
    who: str = "searcher",
    **form: object,
) -> httpx.Response:
    files = [("images", (f"{s}.jpg", london[s], "image/jpeg")) for s in STEMS]
    data = {"purpose": "unknown faces", "case_ref": "C-1", "keep": "true", **form}
    return c.post(
        f"{API}/clusterings",
        files=files,
        data={k: v for k, v in data.items() if v is not None},
        headers=dep.headers(who),
    )


def _no_upload_left() -> None:
    """The uploads' temporary directories are gone."""
    assert not list(Path(tempfile.gettempdir()).glob("faceledger-cluster-*"))


def test_given_uploads_when_clustered_and_kept_then_the_set_is_reviewed_and_enrolled(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        r = _cluster(c, dep, london, who="enroller")
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["clusters"]) == 2
        assert body["cluster_set_id"] and body["audit_seq"] >= 1
        assert 0 < body["target_fmr"] < 1 and body["threshold"] > 0
        by_cluster = {
            k: sorted(body["faces"][i]["image"] for i in members)
            for k, members in enumerate(body["clusters"])
        }
        assert sorted(by_cluster.values()) == [
            ["001_neutral.jpg", "001_smiling.jpg"],
            ["005_neutral.jpg", "005_smiling.jpg"],
        ]
        assert all("thumbnail" not in f and "template" not in f for f in body["faces"])
        _no_upload_left()
        set_id = body["cluster_set_id"]
        base = f"{API}/cluster-sets/{set_id}"

        shown = c.get(base, headers=dep.headers("enroller"))
        assert shown.status_code == 200, shown.text
        assert shown.json()["set_id"] == set_id and len(shown.json()["clusters"]) == 2
        assert c.get(base, headers=dep.headers("reviewer")).status_code == 200
        for other in ("searcher", "auditor", "admin"):  # neither its creator nor a reviewer
            assert c.get(base, headers=dep.headers(other)).status_code == 403

        merged = c.post(
            f"{base}/merge", json={"into": 0, "other": 1}, headers=dep.headers("reviewer")
        )
        assert merged.status_code == 200, merged.text
        assert len(merged.json()["clusters"]) == 1
        undone = c.post(f"{base}/undo", headers=dep.headers("enroller"))
        assert undone.status_code == 200, undone.text
        assert len(undone.json()["clusters"]) == 2
        assert undone.json()["actions"][0]["action"] == "merge"

        named = c.post(
            f"{base}/name",
            json={"cluster": 0, "label": "person A"},
            headers=dep.headers("enroller"),
        )
        assert named.json()["clusters"][0]["label"] == "person A"

        enrol = {
            "cluster": 0,
            "gallery": GALLERY,
            "subject": "from-cluster",
            "legal_basis": "consent",
        }
        refused = c.post(f"{base}/enrol", json=enrol, headers=dep.headers("reviewer"))
        assert refused.status_code == 403  # reviewers may read the set, not enrol
        done = c.post(
            f"{base}/enrol", json={**enrol, "note": "C-1"}, headers=dep.headers("enroller")
        )
        assert done.status_code == 201, done.text
        assert done.json()["subject"] == "from-cluster" and done.json()["template_ids"]
        subject = c.get(
            f"{API}/galleries/{GALLERY}/subjects/from-cluster", headers=dep.headers("enroller")
        )
        assert subject.status_code == 200, subject.text
        last = c.post(f"{base}/undo", headers=dep.headers("enroller"))
        assert last.status_code == 409  # an enrolment is not undone here


def test_given_clustering_when_split_or_dismissed_then_the_set_follows(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        body = _cluster(c, dep, london).json()
        base = f"{API}/cluster-sets/{body['cluster_set_id']}"
        face = body["clusters"][0][0]
        split = c.post(
            f"{base}/split", json={"cluster": 0, "faces": [face]}, headers=dep.headers("searcher")
        )
        assert split.status_code == 200, split.text
        assert len(split.json()["clusters"]) == 3
        dismissed = c.post(
            f"{base}/dismiss",
            json={"cluster": 1, "reason": "poster"},
            headers=dep.headers("searcher"),
        )
        assert dismissed.status_code == 200, dismissed.text
        assert [x["dismissed"] for x in dismissed.json()["clusters"] if x["cluster"] == 1] == [True]
        missing = c.get(f"{API}/cluster-sets/nope", headers=dep.headers("searcher"))
        assert missing.status_code == 404


def test_given_no_purpose_or_a_role_without_detect_when_clustering_then_refused(
    live: Live, deployment: Deployment, london: dict[str, bytes]
) -> None:
    dep = deployment
    with live.client() as c:
        r = _cluster(c, dep, london, purpose=None)
        assert r.status_code == 422 and r.json()["code"] == "purpose_required"
        for who in ("auditor", "admin"):
            assert _cluster(c, dep, london, who=who).status_code == 403
        _no_upload_left()


def test_given_a_video_among_the_uploads_when_clustered_then_its_track_joins_the_photo(
    live: Live,
    deployment: Deployment,
    london: dict[str, bytes],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """A 2 s video of London 001 (its smiling portrait moving) uploaded with the neutral
    portraits of 001 and 005: the track is one face, clustered with 001's photo; the kept
    set keeps its span."""
    video = tmp_path / "walk.mp4"
    portrait = data_dir / "london" / "images" / "001_smiling.jpg"
    compose(
        video,
        [Appearance("london:001", portrait, 0.0, 2.0, (0.4, 0.5), (0.6, 0.5))],
        [Shot(0.0, 2.0, seed=4)],
    )
    files = [("images", ("walk.mp4", video.read_bytes(), "video/mp4"))]
    files += [
        ("images", (f"{s}.jpg", london[s], "image/jpeg")) for s in ("001_neutral", "005_neutral")
    ]
    data = {"purpose": "unknown faces", "case_ref": "C-V", "keep": "true"}
    with live.client() as c:
        r = c.post(
            f"{API}/clusterings", files=files, data=data, headers=deployment.headers("enroller")
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["videos"] == 1 and body["images"] == 2
        tracks = [f for f in body["faces"] if f["track"] is not None]
        assert len(tracks) == 1 and tracks[0]["image"] == "walk.mp4"
        span = tracks[0]["track"]
        assert 0.0 <= span["start_s"] < span["best_s"] + 1e-6 <= span["end_s"] + 2e-6 <= 2.1
        photo = next(f for f in body["faces"] if f["image"] == "001_neutral.jpg")
        assert tracks[0]["cluster"] == photo["cluster"] >= 0
        other = next(f for f in body["faces"] if f["image"] == "005_neutral.jpg")
        assert other["cluster"] != photo["cluster"]
        kept = c.get(
            f"{API}/cluster-sets/{body['cluster_set_id']}", headers=deployment.headers("enroller")
        )
        assert kept.status_code == 200, kept.text
        kept_tracks = [f for f in kept.json()["faces"] if f["track"] is not None]
        assert len(kept_tracks) == 1
        assert kept_tracks[0]["track"]["start_s"] == span["start_s"]
    _no_upload_left()
