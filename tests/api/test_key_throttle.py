"""Bad API keys are throttled (issue #19 item 9): malformed tokens cost no argon2, argon2 runs
on a bounded pool of its own, and a client address or key id that fails too often is answered
429 with Retry-After, while other clients, and keys that verified before, keep working; under
a burst of bad keys the health check and valid requests still answer."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from argon2 import PasswordHasher

from faceledger.access import AccessControl, Role, User
from faceledger.access.control import split_token
from faceledger.api import ServiceOptions
from faceledger.api.concurrency import SerialEngine
from faceledger.api.keys import KeyCache, VerifierPool
from faceledger.api.limits import AuthLimits, FailureLimiter
from faceledger.audit import AuditLog
from faceledger.errors import AuthenticationFailed, PermissionDenied, RateLimited
from faceledger.store import open_database
from tests.api.live import Deployment, deploy, serve

API = "/api/v1"


class CountingHasher(PasswordHasher):
    """argon2 as configured, counting verifications and the most running at once."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.peak = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


def cheap_counting() -> CountingHasher:
    return CountingHasher(time_cost=1, memory_cost=8192, parallelism=1)


def random_key() -> str:
    """A token of the right form whose key id and secret are made up."""
    return f"flk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def from_(address: str, token: str | None = None) -> dict[str, str]:
    """Headers of a request from ``address`` (uvicorn trusts X-Forwarded-For from loopback)."""
    headers = {"X-Forwarded-For": address}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


MALFORMED = (
    "nope",
    "flk_",
    "Bearer flk_0123456789ab_" + "a" * 43,
    "flk_0123456789ab_nope",
    "flk_0123456789AB_" + "a" * 43,  # key ids are lower-case hex
    "flk_0123456789a_" + "a" * 44,
    "flk_0123456789ab_" + "a" * 42,
    "flk_0123456789ab_" + "a" * 44,
    "flk_0123456789ab_" + "a" * 42 + "+",
    "flk_0123456789ab_" + "a" * 42 + "\n",
    "x" * 10_000,
)


# -- the pre-check ---------------------------------------------------------------------------


def test_only_tokens_of_the_form_of_a_key_pass_the_pre_check() -> None:
    token = random_key()
    assert split_token(token) == (token[4:16], token[17:])
    assert split_token("flk_0123456789ab_" + "-_" * 21 + "Z") is not None
    for bad in (*MALFORMED, None, 42):
        assert split_token(bad) is None, bad


def test_given_malformed_tokens_then_no_argon2_and_unknown_key_ids_cost_one_dummy(
    tmp_path: Path,
) -> None:
    hasher = cheap_counting()
    access = AccessControl(AuditLog(open_database(str(tmp_path / "a.db"))), hasher=hasher)
    admin = access.create_user("admin", [Role.ADMIN], by=None)
    key = access.issue_api_key("admin", by=admin)
    for bad in MALFORMED:
        with pytest.raises(PermissionDenied):
            access.authenticate(bad)
    assert hasher.calls == 0
    with pytest.raises(PermissionDenied):
        access.authenticate(random_key())  # unknown key id: a dummy check, timed like a real one
    assert hasher.calls == 1
    assert access.authenticate(key.token).id == "admin"
    assert hasher.calls == 2


# -- the failure limiter ---------------------------------------------------------------------


def test_failure_limiter_locks_out_after_the_limit_within_the_window() -> None:
    now = [1000.0]
    lim = FailureLimiter(3, 60.0, 30.0, max_entries=2, clock=lambda: now[0])
    lim.failed("a")
    lim.failed("a")
    assert lim.retry_after("a") == 0.0
    lim.failed("a")
    assert lim.retry_after("a") == 30.0
    assert lim.retry_after("b") == 0.0 and lim.retry_after(None) == 0.0
    now[0] += 29.0
    assert lim.retry_after("a") == pytest.approx(1.0)
    now[0] += 1.5
    assert lim.retry_after("a") == 0.0
    # failures spread wider than the window never add up to a lockout
    for _ in range(5):
        lim.failed("b")
        lim.failed("b")
        now[0] += 61.0
        assert lim.retry_after("b") == 0.0
    # bounded: the least recently failed name is forgotten first
    lim.failed("c")
    lim.failed("d")
    assert len(lim) == 2
    # a failure counted in advance is taken back when the attempt succeeds
    lim.failed("e")
    lim.failed("e")
    lim.forgive("e")
    lim.forgive("e")
    lim.forgive("e")  # never below zero
    lim.failed("e")
    lim.failed("e")
    assert lim.retry_after("e") == 0.0
    lim.failed("e")
    assert lim.retry_after("e") == 30.0
    # 0 failures allowed means no limit at all
    off = FailureLimiter(0, 60.0, 30.0)
    for _ in range(100):
        off.failed("a")
    assert off.retry_after("a") == 0.0 and len(off) == 0


def test_verifier_pool_refuses_past_its_queue_and_serves_trusted_keys_first() -> None:
    gate = threading.Event()
    pool = VerifierPool(workers=1, queue=1, reserve=1)
    order: list[str] = []

    def job(name: str) -> User:
        gate.wait(10)
        order.append(name)
        return User(name, frozenset())

    try:
        running = [pool.submit(partial(job, "first"))]
        deadline = time.monotonic() + 5
        while not running[0].running() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the one worker has taken it
        running.append(pool.submit(partial(job, "untrusted")))
        with pytest.raises(RateLimited) as refused:
            pool.submit(partial(job, "refused"))
        assert refused.value.retry_after_s > 0
        running.append(pool.submit(partial(job, "trusted"), trusted=True))
        with pytest.raises(RateLimited):
            pool.submit(partial(job, "refused"), trusted=True)
        assert pool.pending == 3
        gate.set()
        assert [f.result(10).id for f in running] == ["first", "untrusted", "trusted"]
        assert order == ["first", "trusted", "untrusted"]
        deadline = time.monotonic() + 5
        while pool.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.pending == 0
        assert pool.submit(partial(job, "later")).result(10).id == "later"
    finally:
        gate.set()
        pool.close()


class BlockingAccess:
    """Stands in for AccessControl: every check waits for ``gate``; ``valid`` tokens pass."""

    def __init__(self, *valid: str) -> None:
        self.gate = threading.Event()
        self.valid = set(valid)
        self.calls = 0
        self.lock = threading.Lock()

    def authenticate(self, token: str) -> User:
        with self.lock:
            self.calls += 1
        self.gate.wait(10)
        if token in self.valid:
            return User("alice", frozenset({Role.SEARCHER}))
        raise PermissionDenied("invalid credentials")


def _cache(access: BlockingAccess, limits: AuthLimits, **kw: Any) -> KeyCache:
    return KeyCache(cast(AccessControl, access), limits=limits, **kw)


def test_given_the_same_token_at_once_then_one_verification_and_a_full_pool_refuses() -> None:
    good = random_key()
    access = BlockingAccess(good)
    cache = _cache(access, AuthLimits(workers=1, queue=1))
    try:
        with ThreadPoolExecutor(8) as threads:
            same = [threads.submit(cache.authenticate, good, f"10.0.0.{i}") for i in range(6)]
            deadline = time.monotonic() + 5
            while cache.stats.shared < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            other = threads.submit(cache.authenticate, random_key(), "10.0.1.1")
            while cache.pending < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            # one running, one waiting: a third token is refused at once
            with pytest.raises(RateLimited):
                cache.authenticate(random_key(), "10.0.1.2")
            access.gate.set()
            assert {f.result(10).id for f in same} == {"alice"}
            with pytest.raises(AuthenticationFailed):
                other.result(10)
        assert access.calls == 2
        assert (cache.stats.shared, cache.stats.busy, cache.stats.verifications) == (5, 1, 2)
    finally:
        access.gate.set()
        cache.close()


def test_concurrent_bad_keys_from_one_client_cannot_slip_past_the_limit() -> None:
    access = BlockingAccess()
    cache = _cache(access, AuthLimits(max_failures=3, workers=1, queue=20))
    try:
        with ThreadPoolExecutor(8) as threads:
            tries = [threads.submit(cache.authenticate, random_key(), "mallory") for _ in range(8)]
            deadline = time.monotonic() + 5
            while cache.stats.throttled < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            access.gate.set()
            outcomes = [type(f.exception(10)).__name__ for f in tries]
        assert sorted(outcomes) == ["AuthenticationFailed"] * 3 + ["RateLimited"] * 5
        assert access.calls == 3
    finally:
        access.gate.set()
        cache.close()


def test_a_locked_out_client_is_refused_without_checks_but_keys_verified_before_pass() -> None:
    good, fresh = random_key(), random_key()
    access = BlockingAccess(good, fresh)
    access.gate.set()
    now = [0.0]
    limits = AuthLimits(max_failures=3, window_s=60.0, lockout_s=30.0, refusal_delay_s=0.2)
    cache = _cache(access, limits, ttl_s=1.0, clock=lambda: now[0])
    try:
        assert cache.authenticate(good, "mallory").id == "alice"
        for _ in range(5):  # malformed: refused, not counted (they cost nothing)
            with pytest.raises(AuthenticationFailed):
                cache.authenticate("not-a-key", "mallory")
        for _ in range(3):
            with pytest.raises(AuthenticationFailed):
                cache.authenticate(random_key(), "mallory")
        calls = access.calls
        assert calls == 4 and cache.stats.malformed == 5
        with pytest.raises(RateLimited) as refused:
            cache.authenticate(random_key(), "mallory")
        assert refused.value.retry_after_s == 30.0 and access.calls == calls
        with pytest.raises(RateLimited):
            cache.authenticate(fresh, "mallory")  # never verified: refused like any other
        with pytest.raises(AuthenticationFailed):
            cache.authenticate("not-a-key", "mallory")  # still a plain 401
        now[0] += 2.0  # past the cache's lifetime: verified again, exempt from the lockout
        assert cache.authenticate(good, "mallory").id == "alice"
        assert access.calls == calls + 1
        assert cache.authenticate(fresh, "bob").id == "alice"  # other clients are not affected
        # on the event loop a refusal waits refusal_delay_s before it is answered
        started = time.monotonic()
        with pytest.raises(RateLimited):
            asyncio.run(cache.authenticate_async(random_key(), "mallory"))
        assert time.monotonic() - started >= limits.refusal_delay_s * 0.9
        now[0] += 30.0
        assert cache.authenticate(fresh, "mallory").id == "alice"  # the lockout is over
    finally:
        cache.close()


# -- the service on loopback -----------------------------------------------------------------


@pytest.fixture
def counted(tmp_path: Path, serial_engine: SerialEngine) -> Iterator[tuple[Deployment, Any]]:
    hasher = cheap_counting()
    dep = deploy(tmp_path / "ws", serial_engine, gallery=None, hasher=hasher)
    yield dep, hasher
    dep.ws.close()


def test_given_malformed_keys_then_401_at_once_without_argon2(
    counted: tuple[Deployment, CountingHasher],
) -> None:
    dep, hasher = counted
    with serve(dep) as live, live.client() as c:
        before = hasher.calls
        for i, bad in enumerate(MALFORMED[:8]):
            r = c.get(f"{API}/me", headers={"X-API-Key": bad, "X-Forwarded-For": f"10.9.0.{i}"})
            assert r.status_code == 401, (bad, r.text)
            assert r.json()["code"] == "unauthenticated"
        assert hasher.calls == before
        assert live.service.keys.stats.malformed == 8
        assert c.get(f"{API}/me", headers=dep.headers("searcher")).status_code == 200
        assert hasher.calls == before + 1


def test_given_repeated_bad_keys_from_one_client_then_429_while_others_keep_working(
    counted: tuple[Deployment, CountingHasher],
) -> None:
    dep, hasher = counted
    limits = AuthLimits(max_failures=3, window_s=60.0, lockout_s=30.0, refusal_delay_s=0.1)
    options = ServiceOptions(key_cache_ttl_s=0.2, auth_limits=limits)
    mallory = "203.0.113.7"
    with serve(dep, options) as live, live.client() as c:
        me = f"{API}/me"
        assert c.get(me, headers=from_(mallory, dep.tokens["searcher"])).status_code == 200
        for _ in range(3):
            r = c.get(me, headers=from_(mallory, random_key()))
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        calls = hasher.calls
        for _ in range(5):
            r = c.get(me, headers=from_(mallory, random_key()))
            assert r.elapsed.total_seconds() >= 0.09  # refusals are answered after a delay
            assert r.status_code == 429, r.text
            assert r.json()["code"] == "rate_limited"
            assert 1 <= int(r.headers["retry-after"]) <= 30
            assert r.json()["retry_after"] == int(r.headers["retry-after"])
        assert hasher.calls == calls  # refused without any argon2
        # another client is not affected, not even one never seen before
        assert c.get(me, headers=from_("198.51.100.2", dep.tokens["reviewer"])).status_code == 200
        # a key verified before still works from the locked address, past the cache's lifetime
        time.sleep(0.3)
        r = c.get(me, headers=from_(mallory, dep.tokens["searcher"]))
        assert r.status_code == 200 and r.json()["id"] == "searcher"
        # a key never verified is refused there like any other, until the lockout ends
        assert c.get(me, headers=from_(mallory, dep.tokens["auditor"])).status_code == 429

        # guessing one key's secret from many addresses locks that key id
        (key,) = dep.ws.access.api_keys("enroller")
        assert c.get(me, headers=from_("192.0.2.1", dep.tokens["enroller"])).status_code == 200
        for i in range(3):
            guess = f"flk_{key.key_id}_{secrets.token_urlsafe(32)}"
            assert c.get(me, headers=from_(f"192.0.2.{10 + i}", guess)).status_code == 401
        guess = f"flk_{key.key_id}_{secrets.token_urlsafe(32)}"
        assert c.get(me, headers=from_("192.0.2.99", guess)).status_code == 429
        time.sleep(0.3)  # the owner, whose key verified before, is not locked out with it
        assert c.get(me, headers=from_("192.0.2.1", dep.tokens["enroller"])).status_code == 200
        assert c.get(f"{API}/health", headers=from_(mallory)).status_code == 200


BURST_CLIENTS = 16
BURST_S = 4.0


async def _attacker(c: httpx.AsyncClient, n: int, until: float, statuses: list[int]) -> None:
    while time.monotonic() < until:
        r = await c.get(f"{API}/me", headers=from_(f"10.77.0.{n}", random_key()))
        statuses.append(r.status_code)


async def _timed(c: httpx.AsyncClient, path: str, headers: dict[str, str], until: float) -> Any:
    out: list[tuple[int, float]] = []
    while time.monotonic() < until:
        started = time.monotonic()
        r = await c.get(path, headers=headers)
        out.append((r.status_code, time.monotonic() - started))
        await asyncio.sleep(0.1)
    return out


async def _burst(url: str, valid: dict[str, str]) -> tuple[list[int], Any, Any]:
    limits = httpx.Limits(max_connections=BURST_CLIENTS + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as c:
        assert (await c.get(f"{API}/me", headers=valid)).status_code == 200
        until = time.monotonic() + BURST_S
        statuses: list[int] = []
        attackers = [_attacker(c, n, until, statuses) for n in range(BURST_CLIENTS)]
        _, health, mine = await asyncio.gather(
            asyncio.gather(*attackers),
            _timed(c, f"{API}/health", {}, until),
            _timed(c, f"{API}/me", valid, until),
        )
    return statuses, health, mine


def test_given_a_burst_of_bad_key_clients_then_health_and_valid_keys_still_answer(
    tmp_path: Path, serial_engine: SerialEngine
) -> None:
    # argon2 with its default (deliberately slow) parameters, as a deployment has it; each
    # attacker has an address of its own, so only the pool bounds the work
    hasher = CountingHasher()
    dep = deploy(tmp_path / "ws", serial_engine, gallery=None, hasher=hasher, users=("searcher",))
    limits = AuthLimits(workers=2, queue=4)
    try:
        # the valid key leaves the cache every 0.5 s: verified again, ahead of the bad keys
        with serve(dep, ServiceOptions(key_cache_ttl_s=0.5, auth_limits=limits)) as live:
            statuses, health, mine = asyncio.run(_burst(live.url, dep.headers("searcher")))
            stats = live.service.keys.stats
    finally:
        dep.ws.close()
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) > 0 and stats.busy > 0
    assert hasher.peak <= limits.workers  # argon2 never ran more than the pool allows
    assert stats.verifications <= hasher.calls
    # every /health and every valid-key request during the burst was answered, none refused;
    # how fast is measured by benchmarks/load_service.py --bad-keys, not asserted here
    for name, timings in (("health", health), ("me", mine)):
        assert timings and all(status == 200 for status, _ in timings), (name, timings)
