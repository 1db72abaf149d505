"""Milvus server at scale (issue #26): index kinds of a real Milvus server next to ScaNN.

The same face-like galleries, probes, exact reference and measurement as
``search_scale.py`` (whose pieces this script imports), but the approximate indexes live
in a real Milvus server: the 2.3 standalone server bundled in the ``milvus`` wheel, started
here by ``tests/milvus_server.py`` (``--milvus-server``), or any server or cluster
(``--milvus-uri``). Each index kind gets a fresh collection (one gallery, a partition):
the gallery inserted through faceledger's ``MilvusIndex.add``, flushed, every segment
indexed, released, loaded again, then searched through ``MilvusIndex.search``: Milvus
returns a shortlist with its vectors, faceledger re-ranks it exactly. (Swapping the index of
one collection instead failed on the 2.3.5 server: after an IVF_PQ build the segment's vector
binlog was gone and the next build retried forever.) In the same run, before Milvus, on the
same templates: ScaNN and faiss IVF fast-scan in process.

Per index kind it prints insert and index-build time, the server's resident-memory growth
when the collection is loaded (column "RSS B/t"; only the first collection's is clean: the
server's allocator reuses what an earlier one freed), the size of the index files the server
wrote (column "B/template"; includes segments compaction merged away), p50/p99
single-query latency (consistency Bounded: the engine's own time; one Strong row per kind,
as faceledger searches by default, which adds the wait for the server's time tick),
recall@10 against exact search and rank-1 identification.

    .venv/bin/python benchmarks/milvus_scale.py --milvus-server --sizes 1M
    .venv/bin/python benchmarks/milvus_scale.py --milvus-server --quick        # 20k smoke test
    .venv/bin/python benchmarks/milvus_scale.py --milvus-uri http://milvus:19530 --sizes 1M

Nothing is written into the repository; the server's data lives under ``--cache-dir`` and is
removed at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as search_scale.py: before numpy loads

import argparse
import dataclasses
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceledger.index import ExactIndex
from faceledger.index.milvus_index import MilvusIndex
from search_scale import (
    Gallery,
    Row,
    Store,
    _filled,
    console,
    fit_model,
    ivf_rows,
    make_gallery,
    measure,
    parse_size,
    report,
    scann_rows,
    timed_build,
)

REPO = Path(__file__).resolve().parents[1]
K = 10


# -- the Milvus server ------------------------------------------------------------------------
@dataclass
class Server:
    """Where the benchmark's Milvus is, and what can be measured of it."""

    uri: str
    pid: int | None = None
    """The server process (standalone: every component in one process) for its RSS."""
    data_dir: Path | None = None
    """Its local storage, to size the index files it writes."""
    stop: Any = None


def start_server(args: argparse.Namespace) -> Server:
    if args.milvus_uri:
        return Server(args.milvus_uri, pid=args.milvus_pid)
    sys.path.insert(0, str(REPO))
    from tests.milvus_server import MilvusServer, server_version

    base = args.cache_dir / "milvus-server"
    shutil.rmtree(base, ignore_errors=True)
    settings: dict[str, object] = {"proxy.timeTickInterval": args.tick_ms}
    server = MilvusServer(base, binaries=args.cache_dir / "milvus-bin", settings=settings)
    server.start(timeout=300)
    console.print(
        f"Milvus {server_version()} standalone at {server.uri} (pid {server.pid}), started in "
        f"{server.start_seconds:.1f} s; time tick {args.tick_ms} ms"
    )

    def stop() -> None:
        server.kill()
        server.remove_data()

    return Server(server.uri, pid=server.pid, data_dir=base, stop=stop)


def server_rss(server: Server) -> int | None:
    if server.pid is None:
        return None
    try:
        with open(f"/proc/{server.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def index_file_bytes(server: Server, since: float) -> int | None:
    """Bytes of the index files the server wrote into its local storage after ``since``
    (a ``time.time()``): the index just built, without older ones not yet collected."""
    if server.data_dir is None:
        return None
    total = 0
    for folder in server.data_dir.rglob("index_files"):
        for p in folder.rglob("*"):
            st = p.stat()
            if p.is_file() and st.st_mtime >= since:
                total += st.st_size
    return total


def settle_rss(server: Server, seconds: float = 5.0) -> int | None:
    """The server's RSS once it has stopped changing by more than 1 % for a second."""
    last = server_rss(server)
    deadline = time.monotonic() + seconds
    while last is not None and time.monotonic() < deadline:
        time.sleep(1.0)
        now = server_rss(server)
        if now is None or abs(now - last) < 0.01 * last:
            return now
        last = now
    return last


# -- index kinds --------------------------------------------------------------------------------
@dataclass
class Kind:
    name: str
    index_type: str
    index_params: dict[str, Any]
    search: list[dict[str, Any]]
    shortlist: int


def kinds(args: argparse.Namespace) -> list[Kind]:
    nlist = args.nlist
    probes = [{"nprobe": p} for p in args.nprobe]
    every = {
        "HNSW": Kind(
            f"HNSW M{args.hnsw_m} efC{args.hnsw_efc}", "HNSW",
            {"M": args.hnsw_m, "efConstruction": args.hnsw_efc},
            [{"ef": e} for e in args.hnsw_ef], 32,
        ),
        "IVF_PQ": Kind(
            f"IVF_PQ nlist{nlist} m{args.pq_m}x8", "IVF_PQ",
            {"nlist": nlist, "m": args.pq_m, "nbits": 8}, probes, args.pq_shortlist,
        ),
        "IVF_SQ8": Kind(
            f"IVF_SQ8 nlist{nlist}", "IVF_SQ8", {"nlist": nlist}, probes, 100,
        ),
        "IVF_FLAT": Kind(
            f"IVF_FLAT nlist{nlist}", "IVF_FLAT", {"nlist": nlist}, probes, 32,
        ),
    }  # fmt: skip
    return [every[k] for k in args.kinds]


def _label(params: dict[str, Any]) -> str:
    return " ".join(f"{k}{v}" for k, v in params.items())


def wait_indexed(index: MilvusIndex, n: int, timeout: float) -> None:
    """Until the server has indexed all ``n`` rows of the collection."""
    client = index._client
    deadline = time.monotonic() + timeout
    while True:
        names = client.list_indexes(index.collection)
        info = client.describe_index(index.collection, names[0]) if names else {}
        if int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Milvus indexed {info.get('indexed_rows')} of {n} rows")
        time.sleep(1.0)


def load_gallery(server: Server, g: Gallery, kind: Kind, args: argparse.Namespace) -> MilvusIndex:
    """A fresh collection with ``kind``'s index, the gallery inserted through
    ``MilvusIndex.add`` (its duplicate check included) and flushed."""

    def connect() -> MilvusIndex:
        return MilvusIndex.connect(
            server.uri, model_id=f"bench-{g.ids.size}-{kind.index_type}", dimension=128,
            gallery="bench", index_type=kind.index_type, index_params=kind.index_params,
            shortlist=kind.shortlist, consistency_level="Bounded", timeout=args.milvus_timeout,
        )  # fmt: skip

    stale = connect()  # drop what an interrupted run against --milvus-uri left behind
    stale._client.drop_collection(stale.collection)
    stale.close()
    index = connect()
    n = g.ids.size
    step = 50_000
    t0 = time.perf_counter()
    for a in range(0, n, step):
        index.add(g.ids[a : a + step], g.vectors[a : a + step])
    insert_s = time.perf_counter() - t0
    index.flush()
    flush_s = time.perf_counter() - t0 - insert_s
    console.print(
        f"  milvus {kind.name}: inserted {n:,} templates in {insert_s:.1f} s "
        f"({n / insert_s:,.0f}/s through MilvusIndex.add: duplicate check + 2,000-row "
        f"inserts), flush {flush_s:.1f} s"
    )
    return index


def milvus_rows(server: Server, g: Gallery, truth: Any, args: argparse.Namespace) -> Iterator[Row]:
    """Per kind: a collection of its own (insert, flush, index every segment), released to
    measure the server without it, loaded again, searched, dropped."""
    n = g.ids.size
    for kind in kinds(args):
        rss_empty = settle_rss(server)
        t0, since = time.perf_counter(), time.time() - 1
        index = load_gallery(server, g, kind, args)
        try:
            index._client.release_collection(index.collection)
            wait_indexed(index, n, args.milvus_timeout * 10)
            build_s = time.perf_counter() - t0
            files = index_file_bytes(server, since)
            released = settle_rss(server)
            t1 = time.perf_counter()
            index._client.load_collection(index.collection, timeout=args.milvus_timeout * 10)
            loaded_s = time.perf_counter() - t1
            loaded = settle_rss(server)
            grow = (loaded - released) if loaded is not None and released is not None else 0
            file_per = files / n if files is not None else float("nan")
            segs, reported = segment_memory(server, index.collection)
            console.print(
                f"  milvus {kind.name}: inserted and indexed in {build_s:.1f} s, loaded in "
                f"{loaded_s:.1f} s; {segs} segments, {reported / n:.0f} B/t loaded as the "
                f"server reports it; server RSS before {_gb(rss_empty)}, released "
                f"{_gb(released)}, loaded {_gb(loaded)} GB; index files {file_per:.0f} B/t"
            )
            # Milvus 2.3 reports 0 for segments loaded with an index: then the index files
            sizes = ((reported or files or 0) / n, grow / n, file_per)
            yield from kind_rows(index, kind, g, truth, args, (build_s, grow), sizes)
        finally:
            index.consistency_level = "Strong"
            index._client.drop_collection(index.collection)
            index.close()
        gc.collect()


def kind_rows(
    index: MilvusIndex, kind: Kind, g: Gallery, truth: Any, args: argparse.Namespace,
    built: tuple[float, int], sizes: tuple[float, float, float],
) -> Iterator[Row]:  # fmt: skip
    """B/template: loaded size as Milvus reports it; RSS B/t: the server's RSS growth on
    loading the collection; the note: bytes of index files written."""
    reported, grown, file_per = sizes
    index.shortlist = kind.shortlist
    for j, params in enumerate(kind.search):
        index.search_params = dict(params)
        index.consistency_level = "Bounded"
        row = measure(
            f"milvus {kind.name} {_label(params)} sl{kind.shortlist}", index, g, truth, built,
            args, latency_queries=args.latency_queries, batch_queries=args.milvus_batch,
            note=f"Bounded; index files {file_per:.0f} B/t",
        )  # fmt: skip
        yield dataclasses.replace(row, bytes_per=reported, rss_per=grown)
        if j == len(kind.search) // 2 and args.strong_queries:
            index.consistency_level = "Strong"
            row = measure(
                f"milvus {kind.name} {_label(params)} sl{kind.shortlist} Strong", index, g,
                truth, built, args, latency_queries=args.strong_queries,
                batch_queries=args.milvus_batch,
                note=f"Strong (faceledger's default); tick {args.tick_ms} ms",
            )  # fmt: skip
            yield dataclasses.replace(row, bytes_per=reported, rss_per=grown)


def _gb(b: int | None) -> str:
    return "?" if b is None else f"{b / 1e9:.2f}"


def segment_memory(server: Server, collection: str) -> tuple[int, int]:
    """(loaded segments, their total ``mem_size``) as the query nodes report them."""
    import warnings

    from pymilvus import connections, utility

    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pymilvus")
    warnings.filterwarnings("ignore", message=".*ORM-style")
    connections.connect("bench", uri=server.uri)
    try:
        infos = utility.get_query_segment_info(collection, using="bench")
        return len(infos), sum(int(i.mem_size) for i in infos)
    finally:
        connections.disconnect("bench")


# -- one size -------------------------------------------------------------------------------------
def run_size(n: int, model: Any, server: Server | None, args: argparse.Namespace) -> Iterator[Row]:
    console.rule(f"[bold]{n:,} templates")
    t0 = time.perf_counter()
    g = make_gallery(model, n, args.queries, args.seed + n)
    console.print(
        f"  generated {n:,} templates of {g.who.max() + 1:,} identities and "
        f"{g.queries.shape[0]} probes in {time.perf_counter() - t0:.1f} s"
    )
    exact, built = timed_build(lambda: _filled(ExactIndex(128, "synthetic"), g))
    t0 = time.perf_counter()
    truth = exact.search(g.queries, K).ids
    console.print(f"  exact ground truth: {time.perf_counter() - t0:.1f} s")
    yield measure(
        "exact (numpy)", exact, g, truth, built, args,
        latency_queries=max(20, args.latency_queries // 10), note="reference; 1 BLAS thread",
    )  # fmt: skip
    del exact
    gc.collect()
    if "scann" in args.backends:
        yield from scann_rows(n, g, truth, args)
    if "fs" in args.backends:
        store = Store(g.vectors, args.cache_dir)
        yield from ivf_rows(n, g, truth, args, store)
        store.close()
    gc.collect()
    if server is not None:  # last: what it needs beside the in-process rows is not measured
        yield from milvus_rows(server, g, truth, args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1M", help="comma list, e.g. 200k,1M")
    ap.add_argument("--quick", action="store_true", help="20k templates, 200 probes")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--milvus-server", action="store_true",
        help="start the milvus wheel's standalone server (tests/milvus_server.py)",
    )  # fmt: skip
    where.add_argument("--milvus-uri", help="a running server or cluster, e.g. http://h:19530")
    ap.add_argument("--milvus-pid", type=int, help="with --milvus-uri: its process, for RSS")
    ap.add_argument(
        "--kinds", default="IVF_PQ,IVF_SQ8,HNSW", help="of HNSW,IVF_PQ,IVF_SQ8,IVF_FLAT"
    )
    ap.add_argument("--backends", default="scann,fs", help="in-process rows: scann,fs or none")
    ap.add_argument(
        "--queries",
        type=int,
        default=500,
        help="probes (half mated, half not); one Milvus batch with every shortlist's vectors",
    )
    ap.add_argument("--latency-queries", type=int, default=200, help="single-query timings")
    ap.add_argument("--strong-queries", type=int, default=20, help="Strong timings (0: none)")
    ap.add_argument("--milvus-batch", type=int, default=None, help="probes in the batch row")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-efc", type=int, default=64)
    ap.add_argument("--hnsw-ef", default="64,128,256")
    ap.add_argument("--nlist", type=int, default=1024, help="IVF cells (per segment)")
    ap.add_argument("--nprobe", default="32,64,128")
    ap.add_argument("--pq-m", type=int, default=32, help="IVF_PQ sub-quantizers (B/code)")
    ap.add_argument("--pq-shortlist", type=int, default=200)
    ap.add_argument("--tick-ms", type=int, default=200, help="proxy.timeTickInterval")
    ap.add_argument("--milvus-timeout", type=float, default=600.0)
    ap.add_argument("--fs-nprobe", default="", help="faiss fast-scan cells probed (list)")
    ap.add_argument("--scann-lts", default="", help="ScaNN leaves searched, shares (list)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fit-sets", default="orl,london,johns")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    ap.add_argument("--seed", type=int, default=20240)
    args = ap.parse_args(argv)
    args.kinds = args.kinds.split(",")
    args.backends = set(args.backends.split(","))
    args.hnsw_ef = [int(x) for x in args.hnsw_ef.split(",")]
    args.nprobe = [int(x) for x in args.nprobe.split(",")]
    args.fs_nprobe = [int(x) for x in args.fs_nprobe.split(",") if x]
    args.scann_lts = [float(x) for x in args.scann_lts.split(",") if x]
    if args.quick:
        args.sizes, args.queries, args.latency_queries = "20k", 200, 50
        args.nlist, args.nprobe = 128, [8, 16, 32]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; cache {args.cache_dir}"
    )
    start = time.perf_counter()
    model = fit_model(args, args.cache_dir)
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        server = start_server(args)
        t0 = time.perf_counter()
        rows = []
        try:
            for row in run_size(n, model, server, args):
                console.print(
                    f"  {row.name}: p50 {row.p50_ms:.3f} ms, p99 {row.p99_ms:.3f}, recall@10 "
                    f"{row.recall10:.3f}, {row.bytes_per:.0f} B/t, build {row.build_s:.1f} s"
                )
                rows.append(row)
        finally:
            if server.stop is not None:
                server.stop()
        report(n, rows)
        console.print(
            f"  {n:,}: {time.perf_counter() - t0:.0f} s, load average {os.getloadavg()[0]:.1f}"
        )
    console.print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
