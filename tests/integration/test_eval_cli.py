"""``faceledger eval`` end to end on small real subsets, and its HTML reports in Chromium.

The reports are opened in headless Chromium (the CI image needs ``apt-get install -y
chromium``): the DOM must hold every plot as an embedded PNG, and the screenshot must show
them painted (plots are the only coloured pixels on the page).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceledger.cli.eval_cmd import eval_app
from faceledger.config import Settings
from faceledger.match.identify import operating_point
from faceledger.models import ModelRegistry

LONDON_IDS = {f"{i:03d}" for i in range(1, 7)}


@dataclass(frozen=True)
class Run:
    json: dict[str, Any]
    report: Path
    output: str


def invoke(args: list[str], settings: Settings) -> str:
    result = CliRunner().invoke(eval_app, args, obj=settings)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def cli_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), workers=2)


@pytest.fixture(scope="module")
def pairs_run(
    data_dir: Path, cli_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """6 London people: 36 pairs (6 genuine), gender groups, paths absolute."""
    out = tmp_path_factory.mktemp("pairs")
    src = data_dir / "protocols" / "london_pairs_gender.csv"
    rows = []
    with open(src, encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            ids = {Path(r["a"]).name[:3], Path(r["b"]).name[:3]}
            if ids <= LONDON_IDS:
                r["a"] = str((src.parent / r["a"]).resolve())
                r["b"] = str((src.parent / r["b"]).resolve())
                rows.append(r)
    proto = out / "small_pairs.csv"
    with open(proto, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["a", "b", "same", "group_a", "group_b"])
        w.writeheader()
        w.writerows(rows)
    text = invoke(
        ["pairs", str(proto), "--folds", "3", "--fmr", "0.05", "--json", str(out / "r.json"),
         "--report", str(out / "r.html")],
        cli_settings,
    )  # fmt: skip
    return Run(json.loads((out / "r.json").read_text()), out / "r.html", text)


@pytest.fixture(scope="module")
def identify_run(
    data_dir: Path, cli_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """ORL: s1-s4 enrolled with 2 images each; probes: their 5th image + 3 strangers."""
    out = tmp_path_factory.mktemp("identify")
    orl = (data_dir / "orl").resolve()
    gallery = out / "gallery.csv"
    gallery.write_text(
        "image,subject\n"
        + "".join(f"{orl}/s{s}/{i}.pgm,s{s}\n" for s in range(1, 5) for i in (1, 2))
    )
    probes = out / "probes.csv"
    probes.write_text(
        "image,subject,group\n"
        + "".join(f"{orl}/s{s}/5.pgm,s{s},{'odd' if s % 2 else 'even'}\n" for s in range(1, 5))
        + "".join(f"{orl}/s{s}/1.pgm,s{s},{'odd' if s % 2 else 'even'}\n" for s in (35, 36, 37))
    )
    text = invoke(
        ["identify", "--gallery", str(gallery), "--probes", str(probes), "--fpir", "0.34",
         "--json", str(out / "r.json"), "--report", str(out / "r.html")],
        cli_settings,
    )  # fmt: skip
    return Run(json.loads((out / "r.json").read_text()), out / "r.html", text)


@pytest.fixture(scope="module")
def impostors_run(
    data_dir: Path, cli_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """UTKFace: the first 3 people of each gender x race (24 images, 276 impostor pairs)."""
    out = tmp_path_factory.mktemp("impostors")
    src = data_dir / "utkface_subset" / "labels.csv"
    picked: dict[tuple[str, str], list[dict[str, str]]] = {}
    with open(src, encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            bucket = picked.setdefault((r["gender"], r["race"]), [])
            if len(bucket) < 3:
                r["image"] = str((src.parent / r["image"]).resolve())
                bucket.append(r)
    labels = out / "labels.csv"
    with open(labels, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "age", "gender", "race"])
        w.writeheader()
        for bucket in picked.values():
            w.writerows(bucket)
    text = invoke(
        ["impostors", str(labels), "--fmr", "0.01", "--json", str(out / "r.json"),
         "--report", str(out / "r.html")],
        cli_settings,
    )  # fmt: skip
    return Run(json.loads((out / "r.json").read_text()), out / "r.html", text)


def test_eval_pairs_cli(pairs_run: Run) -> None:
    j = pairs_run.json
    assert (j["pairs"], j["genuine"], j["impostor"], j["no_face"]) == (36, 6, 30, 0)
    assert j["eer"] is not None and j["eer"] < 0.2
    assert j["folds"]["n"] == 3 and 0.0 <= j["folds"]["accuracy_mean"] <= 1.0
    assert set(j["groups"]) == {"female", "male"}
    assert j["threshold"]["rule"] == "fmr<=0.05"
    assert "FNMR at FMR" in pairs_run.output and "female" in pairs_run.output


def test_eval_identify_cli(identify_run: Run) -> None:
    j = identify_run.json
    assert (j["searches"], j["mated"], j["nonmated"], j["gallery_subjects"]) == (7, 4, 3, 4)
    assert j["rank1"] is not None and j["rank1"] >= 0.75
    assert set(j["groups"]) == {"odd", "even"}
    assert list(j["fnir_at_fpir"]) == ["0.1", "0.01", "0.003"]


def test_eval_identify_measures_the_thresholds_search_declares(
    identify_run: Run, cli_settings: Settings
) -> None:
    """The declared thresholds are ``search``'s own rule for this gallery's size, measured."""
    j = identify_run.json
    card = ModelRegistry(cli_settings.model_dir).get(j["model_id"])
    points = j["declared_operating_points"]
    assert list(points) == ["0.1", "0.01"]
    for key, point in points.items():
        op, _ = operating_point(card, cli_settings.normalisation, float(key), 8)
        assert point["threshold"] == pytest.approx(op.threshold)
        assert point["normalisation"] == op.normalisation == "none"  # 8 templates: raw cosine
        m = point["measured"]
        fp = m["false_positives"]
        assert 0 <= fp <= 3 and m["fpir"] == pytest.approx(fp / 3)
        assert point["measured_over_declared"] == pytest.approx(fp / 3 / float(key))
    # a stricter declared FPIR never has a lower threshold
    assert points["0.01"]["threshold"] >= points["0.1"]["threshold"]
    assert "declares" in identify_run.output and "default" in identify_run.output
    assert "Declared thresholds, measured" in identify_run.report.read_text()


def test_eval_impostors_cli(impostors_run: Run) -> None:
    j = impostors_run.json
    assert j["images"] == 24
    n = j["images_used"]
    assert j["impostor"] == n * (n - 1) // 2
    cols = j["columns"]
    assert set(cols) == {"gender", "race", "gender+race"}
    race = cols["race"]
    assert set(race["groups"]) == {"white", "black", "asian", "indian"}
    same = sum(g["pairs"] for g in race["groups"].values())
    assert same + race["cross_group"]["pairs"] == j["impostor"]


def test_malformed_protocol_exits_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,same\nx.jpg,y.jpg\n")
    result = CliRunner().invoke(eval_app, ["pairs", str(bad)], obj=Settings(data_dir=tmp_path))
    assert result.exit_code == 2
    assert "line 2" in result.output and "invalid_argument" in result.output


# ------------------------------------------------------------------------------ browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is required for the report test: apt-get install -y chromium")


def render(report: Path, workdir: Path) -> tuple[str, Image.Image]:
    """DOM as Chromium parsed it, and a full-width screenshot."""
    exe = chromium()
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={workdir / 'profile'}", "--hide-scrollbars",
    ]  # fmt: skip
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    shot = workdir / "shot.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1200,6000", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return dom, Image.open(shot).convert("RGB")


def coloured_pixels(img: Image.Image) -> int:
    a = np.asarray(img, dtype=np.int16)
    return int(np.count_nonzero(a.max(axis=2) - a.min(axis=2) > 60))


@pytest.mark.parametrize(
    ("run_name", "plots"),
    [("pairs_run", 4), ("identify_run", 2), ("impostors_run", 9)],
)
def test_report_renders_with_its_plots(
    run_name: str, plots: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run: Run = request.getfixturevalue(run_name)
    dom, shot = render(run.report, tmp_path)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', dom)
    assert len(images) == plots, [alt for alt, _ in images]
    for _alt, data in images:
        png = Image.open(io.BytesIO(base64.b64decode(data)))
        assert png.format == "PNG" and png.size[0] >= 400 and png.size[1] >= 300
    assert "What these numbers mean" in dom and "dlib-resnet-v1" in dom
    # self-contained: no scripts, nothing loaded from elsewhere
    assert "<script" not in dom and not re.search(r'(src|href)="(?!data:)', dom)
    # text and tables are grey/black: coloured pixels come only from painted plots
    assert coloured_pixels(shot) > 1_000 * plots


def test_blank_page_has_no_coloured_pixels(tmp_path: Path) -> None:
    """Control for the pixel check above: the same styles without the plots."""
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body><h1>Report</h1><table><tr><td>1</td></tr>"
                    "</table></body></html>")  # fmt: skip
    _, shot = render(page, tmp_path)
    assert coloured_pixels(shot) < 100
