"""Hash-chain arithmetic and the verifier that walks stored entries in order.

``hash(n) = sha256(bytes.fromhex(hash(n-1)) || utf8(canonical body(n)))`` with
``hash(0) = 64 zeros``; the body contains its own seq and the previous hash, so an entry can
be neither moved nor re-linked without changing its hash. The walker checks, for each entry,
its position, that the stored body is canonical and well-formed, that the indexed columns
equal the hashed body, the link, the hash and (where the body names a signer) the signature;
at the end it checks the head anchor and an optional external anchor, which is what detects
truncation. It stops at the first failure and reports that position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from faceledger.audit.canonical import parse_canonical
from faceledger.audit.records import (
    GENESIS_HASH,
    AuditEntry,
    ChainHead,
    entry_from_body,
)
from faceledger.audit.signing import entry_signature_ok, head_signature_ok


def chain_hash(prev_hash: str, body_text: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredRow:
    """An entry as stored: the hashed body plus the columns kept beside it."""

    seq: object
    ts: object
    actor: object
    operation: object
    body: object
    prev_hash: object
    hash: object
    signature: object


@dataclass(frozen=True)
class Problem:
    position: int
    reason: str


class ChainWalker:
    """Feed rows in seq order; the first problem found is kept and returned."""

    def __init__(
        self,
        *,
        trusted_signer: str | None = None,
        want_hashes: Iterable[int] = (),
        first_seq: int = 1,
        first_prev: str = GENESIS_HASH,
    ) -> None:
        self.trusted_signer = trusted_signer
        self.expected = first_seq
        self.prev = first_prev
        self.count = 0
        self.signed = 0
        self.first_signed: int | None = None
        """The first signed entry walked: every later entry must be signed too."""
        self.problem: Problem | None = None
        self._wanted = set(want_hashes)
        self.hashes: dict[int, str] = {first_seq - 1: first_prev}

    @property
    def last_seq(self) -> int:
        return self.expected - 1

    @property
    def last_hash(self) -> str:
        return self.prev

    def feed(self, row: StoredRow) -> Problem | None:
        if self.problem is None:
            self.count += 1
            self.problem = self._check(row)
        return self.problem

    def _check(self, row: StoredRow) -> Problem | None:  # noqa: C901
        n = self.expected

        def bad(reason: str) -> Problem:
            return Problem(n, reason)

        if not isinstance(row.seq, int) or isinstance(row.seq, bool):
            return bad(f"entry {n}: stored seq is not an integer")
        if row.seq > n:
            return bad(f"entry {n} is missing (the next stored entry is {row.seq})")
        if row.seq < n:
            return bad(f"entry {row.seq} appears again or out of order at position {n}")
        if not isinstance(row.body, str):
            return bad(f"entry {n}: stored body is not text")
        try:
            parsed = parse_canonical(row.body)
        except ValueError as exc:
            return bad(f"entry {n}: body is not canonical JSON, so it was edited ({exc})")
        try:
            entry = entry_from_body(parsed, str(row.hash), None)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            return bad(f"entry {n}: malformed body ({exc})")
        if entry.seq != n:
            return bad(f"entry {n}: body says it is entry {entry.seq} (moved or inserted)")
        if entry.prev_hash != self.prev:
            return bad(
                f"entry {n}: does not link to entry {n - 1} (inserted, dropped or reordered)"
            )
        if row.prev_hash != entry.prev_hash:
            return bad(f"entry {n}: stored prev_hash differs from the hashed body")
        if row.ts != parsed["ts"] or row.actor != parsed["actor"] or row.operation != parsed["op"]:
            return bad(f"entry {n}: stored time, actor or operation differs from the hashed body")
        digest = chain_hash(self.prev, row.body)
        if row.hash != digest:
            return bad(f"entry {n}: hash mismatch (entry edited)")
        signer = entry.signer
        if self.trusted_signer is not None and signer != self.trusted_signer:
            what = "unsigned" if signer is None else "signed by another key"
            return bad(f"entry {n}: {what}, not by the trusted key")
        if signer is None and self.first_signed is not None:
            return bad(
                f"entry {n}: unsigned, though the log is signed from entry {self.first_signed} "
                "(appended without the signing key)"
            )
        if signer is not None:
            if not isinstance(row.signature, str) or not entry_signature_ok(
                signer, row.signature, digest
            ):
                return bad(f"entry {n}: signature does not verify")
            self.signed += 1
            if self.first_signed is None:
                self.first_signed = n
        elif row.signature is not None:
            return bad(f"entry {n}: has a signature but its body names no signer")
        self.prev = digest
        if n in self._wanted:
            self.hashes[n] = digest
        self.expected = n + 1
        return None

    def check_head(self, head: ChainHead | None, *, what: str = "head anchor") -> Problem | None:
        """Compare a head (the stored one or an external anchor) with what was walked."""
        last = self.last_seq
        if head is None:
            return Problem(last + 1, f"the {what} is missing: truncation cannot be ruled out")
        if head.seq < 0:
            return Problem(last + 1, f"the {what} is malformed (entry {head.seq})")
        signed = head.signer is not None or head.signature is not None
        if signed and not (
            head.signer is not None
            and head.signature is not None
            and head_signature_ok(head.signer, head.signature, head.seq, head.hash)
        ):
            return Problem(min(head.seq, last) + 1, f"the {what}'s signature does not verify")
        if self.trusted_signer is not None and head.seq > 0 and head.signer != self.trusted_signer:
            return Problem(min(head.seq, last) + 1, f"the {what} is not signed by the trusted key")
        if head.seq > last:
            return Problem(
                last + 1,
                f"log truncated: the {what} is at entry {head.seq}, the log ends at {last}",
            )
        known = self.prev if head.seq == last else self.hashes.get(head.seq)
        if known is None:
            return Problem(head.seq, f"the {what} (entry {head.seq}) was not checked")
        if known != head.hash:
            return Problem(head.seq, f"entry {head.seq} differs from the {what}")
        return None


def entry_from_row(row: StoredRow) -> AuditEntry:
    """Parse a stored row into an entry (``ValueError`` if it is malformed)."""
    if not isinstance(row.body, str):
        raise ValueError("stored body is not text")
    entry = AuditEntry.from_stored(
        row.body, str(row.hash), None if row.signature is None else str(row.signature)
    )
    return entry
