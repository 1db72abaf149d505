"""API keys: both header forms, the bounded cache of verified keys, and revocation respected
within the cache's lifetime (at once when revoked through the service)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faceledger.access import AccessControl, Role
from faceledger.api import ServiceOptions
from faceledger.api.concurrency import SerialEngine
from faceledger.api.keys import KeyCache
from faceledger.audit import AuditLog
from faceledger.errors import AuthenticationFailed
from faceledger.store import open_database
from tests.api.live import deploy, serve

API = "/api/v1"


def test_given_a_key_in_either_header_then_the_same_user(
    tmp_path: Path, serial_engine: SerialEngine
) -> None:
    # argon2 with its default (deliberately slow) parameters
    dep = deploy(tmp_path / "ws", serial_engine, gallery=None, hasher=None, users=("reviewer",))
    try:
        with serve(dep) as live, live.client() as c:
            token = dep.tokens["reviewer"]
            a = c.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
            b = c.get(f"{API}/me", headers={"X-API-Key": token})
            assert a.status_code == b.status_code == 200
            assert a.json() == b.json()
            assert a.json()["id"] == "reviewer" and a.json()["roles"] == ["reviewer"]
            # the second request was served from the cache: one argon2 check, not two
            stats = live.service.keys.stats
            assert (stats.misses, stats.hits) == (1, 1)
            wrong = c.get(f"{API}/me", headers={"Authorization": f"Basic {token}"})
            assert wrong.status_code == 401
            assert c.get(f"{API}/me", headers={"X-API-Key": token + "x"}).status_code == 401
    finally:
        dep.ws.close()


def test_given_revoked_key_or_deactivated_user_then_refused_within_the_cache_lifetime(
    tmp_path: Path, serial_engine: SerialEngine
) -> None:
    dep = deploy(tmp_path / "ws", serial_engine, gallery=None)
    admin = dep.user("admin")
    try:
        with serve(dep, ServiceOptions(key_cache_ttl_s=0.5)) as live, live.client() as c:
            h = dep.headers("searcher")
            assert c.get(f"{API}/me", headers=h).status_code == 200
            # revoked behind the service's back (e.g. with the CLI): cached for at most 0.5 s
            (key,) = dep.ws.access.api_keys("searcher")
            dep.ws.access.revoke_api_key(key.key_id, by=admin)
            time.sleep(0.6)
            r = c.get(f"{API}/me", headers=h)
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated"

            # revoked through the service: refused on the very next request
            h2 = dep.headers("auditor")
            assert c.get(f"{API}/me", headers=h2).status_code == 200
            (key2,) = dep.ws.access.api_keys("auditor")
            r = c.delete(f"{API}/keys/{key2.key_id}", headers=dep.headers("admin"))
            assert r.status_code == 204
            assert c.get(f"{API}/me", headers=h2).status_code == 401

            # a deactivated user's key stops working too
            h3 = dep.headers("reviewer")
            assert c.get(f"{API}/me", headers=h3).status_code == 200
            r = c.post(f"{API}/users/reviewer/deactivate", headers=dep.headers("admin"))
            assert r.status_code == 200 and r.json()["active"] is False
            assert c.get(f"{API}/me", headers=h3).status_code == 401
            revokes = [e.record.actor for e in dep.ws.audit.entries(operation="key_revoke")]
            assert revokes == ["admin", "admin"]
    finally:
        dep.ws.close()


def test_key_cache_is_bounded_and_expires(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    audit = AuditLog(open_database(str(tmp_path / "a.db")))
    access = AccessControl(audit, hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    admin = access.create_user("admin", [Role.ADMIN], by=None)
    tokens = [access.issue_api_key("admin", by=admin).token for _ in range(3)]
    now = [100.0]
    cache = KeyCache(access, ttl_s=10.0, max_entries=2, clock=lambda: now[0])
    for t in tokens:
        assert cache.authenticate(t).id == "admin"
    assert len(cache) == 2 and cache.stats.evictions == 1
    cache.authenticate(tokens[2])
    assert cache.stats.hits == 1
    cache.authenticate(tokens[0])  # evicted earlier: verified again
    assert cache.stats.misses == 4
    now[0] += 11.0  # past the lifetime: verified again
    cache.authenticate(tokens[0])
    assert cache.stats.misses == 5
    with pytest.raises(AuthenticationFailed):
        cache.authenticate(None)
    with pytest.raises(AuthenticationFailed):
        cache.authenticate("flk_000000000000_x")
