"""``faceledger video search`` and ``video watch`` as a user runs them, on a composed video."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceledger.video import compose, default_scenario, open_video
from tests.integration.test_cli_core import run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("video-cli")
    london = data_dir / "london/images"
    appearances, shots, _ = default_scenario(london)
    video = root / "scenario.mp4"
    compose(video, appearances, shots)
    listing = root / "watchlist.csv"
    rows = ["image,subject"] + [
        f"{london / f'{s}_neutral.jpg'},{s}" for s in ("001", "005", "010", "011", "012")
    ]
    listing.write_text("\n".join(rows) + "\n")
    ws = root / "ws"
    for args in (
        ("gallery", "create", "watchlist", "--legal-basis", "statute"),
        ("enroll", "watchlist", str(listing)),
    ):
        r = run("--data-dir", str(ws), *args)
        assert r.returncode == 0, r.stderr
    return ws, video


def test_video_search_writes_json_report_and_blurred_leads(
    workspace: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, video = workspace
    out, report, drawn = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "leads.mp4"
    r = run(
        "--data-dir", str(ws), "video", "search", str(video), "-g", "watchlist",
        "--purpose", "test: cli", "--case", "C-9", "--json", str(out), "--report",
        str(report), "--draw", str(drawn), "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "expected false alerts" in r.stdout
    data = json.loads(out.read_text())
    named = {t["candidates"][0]["subject"] for t in data["tracks"] if t["candidates"]}
    assert named == {"001", "005"}
    assert data["expected_false_alerts"] == pytest.approx(
        data["tracks_searched"] * data["target_fpir"], abs=1e-6
    )
    assert data["processing"]["realtime_factor"] > 0 and data["video"]["sha256"]
    for t in data["tracks"]:
        if t["outcome"] == "no_candidate":
            assert "best_face" not in t and "search_id" not in t
    page = report.read_text()
    assert "Expected false alerts" in page and "<svg" in page and "data:image/jpeg" in page
    with open_video(drawn) as reader:
        assert sum(1 for _ in reader) == 200


def test_video_search_refuses_a_file_that_is_not_a_video(
    workspace: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, _ = workspace
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00" * 4096)
    r = run(
        "--data-dir", str(ws), "video", "search", str(bad), "-g", "watchlist",
        "--purpose", "test", "--case", "C-9", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 2 and "bad_video" in r.stderr


def test_video_watch_prints_alerts_as_json_lines(workspace: tuple[Path, Path]) -> None:
    ws, video = workspace
    r = run(
        "--data-dir", str(ws), "video", "watch", str(video), "-g", "watchlist",
        "--purpose", "test: watch", "--case", "C-10", "--realtime", "--jsonl",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    alerts = [x for x in lines if "alert_audit_seq" in x]
    assert {a["candidates"][0]["subject"] for a in alerts} == {"001", "005"}
    assert lines[-1]["alerts"] == len(alerts)
    log = run("--data-dir", str(ws), "audit", "verify")
    assert log.returncode == 0, log.stderr
