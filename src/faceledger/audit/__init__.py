"""Append-only, hash-chained, optionally signed audit log of every use of the engine."""

from faceledger.audit.canonical import canonical_json
from faceledger.audit.log import AuditLog, Clock, utc_now, verify_jsonl
from faceledger.audit.records import (
    ACCESS_OPS,
    GENESIS_HASH,
    SEARCH_OPS,
    AuditEntry,
    AuditOp,
    AuditRecord,
    ChainHead,
    Lead,
    VerifyReport,
)
from faceledger.audit.report import build_report
from faceledger.audit.signing import (
    generate_signing_key,
    load_signing_key,
    load_verify_key,
    public_key_hex,
    signing_key_pem,
)

__all__ = [
    "ACCESS_OPS",
    "GENESIS_HASH",
    "SEARCH_OPS",
    "AuditEntry",
    "AuditLog",
    "AuditOp",
    "AuditRecord",
    "ChainHead",
    "Clock",
    "Lead",
    "VerifyReport",
    "build_report",
    "canonical_json",
    "generate_signing_key",
    "load_signing_key",
    "load_verify_key",
    "public_key_hex",
    "signing_key_pem",
    "utc_now",
    "verify_jsonl",
]
