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

With ``--bad-keys N`` it measures instead what clients sending random API keys cost the
others (issue #19 item 9): searchers on a gallery of the bundled sample and a /health probe,
first alone (the baseline), then beside N clients sending random well-formed keys as fast as
they are answered, all from one address, then each from an address of its own (the worst
case for per-client limits), then with the authentication limits switched off. The bad-key
clients run in a process of their own, as outside clients would; argon2 keeps its default
(deliberately slow) parameters. Each phase prints searches per second, search and /health
latency, what the bad-key clients got, and the ratios to the baseline.

    python benchmarks/load_service.py --bad-keys 16 --seconds 20 --searchers 4

With ``--scaling`` (issue #20) it measures one search's cost and how latency grows with
clients: a gallery of the ten bundled sample people, probed with their 600 px London photos
(``../shared/data/london``). In the same run it prints the engine's own cost of one probe
(detect + align + embed, no store: CPU and wall), the use case alone (``usecases.search``: the
engine plus ranking, review record and audit entry, no HTTP), a profile of that use case by
stage, and then the service over HTTP with 1, 8 and 16 searching clients: searches/s,
p50/p99 latency and CPU seconds per search of the whole process (server and clients).

    python benchmarks/load_service.py --scaling --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ap.add_argument("--seconds", type=float, default=None, help="60; 20 a phase with --bad-keys")
    ap.add_argument("--enrollers", type=int, default=8)
    ap.add_argument("--searchers", type=int, default=None, help="8; 4 with --bad-keys")
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--bad-keys", type=int, default=0, help="clients sending random API keys")
    ap.add_argument("--scaling", action="store_true", help="one search's cost; 1/8/16 clients")
    ap.add_argument(
        "--auth-workers", type=int, default=None, help="argon2 threads (default: one per two cores)"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.scaling:
        main_scaling(args.seconds or 15.0)
    elif args.bad_keys > 0:
        main_bad_keys(args.bad_keys, args.seconds or 20.0, args.searchers or 4, args.auth_workers)
    else:
        args.seconds = args.seconds or 60.0
        args.searchers = args.searchers or 8
        main_load(args)


def main_load(args: argparse.Namespace) -> None:
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


# ------------------------------------------------------------------ bad keys (issue #19 item 9)

SAMPLE = REPO / "src" / "faceledger" / "sample"
HEALTH_EVERY_S = 0.25


def random_key() -> str:
    """A token of the form of an API key, with a made-up key id and secret."""
    return f"flk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


async def _bad_key_client(
    client: httpx.AsyncClient, number: int, spread: bool, deadline: float, got: Counter[str]
) -> None:
    """Random keys, one after the other, as fast as they are answered (Retry-After ignored)."""
    headers = {"X-Forwarded-For": f"10.66.{number // 250}.{number % 250 + 1}"} if spread else {}
    while time.time() < deadline:
        try:
            r = await client.get(
                "/api/v1/me", headers={**headers, "Authorization": f"Bearer {random_key()}"}
            )
            got[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            got[type(exc).__name__] += 1


async def _bad_keys(url: str, clients: int, spread: bool, start: float, seconds: float) -> Any:
    got: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        await asyncio.sleep(max(0.0, start - time.time()))
        deadline = start + seconds
        await asyncio.gather(
            *(_bad_key_client(client, i, spread, deadline, got) for i in range(clients))
        )
    return dict(got)


def _bad_key_process(
    url: str, clients: int, spread: bool, start: float, seconds: float, out: Any
) -> None:
    """The bad-key clients, in a process of their own (outside the server's GIL)."""
    out.put(asyncio.run(_bad_keys(url, clients, spread, start, seconds)))


async def _health_probe(client: httpx.AsyncClient, deadline: float, stats: OpStats) -> None:
    while time.time() < deadline:
        started = time.monotonic()
        try:
            r = await client.get("/api/v1/health")
        except httpx.HTTPError as exc:
            stats.errors.append(f"health: {type(exc).__name__}: {exc}")
            continue
        stats.latencies.append(time.monotonic() - started)
        if r.status_code == 200:
            stats.ok += 1
        else:
            stats.errors.append(f"health: {r.status_code} {r.text[:200]}")
        await asyncio.sleep(max(0.0, HEALTH_EVERY_S - (time.monotonic() - started)))


async def _searches_and_health(
    url: str, gallery: str, headers: dict[str, str], probes: Sequence[bytes], searchers: int,
    start: float, seconds: float,
) -> tuple[OpStats, OpStats]:  # fmt: skip
    search, health = OpStats(), OpStats()
    cycle = itertools.cycle(probes)
    limits = httpx.Limits(max_connections=searchers + 2)
    async with httpx.AsyncClient(base_url=url, timeout=300.0, limits=limits) as client:
        await asyncio.sleep(max(0.0, start - time.time()))
        deadline = start + seconds
        done: list[str] = []
        mono_deadline = time.monotonic() + seconds
        await asyncio.gather(
            _health_probe(client, deadline, health),
            *(
                _searcher(client, gallery, headers, cycle, mono_deadline, search, done, i)
                for i in range(searchers)
            ),
        )
    return search, health


@dataclass
class Phase:
    name: str
    seconds: float
    search: OpStats
    health: OpStats
    bad_keys: dict[str, int]
    verifications: int

    def row(self, baseline: Phase | None) -> str:
        rate = self.search.ok / self.seconds
        h50 = self.health.percentile(50) * 1000
        line = (
            f"{self.name:34s} {self.search.ok:5d} {rate:6.2f} "
            f"{self.search.percentile(50) * 1000:7.0f} {self.search.percentile(99) * 1000:7.0f} "
            f"| {h50:6.0f} {self.health.percentile(99) * 1000:6.0f} "
            f"{max(self.health.latencies, default=float('nan')) * 1000:6.0f} "
            f"| {sum(self.bad_keys.values()):6d} {self.bad_keys.get('401', 0):5d} "
            f"{self.bad_keys.get('429', 0):6d} {self.verifications:6d}"
        )
        if baseline is not None and baseline.search.ok:
            base_rate = baseline.search.ok / baseline.seconds
            line += (
                f" | x{rate / base_rate:4.2f} x{h50 / (baseline.health.percentile(50) * 1000):5.1f}"
            )
        return line


HEADER = (
    f"{'phase':34s} {'srch':>5s} {'srch/s':>6s} {'p50 ms':>7s} {'p99 ms':>7s} "
    f"| {'health p50':>6s} {'p99':>6s} {'max':>6s} "
    f"| {'badkey':>6s} {'401':>5s} {'429':>6s} {'argon2':>6s} "
    f"| searches/s, health p50 vs baseline"
)


def _run_phase(
    dep: Any, options: Any, name: str, probes: Sequence[bytes], searchers: int,
    bad_keys: int, spread: bool, seconds: float,
) -> Phase:  # fmt: skip
    from tests.api.live import GALLERY, serve

    dep.settings = dep.ws.settings  # as the first service left them, so it can be served again
    with serve(dep, options) as live:
        with live.client() as c:  # the searcher's key verified once, as in steady use
            assert c.get("/api/v1/me", headers=dep.headers("searcher")).status_code == 200
        start = time.time() + (3.0 if bad_keys else 0.2)
        process = None
        results: Any = None
        if bad_keys:
            results = multiprocessing.get_context("spawn").Queue()
            process = multiprocessing.get_context("spawn").Process(
                target=_bad_key_process, args=(live.url, bad_keys, spread, start, seconds, results)
            )
            process.start()
        search, health = asyncio.run(
            _searches_and_health(
                live.url, GALLERY, dep.headers("searcher"), probes, searchers, start, seconds
            )
        )
        got = results.get(timeout=300) if results is not None else {}
        if process is not None:
            process.join(60)
        verifications = live.service.keys.stats.verifications
    return Phase(name, seconds, search, health, got, verifications)


def _enrol_sample(
    client: httpx.Client, headers: dict[str, str], gallery: str, images: Sequence[Path]
) -> None:
    """Enrol each sample image as the subject named by its first three characters."""
    for p in images:
        r = client.post(
            f"/api/v1/galleries/{gallery}/subjects/{p.name[:3]}/images",
            files={"image": (p.name, p.read_bytes(), "image/jpeg")},
            headers=headers,
        )
        assert r.status_code == 201, r.text


def main_bad_keys(bad_keys: int, seconds: float, searchers: int, workers: int | None) -> None:
    from tests.api.live import GALLERY, deploy, serve

    from faceledger.api import ServiceOptions
    from faceledger.api.concurrency import SerialEngine
    from faceledger.api.limits import AuthLimits
    from faceledger.config import Settings

    neutral = sorted(SAMPLE.glob("*_neutral.jpg"))
    probes = [p.with_name(p.name.replace("neutral", "smiling")).read_bytes() for p in neutral]
    print(
        f"{searchers} searching clients on a gallery of {len(neutral)} sample subjects, "
        f"/health every {HEALTH_EVERY_S} s, {seconds:.0f} s a phase; {bad_keys} bad-key clients"
    )
    print(
        f"authentication limits: {AuthLimits() if workers is None else AuthLimits(workers=workers)}"
    )
    with tempfile.TemporaryDirectory(prefix="fl-badkeys-") as tmp:
        engine = SerialEngine(Settings())
        dep = deploy(Path(tmp) / "ws", engine, hasher=None, users=("admin", "enroller", "searcher"))
        try:
            with serve(dep) as live, live.client() as c:
                _enrol_sample(c, dep.headers("enroller"), GALLERY, neutral)
            limits = AuthLimits() if workers is None else AuthLimits(workers=workers)
            protected = ServiceOptions(auth_limits=limits)
            off = ServiceOptions(auth_limits=AuthLimits(max_failures=0, workers=64, queue=10_000))
            plan = [
                ("no bad keys (baseline)", protected, 0, False),
                (f"{bad_keys} bad-key clients, one address", protected, bad_keys, False),
                (f"{bad_keys} bad-key clients, own addresses", protected, bad_keys, True),
                (f"{bad_keys} own addresses, limits off", off, bad_keys, True),
            ]
            print(HEADER)
            baseline: Phase | None = None
            for name, options, n, spread in plan:
                phase = _run_phase(dep, options, name, probes, searchers, n, spread, seconds)
                print(phase.row(baseline), flush=True)
                for err in (phase.search.errors + phase.health.errors)[:3]:
                    print("  error:", err)
                baseline = baseline or phase
        finally:
            dep.ws.close()


# ------------------------------------------------------------------ one search's cost (#20)


def _cpu_and_wall(fn: Any, n: int) -> tuple[float, float]:
    """Milliseconds of process CPU and of wall time per call of ``fn``, over ``n`` calls."""
    fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return (time.process_time() - cpu) / n * 1e3, (time.perf_counter() - wall) / n * 1e3


def _stage_profile(fn: Any, n: int) -> list[tuple[str, float]]:
    """Cumulative ms per call of the stages of one search (cProfile, so a little slower)."""
    import cProfile
    import pstats

    stages = {
        "detect (dlib HOG)": "detect/base.py:detect",
        "landmarks + align + embed": "pipeline.py:embed_detected",
        "rank the gallery": "gallery/ranking.py:rank",
        "review record": "review/book.py:record_search",
        "audit entry": "audit/log.py:append",
    }
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out = []
    for label, where in stages.items():
        file, func = where.split(":")
        ms = sum(v[3] for (f, _, name), v in stats.items() if f.endswith(file) and name == func)
        out.append((label, ms / n * 1e3))
    return out


def main_scaling(seconds: float) -> None:
    import resource

    from tests.api.live import GALLERY, deploy, serve

    from faceledger import usecases as uc
    from faceledger.access import User
    from faceledger.api.concurrency import SerialEngine
    from faceledger.config import Settings

    neutral = sorted(SAMPLE.glob("*_neutral.jpg"))
    probes = [(DATA / "london/images" / p.name.replace("neutral", "smiling")) for p in neutral]
    if not all(p.is_file() for p in probes):
        sys.exit(f"the 600 px probes come from {DATA / 'london/images'}: not found")
    data = [p.read_bytes() for p in probes]
    engine = SerialEngine(Settings())
    engine.warm_up()
    runtime = engine.runtime
    print(f"{len(neutral)} sample subjects enrolled; probes: 600 px London photos")
    print(f"model runtime: {runtime.runtime if runtime else '?'}")
    cpu, wall = _cpu_and_wall(lambda: engine.embed(data[0]), 20)
    print(f"engine alone, one probe (detect + align + embed): {cpu:.0f} ms CPU, {wall:.0f} ms wall")
    with tempfile.TemporaryDirectory(prefix="fl-scaling-") as tmp:
        dep = deploy(Path(tmp) / "ws", engine, users=("admin", "enroller", "searcher"))
        try:
            with serve(dep) as live, live.client() as c:
                _enrol_sample(c, dep.headers("enroller"), GALLERY, neutral)
                searcher: User = live.service.ws.access.get_user("searcher")
                req = uc.SearchRequest(data[0], (GALLERY,), "benchmark", "BENCH-1")
                search = live.service.ws

                def one() -> None:
                    uc.search(search, searcher, req)

                cpu, wall = _cpu_and_wall(one, 20)
                print(
                    f"use case alone (usecases.search, no HTTP): {cpu:.0f} ms CPU, "
                    f"{wall:.0f} ms wall"
                )
                for label, ms in _stage_profile(one, 10):
                    print(f"  {label}: {ms:.1f} ms")
                print("| clients | searches/s | p50 ms | p99 ms | CPU ms per search | errors |")
                print("|---|---|---|---|---|---|")
                for clients in (1, 8, 16):
                    before = resource.getrusage(resource.RUSAGE_SELF)
                    result = asyncio.run(
                        run_load(
                            live.url,
                            gallery=GALLERY,
                            enrol_headers=dep.headers("enroller"),
                            search_headers=dep.headers("searcher"),
                            enrol_images=[],
                            probes=data,
                            enrollers=0,
                            searchers=clients,
                            duration_s=seconds,
                        )
                    )
                    after = resource.getrusage(resource.RUSAGE_SELF)
                    st = result.ops["search"]
                    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                    print(
                        f"| {clients} | {st.ok / result.seconds:.1f} "
                        f"| {st.percentile(50) * 1e3:.0f} | {st.percentile(99) * 1e3:.0f} "
                        f"| {used / max(1, st.ok) * 1e3:.0f} | {len(st.errors)} |",
                        flush=True,
                    )
        finally:
            dep.ws.close()


if __name__ == "__main__":
    main()
