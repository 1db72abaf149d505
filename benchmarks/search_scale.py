"""Search at scale: every index backend and setting on 100k / 1M face-like templates, one run.

Real templates are too few here, so galleries are sampled from a two-level identity model
(:class:`faceledger.index.synthetic.FaceLikeModel`) fitted to real dlib templates of the
labelled sets in ../shared/data (see benchmarks/README_search_scale.md). For each size and
setting it prints build time, memory per template, p50/p99 single-query latency, batched
throughput, recall@1/@10 against exact search and rank-1 identification of held-back
probes, with exact numpy search as the reference measured in the same run.

    .venv/bin/python benchmarks/search_scale.py --sizes 100k          # ~10 min on 2 busy vCPUs
    .venv/bin/python benchmarks/search_scale.py --sizes 1M --hnsw-ef 128,256,512  # ~7 min idle
    .venv/bin/python benchmarks/search_scale.py --quick               # 20k, smoke test

Nothing is written into the repository; real templates and the re-rank store are cached in
``--cache-dir`` (default: a folder under the system temp dir).
"""

from __future__ import annotations

import os

# One BLAS thread per query, like a server answering concurrent requests; it also keeps
# OpenBLAS from spinning against other processes on a shared 2-core machine. numpy reads
# it when it loads, so it is set before the imports below.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from faceledger import Settings
from faceledger.batch import embed_paths
from faceledger.index import (
    ExactIndex,
    FaissFlatIndex,
    FaissHNSWIndex,
    FaissIVFIndex,
    IndexChoice,
    VectorIndex,
    rebuild,
)
from faceledger.index.factory import IVF_TRAIN_SAMPLE, ivf_nlist, scann_leaves
from faceledger.index.milvus_index import MilvusIndex
from faceledger.index.scann_index import ScannIndex
from faceledger.index.scann_index import available as scann_available
from faceledger.index.synthetic import FaceLikeModel, score_summary

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
K = 10
console = Console(width=200)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


# -- real templates and the fitted model ------------------------------------------------------
def labelled_sets() -> dict[str, list[tuple[Path, str]]]:
    """Image path and identity label of every labelled set used to fit the model."""
    image = {".jpg", ".jpeg", ".png", ".pgm"}
    return {
        "orl": [(p, f"orl/{p.parent.name}") for p in sorted((DATA / "orl").glob("s*/*.pgm"))],
        "london": [
            (p, f"london/{p.name.split('_')[0]}")
            for p in sorted((DATA / "london" / "images").glob("*.jpg"))
        ],
        "johns": [
            (p, f"johns/{p.parent.name}")
            for p in sorted((DATA / "johns").glob("*/*"))
            if p.suffix.lower() in image
        ],
    }


def real_templates(
    names: list[str], cache: Path, settings: Settings
) -> tuple[F32, npt.NDArray[np.str_]]:
    vecs, labels = [], []
    sets = labelled_sets()
    for name in names:
        f = cache / f"real_{name}_{settings.model_id}.npz"
        if not f.is_file():
            items = sets[name]
            t0 = time.perf_counter()
            outs = embed_paths([p for p, _ in items], settings)
            keep = [
                (o.result.template.vector, lab)
                for o, (_, lab) in zip(outs, items, strict=True)
                if o.result is not None and o.result.template is not None
            ]
            np.savez(
                f, vectors=np.stack([v for v, _ in keep]), labels=np.array([lb for _, lb in keep])
            )
            console.print(
                f"  embedded {name}: {len(keep)}/{len(items)} images "
                f"in {time.perf_counter() - t0:.0f} s (cached in {f})"
            )
        z = np.load(f)
        vecs.append(z["vectors"].astype(np.float32))
        labels.append(z["labels"])
    return np.concatenate(vecs), np.concatenate(labels)


def participation(vectors: F32) -> float:
    """(sum λ)² / sum λ² of the covariance eigenvalues: how many dimensions the data fills."""
    ev = np.linalg.eigvalsh(np.cov(vectors.astype(np.float64), rowvar=False))
    return float(ev.sum() ** 2 / (ev**2).sum())


def fit_model(args: argparse.Namespace, cache: Path) -> FaceLikeModel:
    vectors, labels = real_templates(args.fit_sets.split(","), cache, Settings())
    model = FaceLikeModel.fit(vectors, labels)
    real = score_summary(vectors, labels)
    rng = np.random.default_rng(args.seed + 1)
    uniq, inverse = np.unique(labels, return_inverse=True)
    synth_v = model.templates(model.identities(uniq.size, rng), inverse, rng)
    synth = score_summary(synth_v, inverse)
    u = rng.standard_normal(vectors.shape).astype(np.float32)
    uniform = score_summary(u / np.linalg.norm(u, axis=1, keepdims=True), inverse)
    t = Table(
        title=f"Face-like model fitted on {args.fit_sets}: {model.fitted_on['templates']} "
        f"templates of {model.fitted_on['identities']} identities"
    )
    for col in ("cosine score", "real dlib", "synthetic", "uniform random"):
        t.add_column(col, justify="right")
    for key in real:
        t.add_row(
            key, f"{real[key]:.3f}", f"{synth[key]:.3f}", f"{uniform.get(key, float('nan')):.3f}"
        )
    console.print(t)
    console.print(
        "  effective dimensions (participation ratio of the covariance): real "
        f"{participation(vectors):.1f}, synthetic {participation(synth_v):.1f}, "
        f"uniform {participation(u):.1f}"
    )
    console.print(
        f"  between-identity trace {model.fitted_on['between_trace']:.4f}, within "
        f"{model.fitted_on['within_trace']:.4f}, spread log-sd identity "
        f"{model.sigma_identity:.3f} / template {model.sigma_template:.3f}"
    )
    return model


# -- a synthetic gallery ----------------------------------------------------------------------
@dataclass
class Gallery:
    ids: I64
    vectors: F32
    who: I64
    """Identity of each gallery template."""
    queries: F32
    query_who: I64
    """Identity of each probe; -1 for non-mated probes (identities not in the gallery)."""


def make_gallery(model: FaceLikeModel, n: int, n_queries: int, seed: int) -> Gallery:
    """n templates of ~n/2 identities (1-3 each); half the probes are held-back mates."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, size=n)  # oversized; cut at n templates below
    n_ids = int(np.searchsorted(np.cumsum(per), n)) + 1
    who = np.repeat(np.arange(n_ids), per[:n_ids])[:n].astype(np.int64)
    mated = n_queries // 2
    people = model.identities(n_ids + n_queries - mated, rng)
    vectors = model.templates(people, who, rng)
    query_people = np.concatenate(
        [rng.choice(n_ids, mated, replace=False), n_ids + np.arange(n_queries - mated)]
    )
    queries = model.templates(people, query_people, rng)
    query_who = np.where(query_people < n_ids, query_people, -1).astype(np.int64)
    return Gallery(np.arange(n, dtype=np.int64), vectors, who, queries, query_who)


# -- measurement --------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Row:
    name: str
    build_s: float
    bytes_per: float
    rss_per: float
    p50_ms: float
    p99_ms: float
    cpu_p50_ms: float
    qps: float
    recall1: float
    recall10: float
    rank1: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def measure(
    name: str,
    index: VectorIndex,
    gallery: Gallery,
    truth: I64,
    build: tuple[float, int],
    args: argparse.Namespace,
    *,
    latency_queries: int,
    batch_queries: int | None = None,
    note: str = "",
) -> Row:
    """Latency one query at a time on one thread; throughput of one batch on ``--threads``."""
    q = gallery.queries[:batch_queries]
    n = len(index)
    faiss.omp_set_num_threads(1)
    index.search(q[:1], K)  # warm-up, not counted
    wall, cpu = [], []
    for i in range(min(latency_queries, q.shape[0])):
        c0, t0 = time.thread_time(), time.perf_counter()
        index.search(q[i : i + 1], K)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    faiss.omp_set_num_threads(args.threads)
    t0 = time.perf_counter()
    hits = index.search(q, K)
    batch_s = time.perf_counter() - t0
    want = truth[: q.shape[0]]
    overlap = [np.intersect1d(a, b).size / K for a, b in zip(hits.ids, want, strict=True)]
    who = gallery.query_who[: q.shape[0]]
    mated = who >= 0
    top = np.maximum(hits.ids[mated, 0], 0)
    return Row(
        name=name,
        build_s=build[0],
        bytes_per=index.memory_bytes() / n,
        rss_per=build[1] / n,
        p50_ms=1e3 * float(np.percentile(wall, 50)),
        p99_ms=1e3 * float(np.percentile(wall, 99)),
        cpu_p50_ms=1e3 * float(np.percentile(cpu, 50)),
        qps=q.shape[0] / batch_s,
        recall1=float(np.mean(hits.ids[:, 0] == want[:, 0])),
        recall10=float(np.mean(overlap)),
        rank1=float(np.mean(gallery.who[top] == who[mated])),
        note=note,
    )


def timed_build(build: Callable[[], VectorIndex]) -> tuple[VectorIndex, tuple[float, int]]:
    """The index, and (seconds, resident-memory growth in bytes) of building it."""
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    index = build()
    return index, (time.perf_counter() - t0, rss_bytes() - before)


class Store:
    """The gallery's full templates on disk (as the metadata store holds them), memory-mapped.

    Compressed indexes read the shortlist's templates from here to re-rank.
    """

    def __init__(self, vectors: F32, folder: Path) -> None:
        self.path = folder / f"store_{vectors.shape[0]}.f32"
        mm = np.memmap(self.path, dtype=np.float32, mode="w+", shape=vectors.shape)
        mm[:] = vectors
        mm.flush()
        del mm
        self.vectors = np.memmap(self.path, dtype=np.float32, mode="r", shape=vectors.shape)

    def __call__(self, ids: I64) -> F32:
        return np.asarray(self.vectors[ids])  # gallery ids are row numbers here

    def close(self) -> None:
        del self.vectors
        self.path.unlink(missing_ok=True)


def _filled(index: VectorIndex, g: Gallery) -> VectorIndex:
    for a in range(0, g.ids.size, 200_000):
        index.add(g.ids[a : a + 200_000], g.vectors[a : a + 200_000])
    return index


# -- the settings -----------------------------------------------------------------------------
def run_size(n: int, model: FaceLikeModel, args: argparse.Namespace, cache: Path) -> Iterator[Row]:
    console.rule(f"[bold]{n:,} templates")
    t0 = time.perf_counter()
    g = make_gallery(model, n, args.queries, args.seed + n)
    console.print(
        f"  generated {n:,} templates of {g.who.max() + 1:,} identities and "
        f"{g.queries.shape[0]} probes in {time.perf_counter() - t0:.1f} s"
    )
    lat_n = args.latency_queries
    slow_lat = max(20, lat_n // 10) if n >= 500_000 else lat_n
    faiss.omp_set_num_threads(args.threads)

    exact, built = timed_build(lambda: _filled(ExactIndex(128, "synthetic"), g))
    t0 = time.perf_counter()
    truth = exact.search(g.queries, K).ids
    console.print(
        f"  exact ground truth for {g.queries.shape[0]} probes: {time.perf_counter() - t0:.1f} s"
    )
    yield measure(
        "exact (numpy)", exact, g, truth, built, args,
        latency_queries=slow_lat, note="reference; 1 BLAS thread",
    )  # fmt: skip
    del exact
    gc.collect()

    if "flat" in args.backends:
        flat, built = timed_build(lambda: _filled(FaissFlatIndex(128, "synthetic"), g))
        yield measure(
            "faiss-flat", flat, g, truth, built, args, latency_queries=slow_lat, note="exhaustive"
        )
        del flat
        gc.collect()

    store = Store(g.vectors, cache)
    if "hnsw" in args.backends:
        for storage in args.hnsw_storage:
            params = {"m": args.hnsw_m, "ef_construction": args.hnsw_efc, "storage": storage}
            choice = IndexChoice("faiss-hnsw", params)
            source = store if storage == "sq8" else None

            def build_hnsw(c: IndexChoice = choice, s: Store | None = source) -> VectorIndex:
                return rebuild(
                    g.ids, g.vectors, c, dimension=128, model_id="synthetic", rerank_source=s
                )

            hnsw, built = timed_build(build_hnsw)
            assert isinstance(hnsw, FaissHNSWIndex)
            note = f"efC {args.hnsw_efc}, shortlist {hnsw.shortlist}"
            if source is not None:
                note += "; re-rank from store (+512 B/t if kept in the index)"
            for ef in args.hnsw_ef:
                hnsw.ef_search = ef
                yield measure(
                    f"faiss-hnsw {storage} M{args.hnsw_m} ef{ef}", hnsw, g, truth, built, args,
                    latency_queries=lat_n, note=note,
                )  # fmt: skip
            del hnsw
            gc.collect()

    yield from ivf_rows(n, g, truth, args, store)
    store.close()
    if "scann" in args.backends:
        yield from scann_rows(n, g, truth, args)

    if "milvus" in args.backends and n <= args.milvus_max:
        path = cache / f"bench_{n}.db"
        shutil.rmtree(path, ignore_errors=True)

        def build_milvus() -> VectorIndex:
            idx = MilvusIndex.connect(
                str(path), model_id="synthetic", dimension=128, gallery="bench", shortlist=32,
                flush_on_add=False,
            )  # fmt: skip
            for a in range(0, n, 20_000):
                idx.add(g.ids[a : a + 20_000], g.vectors[a : a + 20_000])
            idx.flush()  # seal once at the end
            return idx

        mil, built = timed_build(build_milvus)
        yield measure(
            "milvus-lite FLAT", mil, g, truth, (built[0], 0), args,
            latency_queries=20, batch_queries=100, note="embedded server process; 100 probes",
        )  # fmt: skip
        mil.close()
        shutil.rmtree(path, ignore_errors=True)


def ivf_rows(
    n: int, g: Gallery, truth: I64, args: argparse.Namespace, store: Store
) -> Iterator[Row]:
    """IVF with SQ8 and PQ codes; one k-means shared by all encodings; full templates in a store."""
    nlist = ivf_nlist(n)
    cells: F32 | None = None
    big = n >= 500_000
    settings: list[tuple[str, dict[str, Any], list[tuple[int, int]]]] = [
        ("sq8", {"encoding": "sq8"}, [(64, 100), (128, 100), (256, 100)] if big else
         [(32, 100), (64, 100), (128, 100)]),
        ("pq32", {"encoding": "pq", "pq_m": 32}, [(128, 400), (256, 400)] if big else
         [(64, 200), (128, 400)]),
    ]  # fmt: skip
    if not big or "pq64" in args.backends:
        settings.append(("pq64", {"encoding": "pq", "pq_m": 64}, [(64, 200), (128, 200)]))
    # 4-bit PQ in faiss' SIMD fast-scan layout: 32 B codes scanned ~4x faster than 8-bit PQ32
    fs_probes = args.fs_nprobe or ([256, 320, 384] if big else [64, 96, 128])
    settings.append(("pq64x4fs", {"encoding": "pq4fs", "pq_m": 64}, [(p, 400) for p in fs_probes]))
    family = {"sq8": "sq8", "pq32": "pq", "pq64": "pq", "pq64x4fs": "fs"}
    for label, params, probes in settings:
        if not {family[label], "ivf"} & args.backends:
            continue

        def build(params: dict[str, Any] = params) -> VectorIndex:
            nonlocal cells
            ivf = FaissIVFIndex(128, "synthetic", nlist=nlist, rerank_source=store, **params)
            rng = np.random.default_rng(args.seed)
            sample = rng.choice(n, size=min(n, IVF_TRAIN_SAMPLE * nlist), replace=False)
            ivf.train(g.vectors[np.sort(sample)], centroids=cells)
            cells = ivf.centroids()
            for a in range(0, n, 100_000):
                ivf.add(g.ids[a : a + 100_000], g.vectors[a : a + 100_000])
            return ivf

        reused = cells is not None
        ivf, built = timed_build(build)
        assert isinstance(ivf, FaissIVFIndex)
        note = f"{ivf.code_bytes} B codes, re-rank from store" + (
            "; cells reused" if reused else ""
        )
        for nprobe, shortlist in probes:
            ivf.set_nprobe(nprobe)
            ivf.shortlist = shortlist
            yield measure(
                f"faiss-ivf{nlist} {label} np{nprobe} sl{shortlist}", ivf, g, truth, built, args,
                latency_queries=args.latency_queries, note=note,
            )  # fmt: skip
        ivf.shortlist = K  # re-rank only the codes' own top-k: what compression alone gives
        yield measure(
            f"faiss-ivf{nlist} {label} np{ivf.nprobe} no re-rank", ivf, g, truth, built, args,
            latency_queries=args.latency_queries, note="codes' top-10 only",
        )  # fmt: skip
        del ivf
        gc.collect()


def scann_rows(n: int, g: Gallery, truth: I64, args: argparse.Namespace) -> Iterator[Row]:
    """ScaNN (optional wheel): SOAR tree, anisotropic 4-bit codes, 200 re-scored, 32 re-ranked."""
    if not scann_available():
        console.print("  [yellow]scann rows skipped: pip install 'faceledger[scale]'[/]")
        return
    leaves = scann_leaves(n)
    choice = IndexChoice("scann", {"leaves": leaves, "reorder": 200, "shortlist": 32})
    index, built = timed_build(
        lambda: rebuild(g.ids, g.vectors, choice, dimension=128, model_id="synthetic")
    )
    assert isinstance(index, ScannIndex)
    index.set_threads(args.threads)
    shares = args.scann_lts or [0.06, 0.075, 0.09]
    for share in shares:
        index.leaves_to_search = max(8, round(share * leaves))
        yield measure(
            f"scann {leaves} leaves lts{index.leaves_to_search} pre200", index, g, truth,
            built, args, latency_queries=args.latency_queries,
            note="SOAR; own float copy + re-rank copy",
        )  # fmt: skip
    t0 = time.perf_counter()
    index.remove(g.ids[:10])  # about one person: ScaNN's arrays are rewritten without them
    console.print(f"  scann: removing 10 templates took {time.perf_counter() - t0:.1f} s")
    del index
    gc.collect()


# -- output -----------------------------------------------------------------------------------
HEADERS = (
    "setting", "build s", "B/template", "RSS B/t", "p50 ms", "p99 ms", "CPU p50 ms",
    "batch q/s", "recall@1", "recall@10", "rank-1", "note",
)  # fmt: skip


def cells(r: Row) -> list[str]:
    return [
        r.name, f"{r.build_s:.1f}", f"{r.bytes_per:.0f}", f"{r.rss_per:.0f}", f"{r.p50_ms:.3f}",
        f"{r.p99_ms:.3f}", f"{r.cpu_p50_ms:.3f}", f"{r.qps:,.0f}", f"{r.recall1:.3f}",
        f"{r.recall10:.3f}", f"{r.rank1:.3f}", r.note,
    ]  # fmt: skip


def report(n: int, rows: list[Row]) -> None:
    t = Table(title=f"{n:,} templates, k={K}")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("setting", "note") else "right")
    for r in rows:
        t.add_row(*cells(r))
    console.print(t)
    print("\n| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join("---" for _ in HEADERS) + "|")
    for r in rows:
        print("| " + " | ".join(cells(r)) + " |")
    ref = rows[0]
    fast = [r for r in rows if r.recall10 >= 0.99 and r.p50_ms <= 1.0]
    fast_cpu = [r for r in rows if r.recall10 >= 0.99 and r.cpu_p50_ms <= 1.0]
    small = [r for r in rows if r.bytes_per <= 128 and r.recall10 >= 0.95]
    best = min((r for r in rows if r.recall10 >= 0.99), key=lambda r: r.p50_ms, default=ref)
    print(
        f"\nexact p50 {ref.p50_ms:.2f} ms; fastest at recall@10 >= 0.99: {best.name} "
        f"p50 {best.p50_ms:.3f} ms ({ref.p50_ms / best.p50_ms:.0f}x faster than exact)"
    )
    print(
        "target p50 <= 1 ms at recall@10 >= 0.99 (wall): "
        + (f"MET by {', '.join(r.name for r in fast)}" if fast else "not met")
    )
    print(
        "  same on CPU time per query: "
        + (f"MET by {', '.join(r.name for r in fast_cpu)}" if fast_cpu else "not met")
    )
    print(
        "target <= 128 B/template at recall@10 >= 0.95: "
        + (f"MET by {', '.join(r.name for r in small)}" if small else "not met")
    )


def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes", default="100k,1M", help="comma list, e.g. 100k,1M (10M: --allow-10m)"
    )
    ap.add_argument("--quick", action="store_true", help="20k templates, 200 probes: a smoke test")
    ap.add_argument("--queries", type=int, default=1000, help="probes (half mated, half not)")
    ap.add_argument("--latency-queries", type=int, default=300, help="single-query timings")
    ap.add_argument(
        "--backends", default="flat,hnsw,sq8,pq,fs,scann,milvus",
        help="subset of flat,hnsw,sq8,pq,fs,pq64,ivf,scann,milvus (exact always runs; no pq64 "
        "at 1M+)",
    )  # fmt: skip
    ap.add_argument(
        "--milvus-max", type=parse_size, default=100_000,
        help="largest gallery loaded into milvus-lite (slow: an embedded Python engine)",
    )  # fmt: skip
    ap.add_argument("--fit-sets", default="orl,london,johns")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--hnsw-efc", type=int, default=40, help="HNSW ef_construction")
    ap.add_argument("--hnsw-ef", default="64,128,256", help="ef_search values to measure")
    ap.add_argument("--hnsw-storage", default="sq8", help="comma list of flat,sq8")
    ap.add_argument(
        "--fs-nprobe", default="", help="cells probed by the fast-scan IVF rows (comma list)"
    )
    ap.add_argument(
        "--scann-lts", default="", help="ScaNN leaves searched, as shares of its leaves (list)"
    )
    ap.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads for batches")
    ap.add_argument("--allow-10m", action="store_true", help="permit sizes above 2M (RAM!)")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument(
        "--no-huge-pages",
        action="store_true",
        help="do not restart with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (Linux)",
    )
    args = ap.parse_args(argv)
    args.backends = set(args.backends.split(","))
    args.hnsw_ef = [int(x) for x in args.hnsw_ef.split(",")]
    args.fs_nprobe = [int(x) for x in args.fs_nprobe.split(",") if x]
    args.scann_lts = [float(x) for x in args.scann_lts.split(",") if x]
    args.hnsw_storage = args.hnsw_storage.split(",")
    if args.quick:
        args.sizes, args.queries, args.latency_queries = "20k", 200, 100
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if max(sizes) > 2_000_000 and not args.allow_10m:
        ap.error("sizes above 2M need ~6 GB per 10M templates per index: pass --allow-10m")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"faiss {faiss.__version__}; batches on {args.threads} OpenMP threads, single queries "
        f"on 1; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"cache {args.cache_dir}; native allocations on huge pages: {on_huge_pages()}"
    )
    start = time.perf_counter()
    model = fit_model(args, args.cache_dir)
    for n in sizes:
        t0 = time.perf_counter()
        rows = []
        for row in run_size(n, model, args, args.cache_dir):
            console.print(
                f"  {row.name}: p50 {row.p50_ms:.3f} ms (CPU {row.cpu_p50_ms:.3f}), recall@10 "
                f"{row.recall10:.3f}, {row.bytes_per:.0f} B/t, build {row.build_s:.1f} s"
            )
            rows.append(row)
        report(n, rows)
        console.print(
            f"  {n:,}: {time.perf_counter() - t0:.0f} s, load average {os.getloadavg()[0]:.1f}"
        )
    console.print(f"total {time.perf_counter() - start:.0f} s")
    return 0


HUGE_PAGES = "glibc.malloc.hugetlb=1"


def on_huge_pages() -> bool:
    return HUGE_PAGES in os.environ.get("GLIBC_TUNABLES", "")


def rerun_on_huge_pages() -> None:
    """Start this script again with glibc's malloc on transparent huge pages (madvise), as
    the README (Speed) advises for a service holding a large ScaNN or faiss index: ScaNN's
    own arrays then need far fewer TLB entries (measured ~5 % faster ScaNN search at 1M).
    numpy already asks for huge pages for its large arrays. glibc reads the setting at
    start-up only, hence the re-exec; ``--no-huge-pages`` measures without."""
    if sys.platform != "linux" or on_huge_pages() or "--no-huge-pages" in sys.argv:
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES"), HUGE_PAGES) if t)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


if __name__ == "__main__":
    rerun_on_huge_pages()
    sys.exit(main())
