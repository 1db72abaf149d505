"""Deployment secrets in the store: one per name, the same for every process on the database,
created once even when processes race for it, never readable from the audit log."""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from faceledger.errors import InvalidArgument, StoreError
from faceledger.store import open_database
from faceledger.store.schema import create_schema, store_meta
from faceledger.store.secrets import KEY_BYTES, deployment_secret, keyed_hash


def test_a_secret_is_created_once_and_shared(db_engine: sa.Engine) -> None:
    create_schema(db_engine)
    url = db_engine.url.render_as_string(hide_password=False)
    others = [open_database(url) for _ in range(4)]  # other processes' connection pools
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda e: deployment_secret(e, "document_number"), others))
        assert len(set(got)) == 1 and len(got[0]) == KEY_BYTES
        assert deployment_secret(db_engine, "document_number") == got[0]
        assert deployment_secret(db_engine, "other") != got[0]
        with db_engine.connect() as conn:
            rows = conn.execute(sa.select(store_meta.c.key)).scalars().all()
        assert sorted(k for k in rows if k.startswith("secret:")) == [
            "secret:document_number",
            "secret:other",
        ]
    finally:
        for e in others:
            e.dispose()


def test_keyed_hash_is_hmac_under_the_stored_secret(db_engine: sa.Engine) -> None:
    create_schema(db_engine)
    digest = keyed_hash(db_engine, "document_number", "UTO:L898902C3")
    key = deployment_secret(db_engine, "document_number")
    assert digest == hmac.new(key, b"UTO:L898902C3", "sha256").hexdigest()
    assert keyed_hash(db_engine, "document_number", "UTO:L898902C4") != digest


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_bad_names_and_damaged_secrets_are_refused(db_engine: sa.Engine) -> None:
    create_schema(db_engine)
    with pytest.raises(InvalidArgument):
        deployment_secret(db_engine, "no spaces")
    with db_engine.begin() as conn:
        conn.execute(store_meta.insert().values(key="secret:short", value="abcd"))
        conn.execute(store_meta.insert().values(key="secret:nothex", value="zz" * KEY_BYTES))
    with pytest.raises(StoreError, match="2 bytes"):
        deployment_secret(db_engine, "short")
    with pytest.raises(StoreError, match="not a hex"):
        deployment_secret(db_engine, "nothex")
