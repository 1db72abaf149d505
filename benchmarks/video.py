"""Video search: faceledger against face_recognition's every-frame loop, same files, same run.

For each video it prints, side by side:

- **speed**: seconds per video of faceledger's video search, end to end as a user runs it
  (``usecases.search_video`` with default settings: 5 sampled frames a second, HOG on a copy of
  at most 640 px, tracks fused and searched once, leads recorded), of face_recognition's own
  loop (``_fr_video.py`` in its environment: every frame decoded, detected, encoded and
  compared; its ``loop_seconds``, i.e. without the import and the enrolment of its known faces),
  their ratio (face_recognition ÷ faceledger) and faceledger's real-time factor (video
  duration ÷ processing seconds);
- **accuracy** against ground truth: track recall and precision, identity switches, per-track
  and per-appearance FNIR / FPIR at the declared FPIR (``--fpir``, default 0.01), and for
  face_recognition (tolerance 0.6) its detection recall and identification per appearance.

Videos (``--videos``):

- ``default``: ``faceledger.video.synth.default_scenario`` (8 s, 25 frames/s, 2 shots, 5
  appearances of 4 London people, 2 of them enrolled);
- ``hard``: a composed scenario made here with a fixed seed (``hard_scenario``: 20 s at 15
  frames/s, 5 shots, 3-5 people on screen at once, faces 55-110 px, 10 people of whom 5 are
  enrolled, people re-appearing in later shots, never overlapping);
- ``video_01``, ``video_02``: the real clips of ``../shared/data/video`` with the hand labels
  of ``benchmarks/video_truth.json``. Nobody in them is enrolled: every track is non-mated, so
  they measure FPIR and detection / track recall only.

Gallery (built once under ``$TMPDIR/faceledger-bench/video``, reused while its listing is
unchanged): the enrolled London people (neutral portraits; the videos use the smiling ones),
every other London person who is in no video, and the UTKFace adults of
``utkface_subset`` as distractors (each a different person): 772 images, of which 711 get a
template (61 UTKFace crops fail the enrolment's quality gates or show no single face).
face_recognition is given the London part of it (``--fr-gallery london``, 95 people: its
enrolment runs again for every video, ~0.23 s a portrait, and the whole gallery would add
1-1.5 minutes per video); fewer distractors can only make its false alerts rarer and its
identifications easier, so the comparison leans its way. ``--fr-gallery full`` gives it all.

Matching: at each time a track has a box, the truth appearance active then whose box has the
highest IoU with it, if ≥ 0.3. A track's identity is the person it matches on most of its
boxes; a track matching nobody is a false track. Track recall = appearances with ≥ 1 track of
that person matching it / appearances; precision = tracks matching someone / tracks searched;
identity switches = appearances covered by more than one track (fragmentation) + tracks whose
boxes match more than one person (merges). FNIR per track = mated tracks (identity enrolled)
without that person at rank 1 of any of their searches / mated tracks; FPIR per track =
non-mated tracks (identity not enrolled) with any candidate / non-mated tracks; per
appearance alike (a mated appearance nobody tracked is a miss; FPIR counts the non-mated
appearances that were detected). face_recognition: a detection belongs to the truth box it
overlaps most (IoU ≥ 0.3); an enrolled appearance is found if any of its detections is labelled
with the right person, a non-enrolled one is a false alert if any of its detections gets a
label. Intervals are Wilson 95 %.

Reference environment: see benchmarks/README.md, "Throughput" (plus ``pip install av`` into
benchmarks/.venv-fr). Run::

    .venv/bin/python benchmarks/video.py [--videos default,hard,video_01,video_02]
        [--skip-fr] [--fpir 0.01] [--fr-every-composed 1] [--fr-gallery london|full]
        [--json out.json]

``--skip-fr`` reuses the last reference output cached for the same video, frame step and known
faces (its columns stay empty where there is none).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceledger import Settings
from faceledger.evaluate.intervals import wilson
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.types import Box
from faceledger.usecases import (
    CreateGallery,
    EnrolFolder,
    VideoSearchRequest,
    create_gallery,
    enrol_folder,
    search_video,
)
from faceledger.usecases.video import TrackOutcome, TrackSearcher, prepare_search
from faceledger.video import (
    Appearance,
    ScanSettings,
    Shot,
    VideoLimits,
    VideoScanner,
    compose,
    default_scenario,
    face_box,
    open_video,
)

HERE = Path(__file__).resolve().parent
FR_PYTHON = HERE / ".venv-fr" / "bin" / "python"
FR_SCRIPT = HERE / "_fr_video.py"
TRUTH_FILE = HERE / "video_truth.json"
VIDEOS = ("default", "hard", "video_01", "video_02")
GALLERY = "watchlist"
PURPOSE, CASE_REF = "benchmark: video search", "BENCH-VIDEO"
IOU_MATCH = 0.3
DETECTABLE_PX = 40
"""Faces smaller than this are below both detectors' scale (HOG with one upsampling: its
80 px window finds faces of about 40 px and up); recall is also given over the appearances
whose face reaches this size at some time."""
W, H = 640, 480
DEFAULT_FPS = 25.0
HARD_FPS = 15.0
HARD_SEED = 2021
HARD_SHOTS = 5
HARD_SHOT_S = 4.0
HARD_PEOPLE = 10
VERSION = 1
"""Bump when the composed videos change (forces them to be made again)."""
ADULT_AGE = 18

# Where the face is in the sprite made from a 600 px London portrait (faceledger.video.synth):
# the crop reaches this far left/right, up and down of the face centre, in portrait pixels,
# at 224 px of face.
_SPRITE_HALF_W, _SPRITE_UP, _SPRITE_DOWN, _SPRITE_FACE = 173.0, 228.0, 232.0, 224.0


# ------------------------------------------------------------------------------ truth


@dataclass(frozen=True)
class TruthAppearance:
    """One person on screen for a stretch (a composed appearance or a labelled segment)."""

    key: str
    person: str
    enrolled: bool
    start_s: float
    end_s: float
    box_at: Callable[[float], Box | None] = field(repr=False)
    max_face_px: float
    note: str = ""


@dataclass
class Video:
    name: str
    path: Path
    kind: str
    """``composed`` or ``real``."""
    appearances: list[TruthAppearance]
    fps: float
    duration_s: float


def composed_truth(
    appearances: Sequence[Appearance], enrolled: set[str], fps: float
) -> list[TruthAppearance]:
    out = []
    seen: Counter[str] = Counter()
    for a in appearances:
        seen[a.label] += 1

        def box_at(t: float, a: Appearance = a) -> Box | None:
            # compose() draws a frame at t when start_s <= t < end_s
            if a.start_s - 1e-6 <= t < a.end_s - 1e-6:
                return face_box(a, t, W, H)
            return None

        out.append(
            TruthAppearance(
                key=f"{a.label}#{seen[a.label]}",
                person=a.label,
                enrolled=a.label in enrolled,
                start_s=a.start_s,
                end_s=a.end_s,
                box_at=box_at,
                max_face_px=float(a.face_px),
                note=f"{a.face_px} px",
            )
        )
    return out


def real_truth(name: str) -> tuple[list[TruthAppearance], float, float]:
    """The labelled segments of ``name`` (nobody enrolled), its fps and duration."""
    video = json.loads(TRUTH_FILE.read_text())["videos"][name]
    fps = float(video["fps"])
    half_frame = 0.5 / fps
    out = []
    for person in video["people"]:
        for i, seg in enumerate(person["segments"], 1):
            keys = sorted(
                (float(k["t"]), tuple(float(v) for v in k["box"])) for k in seg["keyframes"]
            )
            start, end = float(seg["start_s"]), float(seg["end_s"])

            def box_at(
                t: float,
                keys: list[tuple[float, tuple[float, ...]]] = keys,
                start: float = start,
                end: float = end,
            ) -> Box | None:
                if not start - half_frame <= t <= end + half_frame:
                    return None
                times = [k[0] for k in keys]
                if t <= times[0]:
                    return Box(*keys[0][1])
                if t >= times[-1]:
                    return Box(*keys[-1][1])
                j = int(np.searchsorted(times, t))
                (t0, b0), (t1, b1) = keys[j - 1], keys[j]
                f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                return Box(*(p + (q - p) * f for p, q in zip(b0, b1, strict=True)))

            max_px = max(max(b[2] - b[0], b[3] - b[1]) for _, b in keys)
            out.append(
                TruthAppearance(
                    key=f"{person['id']}#{i}",
                    person=person["id"],
                    enrolled=False,
                    start_s=start,
                    end_s=end,
                    box_at=box_at,
                    max_face_px=max_px,
                    note=f"{seg.get('face_visible', '')}, {seg.get('min_face_px', '?')}"
                    f"-{max_px:.0f} px",
                )
            )
    return out, fps, float(video["duration_s"])


def hard_scenario(
    london: Path, exclude: set[str], seed: int = HARD_SEED
) -> tuple[list[Appearance], list[Shot], set[str]]:
    """A harder composed scenario: 5 shots of 4 s, 3-5 people at once, faces 55-110 px, 10
    people (5 enrolled) drawn from London people not in ``exclude``, re-appearing across shots.

    Each person on a shot keeps to one cell of a 3 × 2 grid, so that no head-and-shoulders
    sprite ever covers another face; each enters up to 1 s after the cut and leaves up to 1 s
    before the next one, moving in a straight line inside the cell."""
    rng = np.random.default_rng(seed)
    ids = sorted(p.name.split("_")[0] for p in london.glob("*_smiling.jpg"))
    pool = [i for i in ids if f"london:{i}" not in exclude]
    people = [str(p) for p in rng.choice(pool, HARD_PEOPLE, replace=False)]
    enrolled = {f"london:{p}" for p in people[: HARD_PEOPLE // 2]}
    shots = [Shot(HARD_SHOT_S * k, HARD_SHOT_S * (k + 1), seed=101 + k) for k in range(HARD_SHOTS)]
    cell_w, cell_h = W / 3, H / 2
    appearances = []
    for shot in shots:
        while True:  # each shot holds someone enrolled and someone not
            n = int(rng.integers(3, 6))
            chosen = [str(p) for p in rng.choice(people, n, replace=False)]
            mated = sum(f"london:{p}" in enrolled for p in chosen)
            if 0 < mated < n:
                break
        slots = rng.choice(6, n, replace=False)
        for pid, slot in zip(chosen, slots, strict=True):
            face = int(rng.integers(55, 111))
            s = face / _SPRITE_FACE
            hw, up, down = _SPRITE_HALF_W * s + 2, _SPRITE_UP * s + 2, _SPRITE_DOWN * s + 2
            col, row = int(slot) % 3, int(slot) // 3
            x0, x1 = col * cell_w + hw, (col + 1) * cell_w - hw
            y0, y1 = row * cell_h + up, (row + 1) * cell_h - down
            y1 = max(y0, y1)

            def point(
                x0: float = x0, x1: float = x1, y0: float = y0, y1: float = y1
            ) -> tuple[float, float]:
                return (float(rng.uniform(x0, x1)) / W, float(rng.uniform(y0, y1)) / H)

            a, b = point(), point()
            start = round(shot.start_s + float(rng.uniform(0.0, 1.0)), 2)
            end = round(shot.end_s - float(rng.uniform(0.05, 1.0)), 2)
            appearances.append(
                Appearance(f"london:{pid}", london / f"{pid}_smiling.jpg", start, end, a, b, face)
            )
    return appearances, shots, enrolled


def composed_video(
    cache: Path,
    name: str,
    appearances: Sequence[Appearance],
    shots: Sequence[Shot],
    fps: float,
) -> tuple[Path, float]:
    """Render once (reused while the scenario is unchanged); returns path and seconds spent."""
    spec = json.dumps(
        [
            VERSION,
            fps,
            [(a.label, a.start_s, a.end_s, a.start_xy, a.end_xy, a.face_px) for a in appearances],
            [(s.start_s, s.end_s, s.seed) for s in shots],
        ]
    )
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    path = cache / f"{name}-{digest}.mp4"
    if path.exists():
        return path, 0.0
    t0 = time.perf_counter()
    tmp = path.with_suffix(".part.mp4")
    compose(tmp, appearances, shots, width=W, height=H, fps=fps)
    tmp.rename(path)
    return path, time.perf_counter() - t0


# ---------------------------------------------------------------------------- gallery


@dataclass
class Gallery:
    ws: Workspace
    enrolled: set[str]
    """People of the videos meant to be enrolled who got a template."""
    subjects: int
    rows: list[tuple[str, str]]
    seconds: float
    reused: bool


def gallery_rows(data: Path, enrolled: set[str], in_videos: set[str]) -> list[tuple[str, str]]:
    london = data / "london" / "images"
    rows = []
    for p in sorted(london.glob("*_neutral.jpg")):
        label = f"london:{p.name.split('_')[0]}"
        if label in enrolled or label not in in_videos:
            rows.append((str(p.resolve()), label))
    utk = data / "utkface_subset"
    with (utk / "labels.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if int(r["age"]) >= ADULT_AGE:
                rows.append((str((utk / r["image"]).resolve()), f"utk:{Path(r['image']).stem}"))
    return rows


def build_gallery(cache: Path, rows: list[tuple[str, str]], enrolled: set[str]) -> Gallery:
    listing = cache / "gallery.csv"
    done = cache / "gallery.done"
    text = "image,subject\n" + "".join(f"{p},{s}\n" for p, s in rows)
    ws_dir = cache / "ws"
    t0 = time.perf_counter()
    reused = done.exists() and listing.exists() and listing.read_text() == text
    if not reused:
        done.unlink(missing_ok=True)
        shutil.rmtree(ws_dir, ignore_errors=True)
        listing.write_text(text)
    ws = open_workspace(Settings(data_dir=ws_dir))
    if not reused:
        create_gallery(ws, local_operator(ws, "bench"), CreateGallery(GALLERY, "statute"))
        report = enrol_folder(ws, local_operator(ws, "bench"), EnrolFolder(GALLERY, listing))
        print(
            f"gallery: enrolled {report.enrolled} of {report.total_items} images in "
            f"{report.seconds:.0f} s; rejected {len(report.rejected)}, near duplicates "
            f"{len(report.near_duplicates)}",
            flush=True,
        )
        done.write_text("ok\n")
    gallery = ws.store.get_gallery_by_name(GALLERY)
    have = set()
    for label in enrolled:
        subject = ws.store.find_subject(gallery.id, label)
        if subject is not None and ws.store.template_counts([subject.id]).get(subject.id, 0):
            have.add(label)
    subjects = len(ws.store.template_ids(gallery.id))
    return Gallery(ws, have, subjects, rows, time.perf_counter() - t0, reused)


# ------------------------------------------------------------------------- faceledger


@dataclass
class Track:
    track_id: int
    start_s: float
    end_s: float
    keyframes: list[tuple[float, Box]]
    """Every box of the track, at truth times."""
    outcomes: list[TrackOutcome]


@dataclass
class FaceledgerRun:
    seconds: float
    """``search_video``'s processing seconds (end to end)."""
    realtime: float | None
    duration_s: float
    frames_decoded: int
    frames_sampled: int
    tracks_searched: int
    lead_tracks: int
    threshold: float
    templates: int
    leads: set[tuple[int, str]]
    scan_seconds: float = 0.0
    """The accuracy pass (the same pieces, every track kept): its own seconds."""
    tracks: list[Track] = field(default_factory=list)
    too_short: int = 0
    cuts: int = 0
    sampled_times: list[float] = field(default_factory=list)
    offset_s: float = 0.0
    scan_leads: set[tuple[int, str]] = field(default_factory=set)


def _top(outcome: TrackOutcome) -> str | None:
    return outcome.candidates[0].external_id if outcome.candidates else None


def run_faceledger(ws: Workspace, path: Path, fpir: float, scan: ScanSettings) -> FaceledgerRun:
    actor = local_operator(ws, "bench")
    # accuracy pass first: the same pieces search_video uses, every track's boxes kept
    engine, plan = prepare_search(ws, actor, (GALLERY,), None, fpir, PURPOSE)
    t0 = time.perf_counter()
    scanner = VideoScanner(engine, scan)
    searcher = TrackSearcher(ws, engine, plan)
    found = []
    offsets: list[float] = []
    times: list[float] = []
    with open_video(path, VideoLimits(), sample_fps=scan.sample_fps) as reader:
        fps = reader.info.fps
        for frame, ended in scanner.scan(reader):
            offsets.append(frame.time_s - frame.index / fps)
            times.append(frame.time_s)
            found += [(t, searcher.decide(t)) for t in ended]
        found += [(t, searcher.decide(t)) for t in scanner.finish()]
    scan_seconds = time.perf_counter() - t0
    offset = float(np.median(offsets)) if offsets else 0.0
    tracks = [
        Track(
            t.track_id,
            t.start_s - offset,
            t.end_s - offset,
            [(ts - offset, box) for ts, box in t.keyframes],
            outs,
        )
        for t, outs in found
    ]
    scan_leads = {(t.track_id, str(_top(o))) for t in tracks for o in t.outcomes if o.candidates}
    # speed: the use case, end to end, as a user runs it (warm: the pass above loaded all)
    res = search_video(
        ws, actor, VideoSearchRequest(path, (GALLERY,), PURPOSE, CASE_REF, fpir, scan=scan)
    )
    return FaceledgerRun(
        seconds=res.processing_seconds,
        realtime=res.realtime_factor,
        duration_s=res.video.duration_s or 0.0,
        frames_decoded=res.frames_decoded,
        frames_sampled=res.frames_sampled,
        tracks_searched=res.tracks_searched,
        lead_tracks=len(res.lead_tracks),
        threshold=res.threshold,
        templates=res.templates_searched,
        leads={(t.track_id, str(_top(t))) for t in res.lead_tracks},
        scan_seconds=scan_seconds,
        tracks=tracks,
        too_short=scanner.counts.too_short,
        cuts=scanner.counts.cuts,
        sampled_times=[t - offset for t in times],
        offset_s=offset,
        scan_leads=scan_leads,
    )


# ------------------------------------------------------------------- face_recognition


def run_reference(
    cache: Path, video: Video, known: dict[str, str], every: int, skip: bool
) -> dict[str, Any] | None:
    """face_recognition's loop on ``video`` (or its cached output with ``skip``)."""
    tag = hashlib.sha256(json.dumps(known, sort_keys=True).encode()).hexdigest()[:10]
    out = cache / f"fr-{video.path.stem}-every{every}-{tag}.json"
    if skip:
        if out.exists():
            data: dict[str, Any] = json.loads(out.read_text())
            data["cached"] = True
            return data
        print(f"  {video.name}: no cached face_recognition output ({out.name})", flush=True)
        return None
    if not FR_PYTHON.exists():
        print(f"  {FR_PYTHON} missing: see benchmarks/README.md, Throughput", flush=True)
        return None
    known_file = cache / f"fr-known-{tag}.json"
    known_file.write_text(json.dumps(known))
    cmd = [str(FR_PYTHON), str(FR_SCRIPT), str(known_file), str(video.path), str(out)]
    if every > 1:
        cmd += ["--every", str(every)]
    subprocess.run(cmd, check=True)
    data = json.loads(out.read_text())
    data["cached"] = False
    return data


def reference_seconds(fr: dict[str, Any]) -> float:
    """Seconds for the whole video: ``loop_seconds``; with ``--every N`` the per-frame work
    is scaled up to every frame (decoding already covers every frame)."""
    loop, decode = float(fr["loop_seconds"]), float(fr["decode_seconds"])
    if fr["frames_processed"] and fr["frames_processed"] < fr["frames"]:
        return decode + (loop - decode) * int(fr["frames"]) / int(fr["frames_processed"])
    return loop


# --------------------------------------------------------------------------- scoring


def best_match(apps: Sequence[TruthAppearance], t: float, box: Box) -> TruthAppearance | None:
    best, best_iou = None, IOU_MATCH
    for a in apps:
        truth = a.box_at(t)
        if truth is None:
            continue
        iou = box.iou(truth)
        if iou >= best_iou:
            best, best_iou = a, iou
    return best


def rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n) if n else (0.0, 1.0)
    return {"k": k, "n": n, "rate": k / n if n else None, "wilson95": [lo, hi] if n else None}


def fmt(r: dict[str, Any] | None, ci: bool = True) -> str:
    if r is None:
        return "–"
    if not r["n"]:
        return "– (0)"
    text = f"{r['k']}/{r['n']} = {r['rate']:.3f}"
    if ci:
        lo, hi = r["wilson95"]
        text += f" [{lo:.2f}, {hi:.2f}]"
    return text


def score_faceledger(video: Video, run: FaceledgerRun) -> dict[str, Any]:
    apps = video.appearances
    covered: defaultdict[str, set[int]] = defaultdict(set)  # appearance → tracks
    frame_hits: set[tuple[str, float]] = set()
    matched_tracks = merged = 0
    mated = mated_found = mated_wrong = nonmated = nonmated_alert = 0
    false_alerts: list[str] = []
    unmatched_alerts: list[str] = []
    identity: dict[int, str | None] = {}
    for tr in run.tracks:
        hits = [(t, best_match(apps, t, box)) for t, box in tr.keyframes]
        persons = Counter(a.person for _, a in hits if a is not None)
        who = persons.most_common(1)[0][0] if persons else None
        identity[tr.track_id] = who
        tops = [_top(o) for o in tr.outcomes]
        if who is None:
            if any(tops):
                unmatched_alerts.append(f"track {tr.track_id} → {[t for t in tops if t]}")
            continue
        matched_tracks += 1
        merged += len(persons) > 1
        for t, a in hits:
            if a is not None and a.person == who:
                covered[a.key].add(tr.track_id)
                frame_hits.add((a.key, round(t, 3)))
        enrolled = any(a.enrolled for a in apps if a.person == who)
        if enrolled:
            mated += 1
            mated_found += who in tops
            mated_wrong += any(t is not None and t != who for t in tops)
        else:
            nonmated += 1
            if any(tops):
                nonmated_alert += 1
                false_alerts.append(f"{who} (track {tr.track_id}) → {[t for t in tops if t]}")
    tops_of = {tr.track_id: [_top(o) for o in tr.outcomes] for tr in run.tracks}
    n_apps = len(apps)
    detected = [a for a in apps if covered[a.key]]
    detectable = [a for a in apps if a.max_face_px >= DETECTABLE_PX]
    app_mated = [a for a in apps if a.enrolled]
    app_found = [a for a in app_mated if any(a.person in tops_of[t] for t in covered[a.key])]
    app_non = [a for a in detected if not a.enrolled]
    app_alert = [a for a in app_non if any(any(tops_of[t]) for t in covered[a.key])]
    pairs = [(a.key, round(t, 3)) for t in run.sampled_times for a in apps if a.box_at(t)]
    fragmented = sum(len(covered[a.key]) > 1 for a in apps)
    return {
        "appearances": n_apps,
        "track_recall": rate(len(detected), n_apps),
        "track_recall_detectable": rate(
            sum(1 for a in detectable if covered[a.key]), len(detectable)
        ),
        "frame_recall": rate(sum(1 for p in pairs if p in frame_hits), len(pairs)),
        "tracks": len(run.tracks),
        "tracks_too_short": run.too_short,
        "precision": rate(matched_tracks, len(run.tracks)),
        "fragmented_appearances": fragmented,
        "merged_tracks": merged,
        "identity_switches": fragmented + merged,
        "fnir_track": rate(mated - mated_found, mated),
        "mated_tracks_wrong_rank1": rate(mated_wrong, mated),
        "fpir_track": rate(nonmated_alert, nonmated),
        "fnir_appearance": rate(len(app_mated) - len(app_found), len(app_mated)),
        "fpir_appearance": rate(len(app_alert), len(app_non)),
        "false_alerts": false_alerts,
        "alerts_on_unmatched_tracks": unmatched_alerts,
        "missed_appearances": [f"{a.key} ({a.note})" for a in apps if not covered[a.key]],
        "missed_mated": [a.key for a in app_mated if a not in app_found],
    }


def score_reference(
    video: Video, fr: dict[str, Any], sampled_times: Sequence[float]
) -> dict[str, Any]:
    """face_recognition's figures; ``sampled_times`` are the frames faceledger examined (truth
    times), to tell its frame sampling from its detector apart."""
    apps = video.appearances
    fps = float(fr["fps"]) or video.fps
    sampled = {round(t * fps) for t in sampled_times}
    matched: defaultdict[str, list[str | None]] = defaultdict(list)
    frame_hits: set[tuple[str, int]] = set()
    unmatched_labelled = 0
    for d in fr["detections"]:
        t = d["frame"] / fps
        a = best_match(apps, t, Box(*(float(v) for v in d["box"])))
        if a is None:
            unmatched_labelled += d["label"] is not None
            continue
        matched[a.key].append(d["label"])
        frame_hits.add((a.key, d["frame"]))
    every = int(fr.get("every", 1))
    frames = range(0, int(fr["frames"]), every)
    pairs = [(a.key, i) for i in frames for a in apps if a.box_at(i / fps)]
    detected = [a for a in apps if matched[a.key]]
    on_sampled = [a for a in apps if any((a.key, i) in frame_hits for i in sampled)]
    detectable = [a for a in apps if a.max_face_px >= DETECTABLE_PX]
    mated = [a for a in apps if a.enrolled]
    found = [a for a in mated if a.person in matched[a.key]]
    wrong = [a for a in mated if any(x is not None and x != a.person for x in matched[a.key])]
    non = [a for a in detected if not a.enrolled]
    alert = [a for a in non if any(x is not None for x in matched[a.key])]
    return {
        "seconds": reference_seconds(fr),
        "loop_seconds": fr["loop_seconds"],
        "enrol_seconds": fr["enrol_seconds"],
        "every": every,
        "frames": fr["frames"],
        "frames_processed": fr["frames_processed"],
        "cached": fr.get("cached", False),
        "known": len(fr["known"]),
        "enrol_failed": fr["enrol_failed"],
        "detection_recall": rate(len(detected), len(apps)),
        "detection_recall_detectable": rate(
            sum(1 for a in detectable if matched[a.key]), len(detectable)
        ),
        "frame_recall": rate(sum(1 for p in pairs if p in frame_hits), len(pairs)),
        "detection_recall_on_sampled_frames": rate(len(on_sampled), len(apps)),
        "fnir_appearance": rate(len(mated) - len(found), len(mated)),
        "mated_wrong_label": rate(len(wrong), len(mated)),
        "fpir_appearance": rate(len(alert), len(non)),
        "labelled_detections_off_truth": unmatched_labelled,
        "false_alerts": [f"{a.key} → {sorted({x for x in matched[a.key] if x})}" for a in alert],
    }


# -------------------------------------------------------------------------- printing


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_video(
    video: Video, fl: FaceledgerRun, acc: dict[str, Any], ref: dict[str, Any] | None
) -> None:
    mated = sum(a.enrolled for a in video.appearances)
    print(
        f"\n== {video.name}: {video.path.name}, {video.duration_s:.1f} s at {video.fps:.2f} fps, "
        f"{len(video.appearances)} appearances ({mated} of enrolled people); gallery "
        f"{fl.templates} templates, threshold {fl.threshold:.4f}"
    )
    if fl.offset_s:
        print(f"   (stream times start {fl.offset_s:.4f} s late; subtracted before matching)")
    ref_s = "–"
    if ref is not None:
        ref_s = f"{ref['seconds']:.1f}"
        if ref["every"] > 1:
            ref_s += f" (every {ref['every']}th frame: {ref['loop_seconds']:.1f} s, scaled)"
        if ref["cached"]:
            ref_s += " (cached run)"
    ratio = f"{ref['seconds'] / fl.seconds:.1f}×" if ref is not None else "–"
    rows = [
        ("", "faceledger", "face_recognition"),
        ("seconds (video)", f"{fl.seconds:.1f} (accuracy pass {fl.scan_seconds:.1f})", ref_s),
        ("ratio fr/faceledger", ratio, ""),
        (
            "real-time factor",
            f"{fl.realtime:.2f}×" if fl.realtime else "–",
            f"{video.duration_s / ref['seconds']:.2f}×" if ref is not None else "–",
        ),
        (
            "frames examined",
            f"{fl.frames_sampled} of {fl.frames_decoded}",
            f"{ref['frames_processed']} of {ref['frames']}" if ref is not None else "–",
        ),
        ("recall: appearances", fmt(acc["track_recall"]), _r(ref, "detection_recall")),
        (
            f"  of faces ≥ {DETECTABLE_PX} px",
            fmt(acc["track_recall_detectable"]),
            _r(ref, "detection_recall_detectable"),
        ),
        ("  face-frames", fmt(acc["frame_recall"], False), _r(ref, "frame_recall", False)),
        (
            "  on faceledger's frames",
            fmt(acc["track_recall"], False),
            _r(ref, "detection_recall_on_sampled_frames", False),
        ),
        ("track precision", fmt(acc["precision"]), ""),
        (
            "tracks (too short)",
            f"{acc['tracks']} ({acc['tracks_too_short']})",
            "",
        ),
        (
            "identity switches",
            f"{acc['identity_switches']} ({acc['fragmented_appearances']} fragmented, "
            f"{acc['merged_tracks']} merged)",
            "",
        ),
        ("FNIR per track", fmt(acc["fnir_track"]), ""),
        ("FPIR per track", fmt(acc["fpir_track"]), ""),
        ("FNIR per appearance", fmt(acc["fnir_appearance"]), _r(ref, "fnir_appearance")),
        ("FPIR per appearance", fmt(acc["fpir_appearance"]), _r(ref, "fpir_appearance")),
        (
            "mated, wrong rank 1 / label",
            fmt(acc["mated_tracks_wrong_rank1"], False) + " (tracks)",
            _r(ref, "mated_wrong_label", False),
        ),
    ]
    print(table(rows))
    if ref is not None:
        print(
            f"   face_recognition: {ref['known']} known faces enrolled in "
            f"{ref['enrol_seconds']:.1f} s (not counted above)"
            + (f"; no face in {ref['enrol_failed']}" if ref["enrol_failed"] else "")
        )
    if fl.leads != fl.scan_leads:
        print(f"   !! the accuracy pass's leads {sorted(fl.scan_leads)} differ from the use case's")
    for label, items in (
        ("faceledger false alerts", acc["false_alerts"]),
        ("faceledger alerts on tracks matching no truth face", acc["alerts_on_unmatched_tracks"]),
        ("faceledger: appearances without a track", acc["missed_appearances"]),
        ("face_recognition false alerts", ref["false_alerts"] if ref else []),
    ):
        if items:
            print(f"   {label}: {'; '.join(items)}")
    if ref is not None and ref["labelled_detections_off_truth"]:
        print(
            f"   face_recognition: {ref['labelled_detections_off_truth']} labelled detections "
            "matching no truth face"
        )


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _r(ref: dict[str, Any] | None, key: str, ci: bool = True) -> str:
    return fmt(ref[key], ci) if ref is not None else "–"


def pooled(results: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    items = [r[key] for r in results if r is not None]
    if not items:
        return None
    return rate(sum(i["k"] for i in items), sum(i["n"] for i in items))


def print_summary(names: Sequence[str], out: dict[str, Any]) -> None:
    rows = [
        (
            "video",
            "s/video fr",
            "s/video faceledger",
            "ratio",
            "RTF",
            "recall faceledger",
            "recall fr",
            "precision",
            "switches",
            "FNIR/track",
            "FNIR/app faceledger",
            "FNIR/app fr",
            "FPIR/track",
            "FPIR/app faceledger",
            "FPIR/app fr",
        )
    ]
    for name in names:
        r = out[name]
        fl, acc, ref = r["faceledger"], r["accuracy"], r["face_recognition"]
        rows.append(
            (
                name,
                f"{ref['seconds']:.1f}" + ("*" if ref["every"] > 1 else "") if ref else "–",
                f"{fl['seconds']:.1f}",
                f"{ref['seconds'] / fl['seconds']:.1f}×" if ref else "–",
                f"{fl['realtime']:.2f}×" if fl["realtime"] else "–",
                fmt(acc["track_recall"], False),
                _r(ref, "detection_recall", False),
                fmt(acc["precision"], False),
                str(acc["identity_switches"]),
                fmt(acc["fnir_track"], False),
                fmt(acc["fnir_appearance"], False),
                _r(ref, "fnir_appearance", False),
                fmt(acc["fpir_track"], False),
                fmt(acc["fpir_appearance"], False),
                _r(ref, "fpir_appearance", False),
            )
        )
    accs = [out[n]["accuracy"] for n in names]
    refs = [out[n]["face_recognition"] for n in names]
    fl_s = sum(out[n]["faceledger"]["seconds"] for n in names)
    dur = sum(out[n]["faceledger"]["duration_s"] for n in names)
    ref_s = sum(r["seconds"] for r in refs) if all(refs) else None
    rows.append(
        (
            "all",
            f"{ref_s:.1f}" if ref_s else "–",
            f"{fl_s:.1f}",
            f"{ref_s / fl_s:.1f}×" if ref_s else "–",
            f"{dur / fl_s:.2f}×",
            fmt(pooled(accs, "track_recall"), False),
            fmt(pooled(refs, "detection_recall"), False) if all(refs) else "–",
            fmt(pooled(accs, "precision"), False),
            str(sum(a["identity_switches"] for a in accs)),
            fmt(pooled(accs, "fnir_track"), False),
            fmt(pooled(accs, "fnir_appearance"), False),
            fmt(pooled(refs, "fnir_appearance"), False) if all(refs) else "–",
            fmt(pooled(accs, "fpir_track"), False),
            fmt(pooled(accs, "fpir_appearance"), False),
            fmt(pooled(refs, "fpir_appearance"), False) if all(refs) else "–",
        )
    )
    print("\n== summary (fr = face_recognition; * = measured on every 2nd/Nth frame, scaled)")
    print(table(rows))
    print("\n   pooled over these videos, Wilson 95 %:")
    for label, key, src in (
        ("track recall, faceledger", "track_recall", accs),
        ("detection recall, face_recognition", "detection_recall", refs),
        (
            "detection recall, face_recognition, on faceledger's frames only",
            "detection_recall_on_sampled_frames",
            refs,
        ),
        ("track precision, faceledger", "precision", accs),
        ("FNIR per track, faceledger", "fnir_track", accs),
        ("FNIR per appearance, faceledger", "fnir_appearance", accs),
        ("FNIR per appearance, face_recognition", "fnir_appearance", refs),
        ("FPIR per track, faceledger", "fpir_track", accs),
        ("FPIR per appearance, faceledger", "fpir_appearance", accs),
        ("FPIR per appearance, face_recognition", "fpir_appearance", refs),
    ):
        if all(src):
            print(f"   {label}: {fmt(pooled(src, key))}")


# ------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--videos", default=",".join(VIDEOS), help=f"subset of {','.join(VIDEOS)}")
    ap.add_argument("--skip-fr", action="store_true", help="reuse cached reference outputs")
    ap.add_argument("--fpir", type=float, default=0.01)
    ap.add_argument(
        "--fr-every-composed",
        type=int,
        default=1,
        help="face_recognition on every Nth frame of the composed videos (seconds scaled)",
    )
    ap.add_argument("--fr-gallery", choices=("london", "full"), default="london")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument(
        "--sample-fps", type=float, default=None, help="faceledger's sampling (default: its own)"
    )
    ap.add_argument("--min-hits", type=int, default=None, help="faceledger's shortest track")
    args = ap.parse_args()
    scan = ScanSettings()
    if args.sample_fps is not None:
        scan = dataclasses.replace(scan, sample_fps=args.sample_fps)
    if args.min_hits is not None:
        scan = dataclasses.replace(scan, min_hits=args.min_hits)
    names = [v.strip() for v in args.videos.split(",") if v.strip()]
    if unknown := set(names) - set(VIDEOS):
        ap.error(f"unknown videos {sorted(unknown)}; choose from {VIDEOS}")
    started = time.perf_counter()
    cache = args.cache_dir / "video"
    cache.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    london = data / "london" / "images"

    # scenarios (always both, so that the gallery does not depend on --videos)
    d_apps, d_shots, d_enrolled = default_scenario(london)
    in_default = {a.label for a in d_apps}
    h_apps, h_shots, h_enrolled = hard_scenario(london, in_default)
    enrolled = d_enrolled | h_enrolled
    in_videos = in_default | {a.label for a in h_apps}
    rows = gallery_rows(data, enrolled, in_videos)
    gallery = build_gallery(cache, rows, enrolled)
    print(
        f"gallery: {gallery.subjects} templates ({'reused' if gallery.reused else 'built'}, "
        f"{gallery.seconds:.0f} s); enrolled people of the videos: {sorted(gallery.enrolled)}",
        flush=True,
    )
    if missing := enrolled - gallery.enrolled:
        print(f"   !! meant to be enrolled but without a template: {sorted(missing)}")

    videos: dict[str, Video] = {}
    for name in names:
        if name in ("default", "hard"):
            apps, shots, fps = (
                (d_apps, d_shots, DEFAULT_FPS) if name == "default" else (h_apps, h_shots, HARD_FPS)
            )
            path, secs = composed_video(cache, name, apps, shots, fps)
            if secs:
                print(f"composed {path.name} in {secs:.0f} s", flush=True)
            truth = composed_truth(apps, gallery.enrolled, fps)
            videos[name] = Video(name, path, "composed", truth, fps, shots[-1].end_s)
        else:
            truth, fps, duration = real_truth(f"{name}.mp4")
            path = data / "video" / f"{name}.mp4"
            videos[name] = Video(name, path, "real", truth, fps, duration)

    known_rows = rows if args.fr_gallery == "full" else [r for r in rows if "london:" in r[1]]
    known = {label: path for path, label in known_rows}
    out: dict[str, Any] = {
        "fpir": args.fpir,
        "sample_fps": scan.sample_fps,
        "min_hits": scan.min_hits,
        "gallery_templates": gallery.subjects,
        "fr_known": len(known),
        "fr_gallery": args.fr_gallery,
        "videos": {},
    }
    for name in names:
        video = videos[name]
        every = args.fr_every_composed if video.kind == "composed" else 1
        print(f"\n{name}: face_recognition ... (load average {_load()})", flush=True)
        fr = run_reference(cache, video, known, every, args.skip_fr)
        print(f"{name}: faceledger ... (load average {_load()})", flush=True)
        fl = run_faceledger(gallery.ws, video.path, args.fpir, scan)
        acc = score_faceledger(video, fl)
        ref = score_reference(video, fr, fl.sampled_times) if fr is not None else None
        print_video(video, fl, acc, ref)
        out["videos"][name] = {
            "path": str(video.path),
            "faceledger": {
                "seconds": fl.seconds,
                "accuracy_pass_seconds": fl.scan_seconds,
                "realtime": fl.realtime,
                "duration_s": fl.duration_s,
                "frames_decoded": fl.frames_decoded,
                "frames_sampled": fl.frames_sampled,
                "tracks_searched": fl.tracks_searched,
                "lead_tracks": fl.lead_tracks,
                "threshold": fl.threshold,
                "templates": fl.templates,
                "same_leads_as_use_case": fl.leads == fl.scan_leads,
            },
            "accuracy": acc,
            "face_recognition": ref,
        }
    print_summary(names, out["videos"])
    print(
        f"\nface_recognition knew {len(known)} faces ({args.fr_gallery} part of the gallery); "
        f"faceledger searched {gallery.subjects} templates at FPIR {args.fpir}. "
        f"{time.perf_counter() - started:.0f} s in all; load average at the end {_load()} "
        f"({os.cpu_count()} cores)."
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    gallery.ws.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
