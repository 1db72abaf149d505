"""Load on the service: N enrolling + M searching clients on loopback, for a while.

Prints throughput, p50/p99 latency per operation and the error count; then checks that the
store and the gallery's index agree. The reference, measured in the same run, is the engine
alone (no HTTP, one thread) on the same images: the service cannot beat it, because the model
runs one image at a time (see ``faceledger.api.concurrency``); the ratio shows what HTTP,
the store, the audit log and the queueing cost.

    python benchmarks/load_service.py                      # SQLite, 60 s, 8 + 8 clients
    python benchmarks/load_service.py --database postgres  # a throw-away PostgreSQL 15
    python benchmarks/load_service.py --seconds 20 --enrollers 4 --searchers 4

``run_load`` is also the driver of ``tests/api/test_concurrency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]


@dataclass
class LoadResult:
    seconds: float
    ops: dict[str, OpStats]
    enrolled_template_ids: list[int]
    search_ids: list[str]

    @property
    def errors(self) -> list[str]:
        return [e for s in self.ops.values() for e in s.errors]

    @property
    def completed(self) -> int:
        return sum(s.ok for s in self.ops.values())

    def lines(self) -> list[str]:
        out = [
            f"elapsed {self.seconds:.1f} s, {self.completed} requests ok, "
            f"{len(self.errors)} errors, throughput {self.completed / self.seconds:.2f} req/s"
        ]
        for name, s in sorted(self.ops.items()):
            out.append(
                f"  {name:7s} ok {s.ok:5d}  errors {len(s.errors):3d}  "
                f"p50 {s.percentile(50) * 1000:8.0f} ms  p99 {s.percentile(99) * 1000:8.0f} ms  "
                f"{s.ok / self.seconds:6.2f} req/s"
            )
        return out


async def _enroller(
    client: httpx.AsyncClient,
    gallery: str,
    headers: dict[str, str],
    images: Iterator[tuple[str, str, bytes]],
    deadline: float,
    stats: OpStats,
    enrolled: list[int],
) -> None:
    while time.monotonic() < deadline:
        try:
            subject, name, data = next(images)
        except StopIteration:
            return
        started = time.monotonic()
        try:
            r = await client.post(
                f"/api/v1/galleries/{gallery}/subjects/{subject}/images",
                files={"image": (name, data, "image/jpeg")},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            stats.errors.append(f"enrol {name}: {type(exc).__name__}: {exc}")
            continue
        stats.latencies.append(time.monotonic() - started)
        if r.status_code == 201:
            stats.ok += 1
            enrolled.append(int(r.json()["template_id"]))
        else:
            stats.errors.append(f"enrol {name}: {r.status_code} {r.text[:200]}")


async def _searcher(
    client: httpx.AsyncClient,
    gallery: str,
    headers: dict[str, str],
    probes: Iterator[bytes],
    deadline: float,
    stats: OpStats,
    searches: list[str],
    number: int,
) -> None:
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            r = await client.post(
                "/api/v1/search",
                files={"image": ("probe.jpg", next(probes), "image/jpeg")},
                data={
                    "galleries": [gallery],
                    "purpose": "load test",
                    "case_ref": f"LOAD-{number}",
                },
                headers=headers,
            )
        except httpx.HTTPError as exc:
            stats.errors.append(f"search: {type(exc).__name__}: {exc}")
            continue
        stats.latencies.append(time.monotonic() - started)
        if r.status_code == 200:
            stats.ok += 1
            searches.append(str(r.json()["search_id"]))
        else:
            stats.errors.append(f"search: {r.status_code} {r.text[:200]}")


async def run_load(
    base_url: str,
    *,
    gallery: str,
    enrol_headers: dict[str, str],
    search_headers: dict[str, str],
    enrol_images: Sequence[tuple[str, str, bytes]],
    probes: Sequence[bytes],
    enrollers: int = 8,
    searchers: int = 8,
    duration_s: float = 60.0,
    timeout_s: float = 300.0,
) -> LoadResult:
    """Run the clients until ``duration_s`` has passed (requests in flight then finish).

    ``enrol_images`` are (subject, file name, bytes), each enrolled once; enrollers stop
    early when they run out. Every non-2xx answer and every transport failure is an error.
    """
    images = iter(enrol_images)
    cycle = itertools.cycle(probes)
    enrol_stats, search_stats = OpStats(), OpStats()
    enrolled: list[int] = []
    searches: list[str] = []
    limits = httpx.Limits(max_connections=enrollers + searchers + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        started = time.monotonic()
        deadline = started + duration_s
        await asyncio.gather(
            *(
                _enroller(client, gallery, enrol_headers, images, deadline, enrol_stats, enrolled)
                for _ in range(enrollers)
            ),
            *(
                _searcher(
                    client, gallery, search_headers, cycle, deadline, search_stats, searches, i
                )
                for i in range(searchers)
            ),
        )
        elapsed = time.monotonic() - started
    return LoadResult(elapsed, {"enrol": enrol_stats, "search": search_stats}, enrolled, searches)


# ------------------------------------------------------------------------------ benchmark


def _london() -> tuple[list[tuple[str, str, bytes]], list[bytes]]:
    paths = sorted((DATA / "london" / "images").glob("*.jpg"))
    if not paths:
        sys.exit(f"no images under {DATA / 'london' / 'images'}")
    images = [(p.name.split("_")[0], p.name, p.read_bytes()) for p in paths]
    # the first 20 subjects are enrolled up front; searchers probe with their other image
    return images, [data for s, name, data in images if "smiling" in name and int(s) <= 20]


def _reference(images: Sequence[tuple[str, str, bytes]], n: int) -> float:
    """Images per second of the engine alone, one thread, no HTTP, no store."""
    from faceledger.config import Settings
    from faceledger.pipeline import Engine

    engine = Engine(Settings())
    engine.embed(images[0][2])
    started = time.monotonic()
    for _, _, data in images[:n]:
        engine.embed(data)
    return n / (time.monotonic() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--enrollers", type=int, default=8)
    ap.add_argument("--searchers", type=int, default=8)
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.api.live import GALLERY, deploy, serve
    from tests.postgres import PostgresCluster

    from faceledger.api.concurrency import SerialEngine
    from faceledger.config import Settings
    from faceledger.index import load_index

    images, probes = _london()
    reference = _reference(images, 20)
    print(f"reference: engine alone {reference:.2f} images/s (1 thread)")
    cluster = PostgresCluster() if args.database == "postgres" else None
    with tempfile.TemporaryDirectory(prefix="fl-load-") as tmp:
        if cluster is not None:
            cluster.start()
        try:
            url = cluster.create_database() if cluster is not None else None
            engine = SerialEngine(Settings())
            dep = deploy(Path(tmp) / "ws", engine, database_url=url)
            with serve(dep) as live:
                with live.client() as c:  # a first gallery content to search against
                    first = [i for i in images if "neutral" in i[1] and int(i[0]) <= 20]
                    for subject, name, data in first:
                        c.post(
                            f"/api/v1/galleries/{GALLERY}/subjects/{subject}/images",
                            files={"image": (name, data, "image/jpeg")},
                            headers=dep.headers("enroller"),
                        )
                rest = [i for i in images if i not in first]
                result = asyncio.run(
                    run_load(
                        live.url,
                        gallery=GALLERY,
                        enrol_headers=dep.headers("enroller"),
                        search_headers=dep.headers("searcher"),
                        enrol_images=rest,
                        probes=probes,
                        enrollers=args.enrollers,
                        searchers=args.searchers,
                        duration_s=args.seconds,
                    )
                )
                service = live.service
            print(
                f"service ({args.database}, {args.enrollers} enrolling + {args.searchers} "
                f"searching clients):"
            )
            for line in result.lines():
                print(line)
            rate = result.completed / result.seconds
            print(f"ratio service / engine alone: {rate / reference:.2f}")
            for err in result.errors[:5]:
                print("  error:", err)
            g = dep.ws.store.get_gallery_by_name(GALLERY)
            stored = set(dep.ws.store.template_ids(g.id).tolist())
            in_memory = set(service.ws.indexes.get(g, engine.card.dimension).ids().tolist())
            saved = dep.settings.data_dir / "indexes" / f"gallery-{g.id}.index"
            on_disk = set(load_index(saved).ids().tolist())
            agree = stored == in_memory == on_disk and set(result.enrolled_template_ids) <= stored
            print(
                f"store {len(stored)} templates, index {len(in_memory)} in memory / "
                f"{len(on_disk)} on disk: {'agree' if agree else 'DISAGREE'}"
            )
            dep.ws.close()
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
