"""The command line on real images: detect, verify, models, demo (run as a user would)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def run(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACELEDGER_")}
    full["COLUMNS"] = "200"
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "faceledger", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_detect_json_and_draw(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "drawn.png"
    r = run("detect", str(data_dir / "scenes/bald_guys.jpg"), "--json", "--draw", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["faces"]) >= 10
    f = data["faces"][0]
    assert len(f["landmarks"]) == 5 and 0 <= f["confidence"] <= 1
    assert 0 <= f["quality"]["score"] <= 100
    assert Image.open(out).size == Image.open(data_dir / "scenes/bald_guys.jpg").size


def test_verify_json_reports_estimated_fmr(data_dir: Path) -> None:
    img = data_dir / "london/images"
    r = run(
        "verify",
        str(img / "063_neutral.jpg"),
        str(img / "063_smiling.jpg"),
        "--fmr",
        "1e-3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["outcome"] == "match" and d["target_fmr"] == 1e-3
    assert d["estimated_fmr"]["value"] < 1e-3 and d["estimated_fmr"]["impostor_pairs"] > 0
    r2 = run("verify", str(img / "063_neutral.jpg"), str(img / "097_smiling.jpg"), "--fmr", "1e-3")
    assert r2.returncode == 0 and "NO MATCH" in r2.stdout


def test_bad_input_gives_clean_error_and_exit_2(tmp_path: Path, data_dir: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    r = run("verify", str(junk), str(data_dir / "london/images/001_neutral.jpg"))
    assert r.returncode == 2
    assert "[bad_image]" in r.stderr and "Traceback" not in r.stderr
    r = run(
        "verify", str(data_dir / "scenes/dogs.jpg"), str(data_dir / "london/images/001_neutral.jpg")
    )
    assert r.returncode == 2 and "[no_face]" in r.stderr


def test_models_json() -> None:
    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    cards = json.loads(r.stdout)
    dlib = next(c for c in cards if c["id"] == "dlib-resnet-v1")
    assert dlib["dimension"] == 128 and dlib["calibration"]["impostor_pairs"] > 500_000
    assert all(len(f["sha256"]) == 64 for f in dlib["files"])
    # served by onnxruntime on the graph built from those weights, which says where it is
    assert dlib["runtime"]["name"] == "onnxruntime", dlib["runtime"]
    assert "ONNX graph" in dlib["runtime"]["note"] and len(dlib["runtime"]["sha256"]) == 64


def test_demo_shows_the_main_job_on_the_bundled_sample(tmp_path: Path) -> None:
    # run from a folder with no ../shared beside it, as on a user's machine
    ws = tmp_path / "demo-ws"
    r = run("demo", "--into", str(ws), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    sample = REPO / "src/faceledger/sample"
    people = len(list(sample.glob("*_neutral.jpg")))
    assert f"faceledger/sample ({people} people)" in out
    # the README says as many (in words)
    words = {10: "ten", 12: "twelve", 8: "eight", 6: "six"}
    assert f"sample of {words[people]} London Set people" in " ".join(
        (REPO / "README.md").read_text().split()
    )
    assert "run by onnxruntime" in out  # the fast path is the default
    assert f"enrol a gallery of {people - 1} people" in out
    # 1:1 at a target FMR, 1:N with a candidate (FMR and FPIR) and an explicit no candidate
    assert "MATCH (similarity" in out and "no match (similarity" in out
    assert "est. FMR" in out and "est. FPIR" in out and "no candidate" in out
    # two reviewers other than the searcher; the searcher's own verdict refused
    assert "may not review their own search" in out
    assert "lead is awaiting_second_confirmation" in out and "lead is confirmed" in out
    assert out.count("no score shown") == 2  # each reviewer looked blind first
    assert "audit verify: OK" in out
    # the commands it suggests work on the workspace it leaves
    photo = sample / "004_smiling.jpg"
    searched = run(
        *("--data-dir", str(ws), "search", str(photo), "-g", "demo"),
        *("--purpose", "demo follow-up", "--case", "DEMO-2"),
        cwd=tmp_path,
    )
    assert searched.returncode == 0, searched.stderr
    assert "004" in searched.stdout
    shown = run("--data-dir", str(ws), "gallery", "show", "demo", cwd=tmp_path)
    assert shown.returncode == 0 and f"{people - 1}" in shown.stdout, shown.stdout
    exported = run("--data-dir", str(ws), "audit", "export", cwd=tmp_path)
    assert json.loads(exported.stdout.splitlines()[-1])["body"]["case_ref"] == "DEMO-2"
    listed = run("--data-dir", str(ws), "review", "list", cwd=tmp_path)
    # the new lead awaits review, but not by its searcher, who has nothing to decide
    assert listed.returncode == 0 and "no search has a lead awaiting" in listed.stdout
    # a second run into the same folder is refused rather than mixed in
    again = run("demo", "--into", str(ws), cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_verify_with_purpose_is_audited_and_can_be_required(tmp_path: Path) -> None:
    sample = REPO / "src/faceledger/sample"
    a, b = str(sample / "006_neutral.jpg"), str(sample / "006_smiling.jpg")
    env_dir = ["--data-dir", str(tmp_path / "ws")]
    r = run(*env_dir, "verify", a, b, env={"FACELEDGER_VERIFY_REQUIRES_PURPOSE": "1"})
    assert r.returncode == 2 and "[purpose_required]" in r.stderr
    r = run(*env_dir, "verify", a, b, "--purpose", "border check", "--case", "B-9")
    assert r.returncode == 0 and "MATCH" in r.stdout
    exported = run(*env_dir, "audit", "export")
    entry = json.loads(exported.stdout.splitlines()[-1])["body"]
    assert entry["op"] == "verify" and entry["purpose"] == "border check"
    assert entry["details"]["outcome"] == "match" and entry["case_ref"] == "B-9"
    assert run(*env_dir, "audit", "verify").returncode == 0


def test_retention_apply_reports_subjects_and_probes(tmp_path: Path) -> None:
    r = run("--data-dir", str(tmp_path), "retention", "apply")
    assert r.returncode == 0, r.stderr
    assert "0 subject(s) erased, 0 kept probe image(s) deleted" in r.stdout
