"""Data of ``hard_dev.py``: detect-once templates and the deterministic degraded-probe generator.

Two parts, both used by ``hard_dev.py`` (whose docstring states the protocol):

- :func:`face_records`: every image decoded and detected **once** with the default detector
  (``hog+cnn``, the full search a probe gets), then for each face selection policy
  (``largest``, ``central``, ``primary``) the chosen face is aligned and embedded plain and
  mirrored, so that the six configurations (3 policies × flip averaging on/off) cost one
  detection and at most six descriptor passes per image. The steps are those of
  ``Engine.prepare`` + ``Embedder.embed`` (probe mode: no enrolment gates); the flip template is
  ``l2(raw(chip) + raw(mirror(chip)))`` as ``Embedder.embed`` computes it with
  ``flip_average=True``. Cached per image sha256 and pipeline fingerprint (a pickle under the
  cache folder).
- :func:`generate`: degraded probe images and protocol CSVs under ``benchmarks/.data/hard/``
  (outside git), fixed seeds; redone only when :data:`VERSION` or the seed changes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import multiprocessing
import os
import pickle
import random
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, ImageOps

from faceledger import Settings
from faceledger.align import align_face
from faceledger.align.aligner import mirror
from faceledger.batch import worker_engine
from faceledger.cache import pipeline_fingerprint
from faceledger.detect import select_face
from faceledger.embed.base import l2_normalise
from faceledger.errors import FaceLedgerError
from faceledger.models import ModelRegistry
from faceledger.pipeline import Engine
from faceledger.quality import assess_quality
from faceledger.types import AlignedFace, Detection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
from make_protocols import ADULT_AGE, UTK_SAME_PERSON  # type: ignore[import-not-found]  # noqa: E402

from _composites import Portrait, compose  # noqa: E402

VERSION = 2
"""Bump when the generator's output changes (forces regeneration)."""
SEED = 27
POLICIES = ("largest", "central", "primary")
RECORDS_VERSION = "detect-once-1"
FOLDS = 10
PAIRS_PER_FOLD = 150
"""Genuine pairs per fold; as many impostor pairs."""

# ---------------------------------------------------------------------------- templates

Vec = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class FaceRec:
    """One detected face that some policy chose: its box, eye distance and templates."""

    box: tuple[float, float, float, float]
    eyes: float
    """Inter-eye distance (5-point landmarks), px."""
    quality: float
    plain: Vec
    flip: Vec


@dataclasses.dataclass(frozen=True)
class ImageRec:
    faces: int
    """Detections in the image."""
    error: str | None
    chosen: dict[str, int]
    """Policy → index into ``recs``."""
    recs: tuple[FaceRec, ...]

    def face(self, policy: str) -> FaceRec | None:
        return self.recs[self.chosen[policy]] if policy in self.chosen else None


_ENGINE: Engine | None = None


def _init(settings: Settings) -> None:
    global _ENGINE
    _ENGINE = worker_engine(settings)


def _records(paths: list[str]) -> list[ImageRec]:
    """Detect once, select per policy, align, embed plain and mirrored (one batch)."""
    engine = _ENGINE
    assert engine is not None
    staged: list[tuple[int, list[Detection], dict[str, int], list[float]]] = []
    chips: list[AlignedFace] = []
    out: list[ImageRec | None] = [None] * len(paths)
    for i, p in enumerate(paths):
        try:
            img = engine.load(p)
            dets = engine.detector.detect(img.pixels)
        except FaceLedgerError as exc:
            out[i] = ImageRec(0, exc.code, {}, ())
            continue
        if not dets:
            out[i] = ImageRec(0, "no_face", {}, ())
            continue
        uniq: list[Detection] = []
        chosen: dict[str, int] = {}
        for policy in POLICIES:
            d = select_face(dets, policy, img.width, img.height)  # type: ignore[arg-type]
            k = next((j for j, u in enumerate(uniq) if u is d), None)
            if k is None:
                uniq.append(d)
                k = len(uniq) - 1
            chosen[policy] = k
        quality = [assess_quality(img.pixels, d, engine.settings.gates).score for d in uniq]
        staged.append((i, uniq, chosen, quality))
        chips.extend(align_face(img.pixels, d, engine.card.align) for d in uniq)
        out[i] = ImageRec(len(dets), None, chosen, ())
    if chips:
        # Embedder.embed's own arithmetic, both variants from one pass over chips + mirrors
        raw = engine.embedder._raw(chips + [mirror(c) for c in chips])
        n = len(chips)
        plain, flip = l2_normalise(raw[:n]), l2_normalise(raw[:n] + raw[n:])
        at = 0
        for i, uniq, _chosen, quality in staged:
            recs = []
            for d, q in zip(uniq, quality, strict=True):
                b = d.box
                recs.append(
                    FaceRec(
                        (b.left, b.top, b.right, b.bottom),
                        d.landmarks.inter_eye_distance,
                        float(q),
                        plain[at].copy(),
                        flip[at].copy(),
                    )
                )
                at += 1
            rec = out[i]
            assert rec is not None
            out[i] = dataclasses.replace(rec, recs=tuple(recs))
    return [r for r in out if r is not None]


def _sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def face_records(
    paths: Iterable[Path], cache_dir: Path, workers: int = 2, log: bool = True
) -> dict[Path, ImageRec]:
    """:class:`ImageRec` of every path (default settings, all policies), cached by sha256."""
    # fixed selection and recipe: every policy is embedded plain and flipped here anyway, and
    # the cache must not depend on what the defaults are
    settings = dataclasses.replace(Settings(), face_selection="largest", flip_average=False)
    card = ModelRegistry().get(settings.model_id)
    fp = pipeline_fingerprint(settings, card.file("embedder").sha256)
    file = cache_dir / f"hard-dev-records-{RECORDS_VERSION}-{fp[:16]}.pkl"
    cached: dict[str, ImageRec] = {}
    if file.exists():
        cached = pickle.loads(file.read_bytes())
    todo_paths = sorted(set(paths))
    shas = {p: _sha(p) for p in todo_paths}
    missing = sorted({str(p) for p in todo_paths if shas[p] not in cached})
    if missing:
        if log:
            print(f"  detecting and embedding {len(missing)} images ({workers} workers)...")
        chunks = [missing[i : i + 8] for i in range(0, len(missing), 8)]
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init,
            initargs=(settings,),
        ) as pool:
            for chunk, recs in zip(chunks, pool.map(_records, chunks), strict=True):
                for p, r in zip(chunk, recs, strict=True):
                    cached[shas[Path(p)]] = r
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(cached))
        tmp.replace(file)
    return {p: cached[shas[p]] for p in todo_paths}


# ---------------------------------------------------------------------------- people


@dataclasses.dataclass(frozen=True)
class Person:
    subject: str
    source: str
    gender: str
    """``female``, ``male`` or ``unknown`` (ORL is not labelled)."""
    ref: Path
    others: tuple[Path, ...]
    """The person's other original images (probe sources)."""
    group: str = ""
    """UTKFace: gender_race."""


# deepface identities: connected components of the "same" pairs of master.csv, pairs.csv and
# face-recognition-pivot.csv (no contradiction among them; 13 people, all distinct on
# inspection); key = the component's lowest-numbered image, value = gender on inspection.
DEEPFACE_GENDER = {
    "img1": "female",
    "img26": "female",
    "img8": "female",
    "img3": "female",
    "img16": "male",
    "img13": "male",
    "img29": "male",
    "img38": "male",
    "img34": "male",
    "img18": "male",
    "img20": "male",
    "img22": "female",
    "img24": "male",
}
FR_GENDER = {
    "alex_lacamoire": "male",
    "biden": "male",
    "kit_harington": "male",
    "obama": "male",
    "rose_leslie": "female",
}


def _num(name: str) -> int:
    return int("".join(c for c in name.split(".")[0] if c.isdigit()) or 0)


def deepface_people(data: Path) -> list[Person]:
    d = data / "deepface"
    edges: list[tuple[str, str, bool]] = []
    with (d / "master.csv").open() as fh:
        edges += [(r["file_x"], r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(fh)]
    with (d / "pairs.csv").open() as fh:
        edges += [(r["a"], r["b"], r["same"] == "1") for r in csv.DictReader(fh)]
    with (d / "face-recognition-pivot.csv").open() as fh:
        edges += [
            (Path(r["file_x"]).name, Path(r["file_y"]).name, r["decision"] == "Yes")
            for r in csv.DictReader(fh)
        ]
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b, same in edges:
        ra, rb = root(a), root(b)
        if same:
            parent[ra] = rb
    comps: dict[str, list[str]] = defaultdict(list)
    for x in list(parent):
        comps[root(x)].append(x)
    people = []
    for members in comps.values():
        files = sorted(members, key=_num)
        key = Path(files[0]).stem
        people.append(
            Person(
                f"deepface:{key}",
                "deepface",
                DEEPFACE_GENDER[key],
                d / files[0],
                tuple(d / f for f in files[1:]),
            )
        )
    return sorted(people, key=lambda p: _num(p.ref.name))


def all_people(data: Path) -> dict[str, list[Person]]:
    out: dict[str, list[Person]] = {}
    with (data / "london/subjects.csv").open() as fh:
        out["london"] = [
            Person(
                f"london:{r['subject']}",
                "london",
                r["gender"],
                data / f"london/images/{r['subject']}_neutral.jpg",
                (data / f"london/images/{r['subject']}_smiling.jpg",),
            )
            for r in csv.DictReader(fh)
        ]
    out["orl"] = [
        Person(
            f"orl:s{n}",
            "orl",
            "unknown",
            data / f"orl/s{n}/1.pgm",
            tuple(data / f"orl/s{n}/{i}.pgm" for i in range(2, 11)),
        )
        for n in range(1, 41)
    ]
    johns = []
    for folder in sorted(p for p in (data / "johns").iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        johns.append(Person(f"johns:{folder.name}", "johns", "male", files[0], tuple(files[1:])))
    out["johns"] = johns
    out["deepface"] = deepface_people(data)
    fr = []
    for folder in sorted((data / "fr_examples/knn_examples/train").iterdir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        fr.append(
            Person(f"fr:{folder.name}", "fr", FR_GENDER[folder.name], files[0], tuple(files[1:]))
        )
    out["fr"] = fr
    utk = []
    with (data / "utkface_subset/labels.csv").open() as fh:
        for r in csv.DictReader(fh):
            name = Path(r["image"]).name
            if int(r["age"]) < ADULT_AGE or name in UTK_SAME_PERSON:
                continue
            utk.append(
                Person(
                    f"utk:{name}",
                    "utkface",
                    r["gender"],
                    data / "utkface_subset" / r["image"],
                    (),
                    f"{r['gender']}_{r['race']}",
                )
            )
    out["utkface"] = utk
    return out


# ---------------------------------------------------------------------------- degradations

WEB = {"deepface", "fr", "johns"}
KINDS = ("down", "blur", "jpeg", "grey", "bystanders")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One probe image: an original as it is (``kinds == ()``) or a degraded copy."""

    path: Path
    subject: str
    source: str
    origin: Path
    kinds: tuple[str, ...]
    params: str

    @property
    def kind(self) -> str:
        return "+".join(self.kinds) if self.kinds else "none"


def _draw_kinds(
    rng: random.Random, allowed: Sequence[str], first: str | None = None
) -> tuple[str, ...]:
    """One or two kinds (60 / 40 %), ``first`` always included when given."""
    n = 1 if rng.random() < 0.6 else 2
    pool = [k for k in allowed if k != first]
    picked = ([first] if first else []) + rng.sample(pool, n - (1 if first else 0))
    return tuple(k for k in KINDS if k in picked)  # fixed application order


def _apply(
    img: Image.Image,
    face: FaceRec | None,
    kinds: tuple[str, ...],
    rng: random.Random,
    bystanders: list[Portrait],
) -> tuple[Image.Image, str, int]:
    """The degraded image, a description of the parameters, and the JPEG quality to save at."""
    eyes = face.eyes if face else 0.18 * min(img.size)
    params: list[str] = []
    quality = 95
    if "bystanders" in kinds:
        assert face is not None
        # the subject 28-42 % of the crop wide (eyes ~28-44 px): room for a bystander larger
        # than the subject to stay in frame and be detected (at 0.42 it is cut by the edge)
        frac = rng.uniform(0.28, 0.42)
        comp = compose(Portrait(img, face.box), bystanders, rng, face_frac=frac)
        eyes *= (comp.subject_box[2] - comp.subject_box[0]) / (face.box[2] - face.box[0])
        img = comp.image
        scales = ",".join(f"{s:.2f}" for s in comp.bystander_scales)
        params.append(
            f"bystanders={len(comp.bystander_boxes)} scale={scales or '-'} subject={frac:.2f}"
        )
    if "down" in kinds:
        target = rng.uniform(30.0, min(60.0, 0.9 * eyes))
        s = target / eyes
        w, h = img.size
        small = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        up = rng.random() < 0.5
        img = small.resize((w, h), Image.Resampling.BICUBIC) if up else small
        eyes = target if not up else eyes
        params.append(f"down eyes={target:.0f}px{' up' if up else ''}")
    if "blur" in kinds:
        sigma = eyes * rng.uniform(0.03, 0.07)
        img = img.filter(ImageFilter.GaussianBlur(sigma))
        params.append(f"blur sigma={sigma:.1f}px")
    if "grey" in kinds:
        img = img.convert("L")
        params.append("grey")
    if "jpeg" in kinds:
        quality = rng.randint(20, 40)
        params.append(f"jpeg q={quality}")
    return img, "; ".join(params), quality


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im) or im
        return upright.convert("RGB")


# ---------------------------------------------------------------------------- generator


@dataclasses.dataclass(frozen=True)
class Plan:
    """Who is enrolled, the probe variants, the folds of the pairs protocol."""

    people: dict[str, list[Person]]
    enrolled: set[str]
    variants: list[Variant]
    fold_of: dict[str, int]


def _split_people(people: dict[str, list[Person]]) -> tuple[set[str], set[str], dict[str, int]]:
    """Enrolled subjects, UTKFace non-mated subjects, and each subject's fold (pairs)."""
    rng = random.Random(f"{SEED}:split")
    enrolled: set[str] = set()
    london = sorted(people["london"], key=lambda p: p.subject)
    rng.shuffle(london)
    enrolled |= {p.subject for p in london[:80]}
    orl = sorted(people["orl"], key=lambda p: p.subject)
    rng.shuffle(orl)
    enrolled |= {p.subject for p in orl[:30]}
    for src in ("johns", "deepface", "fr"):
        enrolled |= {p.subject for p in people[src]}
    by_group: dict[str, list[Person]] = defaultdict(list)
    for p in people["utkface"]:
        by_group[p.group].append(p)
    nonmated_utk: set[str] = set()
    fold_of: dict[str, int] = {}
    groups = sorted(by_group)
    quota = {
        g: 150 // len(groups) + (1 if k < 150 % len(groups) else 0) for k, g in enumerate(groups)
    }
    for g in groups:
        members = by_group[g]
        rng.shuffle(members)
        nonmated_utk |= {p.subject for p in members[: quota[g]]}
        enrolled |= {p.subject for p in members[quota[g] :]}
        for k, p in enumerate(members):
            fold_of[p.subject] = k % FOLDS
    # folds of the labelled people: per source (London by gender), round-robin after a shuffle;
    # each source starts at a different fold so the small ones spread
    start = 0
    for src in ("london", "orl", "johns", "deepface", "fr"):
        group_lists = defaultdict(list)
        for p in sorted(people[src], key=lambda p: p.subject):
            group_lists[p.gender if src == "london" else ""].append(p)
        for key in sorted(group_lists):
            members = group_lists[key]
            rng.shuffle(members)
            for k, p in enumerate(members):
                fold_of[p.subject] = (start + k) % FOLDS
            start += len(members)
    return enrolled, nonmated_utk, fold_of


def plan(data: Path, out: Path, recs: dict[Path, ImageRec]) -> Plan:
    """Every probe variant to write (deterministic; needs the originals' face records)."""
    people = all_people(data)
    enrolled, nonmated_utk, fold_of = _split_people(people)
    variants: list[Variant] = []
    base = ("down", "blur", "jpeg", "grey")

    def allowed(face: FaceRec | None, kinds: Sequence[str]) -> list[str]:
        ok = []
        for k in kinds:
            if k == "down" and (face is None or face.eyes < 34):
                continue  # already at or below 30 px between the eyes
            if k == "bystanders" and face is None:
                continue
            ok.append(k)
        return ok

    def add(person: Person, origin: Path, k: int, kinds: tuple[str, ...]) -> None:
        if not kinds:
            variants.append(Variant(origin, person.subject, person.source, origin, (), ""))
            return
        name = f"{person.subject.split(':', 1)[1]}_{origin.stem}_v{k}.jpg".replace("/", "_")
        variants.append(
            Variant(
                out / "images" / person.source / name,
                person.subject,
                person.source,
                origin,
                kinds,
                "",
            )
        )

    for person in people["london"]:
        (smiling,) = person.others
        face = recs[smiling].face("largest")
        rng = random.Random(f"{SEED}:{person.subject}")
        for k in range(5):
            if k == 0:
                kinds = _draw_kinds(rng, allowed(face, (*base, "bystanders")), "bystanders")
            else:
                kinds = _draw_kinds(rng, allowed(face, (*base, "bystanders")))
            add(person, smiling, k, kinds)
    for person in people["orl"]:
        rng = random.Random(f"{SEED}:{person.subject}")
        for origin in person.others:
            face = recs[origin].face("largest")
            kinds = (
                ()
                if rng.random() < 0.3
                else _draw_kinds(rng, allowed(face, ("down", "blur", "jpeg")))
            )
            add(person, origin, 0, kinds)
    for person in people["johns"]:
        rng = random.Random(f"{SEED}:{person.subject}")
        for origin in person.others:
            add(person, origin, 0, ())
            add(person, origin, 1, _draw_kinds(rng, allowed(recs[origin].face("largest"), base)))
    for src in ("deepface", "fr"):
        for person in people[src]:
            rng = random.Random(f"{SEED}:{person.subject}")
            for j, origin in enumerate(person.others):
                face = recs[origin].face("largest")
                add(person, origin, 0, ())
                add(person, origin, 1, _draw_kinds(rng, allowed(face, base)))
                if (src == "fr" or j % 2 == 0) and face is not None:
                    add(
                        person,
                        origin,
                        2,
                        _draw_kinds(rng, allowed(face, (*base, "bystanders")), "bystanders"),
                    )
    for person in people["utkface"]:
        if person.subject not in nonmated_utk:
            continue
        rng = random.Random(f"{SEED}:{person.subject}")
        face = recs[person.ref].face("largest")
        kinds = () if rng.random() < 0.15 else _draw_kinds(rng, allowed(face, base))
        add(person, person.ref, 0, kinds)
    return Plan(people, enrolled, variants, fold_of)


def write_images(p: Plan, recs: dict[Path, ImageRec]) -> list[Variant]:
    """Write every degraded variant; returns the variants with their parameters filled in."""
    london = {q.subject: q for q in p.people["london"]}
    by_subject: dict[str, Portrait] = {}
    for q in london.values():
        face = recs[q.others[0]].face("largest")
        if face is not None:
            by_subject[q.subject] = Portrait(_open(q.others[0]), face.box)
    pool = sorted(by_subject)
    done = []
    for v in p.variants:
        if not v.kinds:
            done.append(v)
            continue
        rng = random.Random(f"{SEED}:{v.path.name}")
        others = [s for s in pool if s != v.subject]
        chosen = rng.sample(others, 1 if rng.random() < 0.5 else 2)
        img, params, quality = _apply(
            _open(v.origin),
            recs[v.origin].face("largest"),
            v.kinds,
            rng,
            [by_subject[s] for s in chosen],
        )
        if "bystanders" in v.kinds:
            params += f" ({', '.join(chosen)})"
        v.path.parent.mkdir(parents=True, exist_ok=True)
        img.save(v.path, "JPEG", quality=quality)
        done.append(dataclasses.replace(v, params=params))
    return done


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> int:
    body = list(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(body)
    return len(body)


def _pairs(p: Plan, variants: list[Variant]) -> list[tuple[Path, Path, int, int, str, str]]:
    """(a = reference side, b = probe side, same, fold, pair kind, probe kind), fold order."""
    person = {q.subject: q for lst in p.people.values() for q in lst}
    probes_of: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        probes_of[v.subject].append(v)
    out = []
    for fold in range(FOLDS):
        rng = random.Random(f"{SEED}:pairs:{fold}")
        members = [q for q in person.values() if p.fold_of.get(q.subject) == fold]
        gen: dict[str, list[tuple[Path, Variant]]] = defaultdict(list)
        for q in members:
            if q.source == "utkface":
                continue
            key = q.source if q.source in ("london", "orl") else "other"
            gen[key] += [(q.ref, v) for v in probes_of[q.subject]]
            originals = [q.ref, *q.others]
            if q.source in ("orl", "deepface"):  # across expressions / mixed photos as they are
                for i, a in enumerate(originals[1:], 1):
                    for b in originals[i + 1 :]:
                        gen[key].append((a, Variant(b, q.subject, q.source, b, (), "")))
        chosen: list[tuple[Path, Variant, int, str]] = []
        for key in ("london", "other"):
            take = rng.sample(gen[key], min(len(gen[key]), 60 if key == "london" else 45))
            chosen += [(a, v, 1, f"genuine {key}") for a, v in take]
        rest = PAIRS_PER_FOLD - len(chosen)
        take = rng.sample(gen["orl"], min(rest, len(gen["orl"])))
        chosen += [(a, v, 1, "genuine orl") for a, v in take]
        # impostors: a reference against another person's probe, mostly same sex / same source
        imp: dict[str, list[tuple[Path, Variant]]] = defaultdict(list)
        for v in variants:
            pv = person[v.subject]
            if p.fold_of.get(v.subject) != fold:
                continue
            for q in members:
                if q.subject == v.subject:
                    continue
                same_sex = q.gender == pv.gender and q.gender != "unknown"
                srcs = {q.source, pv.source}
                if srcs == {"london"}:
                    key = "london same sex" if same_sex else "london cross sex"
                elif srcs == {"orl"}:
                    key = "orl"
                elif srcs == {"utkface"}:
                    if q.group != pv.group:
                        continue
                    key = "utkface same gender+race"
                elif srcs == {"london", "utkface"}:
                    if not same_sex:
                        continue
                    key = "london-utkface same sex"
                elif srcs & WEB and srcs <= WEB | {"london"}:
                    if not same_sex:
                        continue
                    key = "web same sex"
                else:
                    continue
                imp[key].append((q.ref, v))
        quotas = {
            "london same sex": 45,
            "london cross sex": 5,
            "orl": 30,
            "utkface same gender+race": 30,
            "london-utkface same sex": 15,
            "web same sex": 25,
        }
        impostors: list[tuple[Path, Variant, int, str]] = []
        for key, n in quotas.items():
            take = rng.sample(imp[key], min(n, len(imp[key])))
            impostors += [(a, v, 0, f"impostor {key}") for a, v in take]
        used = {(x, y.path) for x, y, _, _ in impostors}
        left = [(a, v) for a, v in imp["london same sex"] if (a, v.path) not in used]
        take = rng.sample(left, PAIRS_PER_FOLD - len(impostors))
        impostors += [(a, v, 0, "impostor london same sex") for a, v in take]
        block = chosen + impostors
        rng.shuffle(block)
        out += [(a, v.path, same, fold, kind, v.kind) for a, v, same, kind in block]
    return out


def generate(data: Path, out: Path, cache_dir: Path, workers: int = 2) -> None:
    """Write images and protocol CSVs under ``out`` unless they are there for this version."""
    stamp = out / "manifest.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == [VERSION, SEED]:
        return
    print(f"generating the hard dev data in {out} (seed {SEED})...")
    out.mkdir(parents=True, exist_ok=True)
    gitignore = out.parent / ".gitignore"
    if out.parent.name == ".data" and not gitignore.exists():
        gitignore.write_text("*\n")
    people = all_people(data)
    originals = [q.ref for lst in people.values() for q in lst]
    originals += [o for lst in people.values() for q in lst for o in q.others]
    recs = face_records(originals, cache_dir, workers)
    p = plan(data, out, recs)
    shutil.rmtree(out / "images", ignore_errors=True)
    variants = write_images(p, recs)

    def rel(path: Path) -> str:
        return os.path.relpath(path, out)

    persons = {q.subject: q for lst in people.values() for q in lst}
    n_images = _write_csv(
        out / "images.csv",
        ["image", "subject", "source", "gender", "enrolled", "origin", "kind", "params"],
        (
            [
                rel(v.path),
                v.subject,
                v.source,
                persons[v.subject].gender,
                int(v.subject in p.enrolled),
                rel(v.origin),
                v.kind,
                v.params,
            ]
            for v in variants
        ),
    )
    gallery = [q for q in persons.values() if q.subject in p.enrolled]
    _write_csv(
        out / "gallery.csv",
        ["image", "subject", "group"],
        ([rel(q.ref), q.subject, q.source] for q in gallery),
    )
    _write_csv(
        out / "probes.csv",
        ["image", "subject", "group"],
        ([rel(v.path), v.subject, v.source] for v in variants),
    )
    pairs = _pairs(p, variants)
    _write_csv(
        out / "pairs.csv", ["a", "b", "same"], ([rel(a), rel(b), s] for a, b, s, *_ in pairs)
    )
    _write_csv(
        out / "pairs_meta.csv",
        ["a", "b", "same", "fold", "pair_kind", "probe_kind"],
        ([rel(a), rel(b), s, f, k, pk] for a, b, s, f, k, pk in pairs),
    )
    stamp.write_text(
        json.dumps(
            {
                "version": [VERSION, SEED],
                "probe_images": n_images,
                "degraded_written": sum(1 for v in variants if v.kinds),
                "gallery": len(gallery),
                "pairs": len(pairs),
            },
            indent=1,
        )
    )
