"""Replicas under load: searches per second through 1 and through 2 `faceledger serve`
processes sharing one PostgreSQL server (issue #26).

A throw-away PostgreSQL 15 server; a gallery of the first 40 London people (neutral photos,
enrolled through the use case); M searching clients send the smiling photos for a while,
round-robin over the replicas. Both phases run in the same run on the same gallery and
clients (the reference is one replica). Each replica has its own data folder and index.

    .venv/bin/python benchmarks/replicas.py [--seconds 20] [--clients 8] [--replicas 1,2]

The model runs one image at a time in a process, so a second process can use a second core:
on a machine with as many cores as replicas the ratio shows what that buys, and what the
shared database and the audit chain's one head cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from tests.postgres import PostgresCluster  # noqa: E402
from tests.replicas import API, start_replicas, stop_replicas  # noqa: E402

from faceledger.access import Role  # noqa: E402
from faceledger.config import Settings  # noqa: E402
from faceledger.gallery import local_operator, open_workspace  # noqa: E402
from faceledger.usecases import (  # noqa: E402
    CreateGallery,
    EnrolImage,
    create_gallery,
    enrol_image,
)

PEOPLE = 40


def _people() -> list[str]:
    img = DATA / "london" / "images"
    stems = {p.stem for p in img.glob("*.jpg")}
    both = [s[:-8] for s in stems if s.endswith("_neutral") and f"{s[:-8]}_smiling" in stems]
    return sorted(both)[:PEOPLE]


def _setup(url: str, data: Path) -> str:
    """The gallery enrolled, a searcher's key."""
    img = DATA / "london" / "images"
    ws = open_workspace(Settings(data_dir=data / "setup", database_url=url))
    try:
        create_gallery(ws, local_operator(ws, "bench"), CreateGallery("mugs", "statute"))
        me = local_operator(ws, "bench")
        for pid in _people():
            enrol_image(ws, me, EnrolImage("mugs", pid, img / f"{pid}_neutral.jpg"))
        ws.access.create_user("searcher", [Role.SEARCHER], by=me)
        ws.access.grant("searcher", "mugs", "search", by=me)
        return ws.access.issue_api_key("searcher", by=me).token
    finally:
        ws.close()


async def _client(
    k: int, urls: list[str], probes: list[bytes], key: str, until: float, lat: list[float]
) -> int:
    errors = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=120) as c:
        i = k
        while time.monotonic() < until:
            t0 = time.perf_counter()
            r = await c.post(
                f"{urls[i % len(urls)]}{API}/search",
                files={"image": ("p.jpg", probes[i % len(probes)], "image/jpeg")},
                data={"galleries": "mugs", "purpose": "benchmark", "case_ref": "B-26"},
                headers=headers,
            )
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)
            else:
                errors += 1
            i += 1
    return errors


async def _load(urls: list[str], key: str, clients: int, seconds: float) -> dict[str, float]:
    img = DATA / "london" / "images"
    probes = [(img / f"{p}_smiling.jpg").read_bytes() for p in _people()]
    lat: list[float] = []
    start = time.monotonic()
    errors = await asyncio.gather(
        *(_client(k, urls, probes, key, start + seconds, lat) for k in range(clients))
    )
    wall = time.monotonic() - start
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {
        "searches": len(lat),
        "per_s": len(lat) / wall,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "errors": float(sum(errors)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--replicas", default="1,2")
    args = ap.parse_args()
    counts = [int(x) for x in args.replicas.split(",")]
    with PostgresCluster() as pg, tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        url = pg.create_database()
        key = _setup(url, Path(tmp))
        rows = {}
        for n in counts:
            running = start_replicas(url, Path(tmp) / f"run{n}", n)
            try:
                asyncio.run(_load([r.url for r in running], key, args.clients, 3.0))  # warm
                rows[n] = asyncio.run(
                    _load([r.url for r in running], key, args.clients, args.seconds)
                )
            finally:
                stop_replicas(running)
    base = rows[counts[0]]["per_s"]
    print(f"{args.clients} clients, {args.seconds:g} s, gallery of {PEOPLE} (PostgreSQL 15)")
    print("| replicas | searches | searches/s | ratio | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for n, r in rows.items():
        print(
            f"| {n} | {r['searches']:.0f} | {r['per_s']:.2f} | {r['per_s'] / base:.2f}x "
            f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']:.0f} |"
        )


if __name__ == "__main__":
    main()
