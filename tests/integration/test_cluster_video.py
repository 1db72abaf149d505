"""Clustering videos with images: each track is one face, a pre-cluster of its frames.

A composed video (``faceledger.video.synth.default_scenario``: two shots; London 001 in both,
004 in the first, 005 and 006 in the second) is clustered with the neutral portraits of
those four people and of two others, through the CLI, kept as a cluster set. Tracks of one
person on either side of the cut must join one cluster with that person's portrait; tracks
on screen at the same time must never share a cluster, neither when clustered nor when a
reviewer merges them later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faceledger.access import Role
from faceledger.cli.app import app
from faceledger.config import Settings
from faceledger.errors import CannotLink
from faceledger.gallery import open_workspace
from faceledger.gallery.workspace import local_operator
from faceledger.usecases import (
    ClusterImages,
    cluster_images,
    merge_clusters,
    show_cluster_set,
    split_cluster,
)
from faceledger.video import compose, default_scenario

PEOPLE = ("001", "004", "005", "006")
OTHERS = ("002", "003")
CUT_S = 4.0


@dataclass(frozen=True)
class Run:
    data: dict[str, Any]
    output: str
    ws_dir: Path
    video: Path


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("cluster-video")
    london = data_dir / "london" / "images"
    appearances, shots, _ = default_scenario(london)
    video = tmp / "scenario.mp4"
    compose(video, appearances, shots)
    stills = [london / f"{p}_neutral.jpg" for p in PEOPLE + OTHERS]
    out = tmp / "clusters.json"
    ws = tmp / "ws"
    args = ["--data-dir", str(ws), "--operator", "tester", "cluster", str(video)]
    args += [*map(str, stills), "--purpose", "who is in the footage", "--case", "C-25V"]
    args += ["--json", str(out), "--keep"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return Run(json.loads(out.read_text(encoding="utf-8")), result.output, ws, video)


def _who(face: dict[str, Any]) -> str:
    """The labelled person of a face: a portrait by its name, a track by where it is."""
    track = face["track"]
    if track is None:
        return Path(face["image"]).name.split("_")[0]
    left, top, right, bottom = face["box"]
    x, y = (left + right) / 2 / 640, (top + bottom) / 2 / 480
    if track["start_s"] < CUT_S:
        return "001" if y < 0.5 else "004"
    if y > 0.5:
        return "001"
    return "006" if x < 0.5 else "005"


def _tracks(run: Run) -> list[dict[str, Any]]:
    return [f for f in run.data["faces"] if f["track"] is not None]


def test_each_track_is_one_face_with_its_span(run: Run) -> None:
    tracks = _tracks(run)
    assert run.data["videos"] == 1 and run.data["images"] == len(PEOPLE + OTHERS)
    assert {_who(t) for t in tracks} == set(PEOPLE)
    for t in tracks:
        span = t["track"]
        assert t["image"] == str(run.video)
        assert 0 <= span["start_s"] < span["end_s"] <= 8.0
        assert not (span["start_s"] < CUT_S < span["end_s"]), "a track crossed the shot cut"
        assert 1 <= span["faces_used"] <= span["faces_seen"]
    assert len({t["face_index"] for t in tracks}) == len(tracks)
    assert "and 1 videos" in run.output


def test_one_person_across_the_cut_is_one_cluster_with_their_portrait(run: Run) -> None:
    faces = run.data["faces"]
    for person in PEOPLE:
        mine = {f["cluster"] for f in faces if _who(f) == person}
        assert len(mine) == 1 and -1 not in mine, f"{person} split into {mine}"
    ones = [t for t in _tracks(run) if _who(t) == "001"]
    assert {t["track"]["start_s"] < CUT_S for t in ones} == {True, False}
    for members in run.data["clusters"]:
        assert len({_who(faces[i]) for i in members}) == 1, "a cluster mixes people"


def test_tracks_on_screen_together_never_share_a_cluster(run: Run) -> None:
    tracks = _tracks(run)
    for i, a in enumerate(tracks):
        for b in tracks[i + 1 :]:
            sa, sb = a["track"], b["track"]
            if sa["start_s"] <= sb["end_s"] and sb["start_s"] <= sa["end_s"]:
                assert a["cluster"] != b["cluster"]


def test_audit_entry_names_the_video_not_the_people(run: Run) -> None:
    ws = open_workspace(Settings(data_dir=run.ws_dir))
    try:
        entry = next(e for e in ws.audit.entries() if e.record.operation == "cluster")
        details = entry.record.details
        assert details["videos"] == 1 and details["images"] == len(PEOPLE + OTHERS)
        assert details["tracks"] == len(_tracks(run))
        assert details["video_sha256s"] == [_tracks(run)[0]["image_sha256"]]
        assert "001" not in json.dumps(details)
    finally:
        ws.close()


def test_kept_set_refuses_merging_tracks_seen_together(run: Run) -> None:
    set_id = run.data["cluster_set_id"]
    ws = open_workspace(Settings(data_dir=run.ws_dir))
    try:
        me = ws.access.create_user("rita", [Role.REVIEWER], by=local_operator(ws, "tester"))
        cs = show_cluster_set(ws, me, set_id)
        tracked = [f for f in cs.faces if f.span is not None]
        assert len(tracked) == len(_tracks(run))
        by_who = {_who(run.data["faces"][f.face_no]): f for f in tracked if f.span}
        first = by_who["004"]  # on screen with 001 in shot 1
        with_001 = [f for f in tracked if f.cluster == by_who["001"].cluster and f.span is not None]
        in_shot1 = next(f for f in with_001 if f.span is not None and f.span[0] < CUT_S)
        with pytest.raises(CannotLink):  # 001 and 004 crossed shot 1 together
            merge_clusters(ws, me, set_id, in_shot1.cluster, first.cluster)
        # 001's second-shot track split off, then merged back: one person's tracks apart
        in_shot2 = next(f for f in with_001 if f.span is not None and f.span[0] >= CUT_S)
        after = split_cluster(ws, me, set_id, in_shot1.cluster, (in_shot2.face_no,))
        moved = next(f for f in after.faces if f.face_no == in_shot2.face_no)
        back = merge_clusters(ws, me, set_id, in_shot1.cluster, moved.cluster)
        assert next(f for f in back.faces if f.face_no == in_shot2.face_no).cluster == (
            in_shot1.cluster
        )
    finally:
        ws.close()


def test_unreadable_videos_and_images_are_named_and_the_rest_clustered(
    run: Run, data_dir: Path, tmp_path: Path
) -> None:
    """A truncated video (its container header intact) and a file that is no image: each is
    listed with its typed error, the readable photos are clustered, one audit entry."""
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(run.video.read_bytes()[:4096])
    garbage = tmp_path / "notes.jpg"
    garbage.write_bytes(b"not an image at all\n" * 50)
    london = data_dir / "london" / "images"
    photos = (london / "001_neutral.jpg", london / "001_smiling.jpg")
    ws = open_workspace(Settings(data_dir=tmp_path / "ws"))
    try:
        req = ClusterImages((truncated, garbage, *photos), "who", "C-25B", keep=True)
        res = cluster_images(ws, local_operator(ws, "tester"), req)
        assert dict(res.failed) == {str(truncated): "bad_video", str(garbage): "bad_image"}
        assert res.videos == 1 and res.images == 3
        assert len(res.faces) == 2 and res.faces[0].cluster == res.faces[1].cluster >= 0
        entries = [e for e in ws.audit.entries() if e.record.operation == "cluster"]
        assert len(entries) == 1
        assert entries[0].record.details["unreadable_images"] == 2
        assert entries[0].record.details["video_sha256s"] == []
        assert res.set_id is not None
        kept = show_cluster_set(ws, local_operator(ws, "tester"), res.set_id)
        assert len(kept.faces) == 2
    finally:
        ws.close()
