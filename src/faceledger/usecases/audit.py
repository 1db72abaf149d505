"""Verifying the audit log: the whole hash chain, against a head saved elsewhere and a trusted
signer's key when they are given. A log that was ever signed must stay signed: an unsigned
entry after a signed one fails the check even without a key (``audit.chain``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from faceledger.access import Operation, User, authorize
from faceledger.audit import ChainHead, VerifyReport, load_verify_key
from faceledger.errors import InvalidArgument
from faceledger.gallery.workspace import Workspace


@dataclass(frozen=True)
class VerifyChain:
    anchor: str | None = None
    """A head saved earlier by ``audit head`` (JSON text): catches truncation and rollback."""
    key: bytes | None = None
    """The trusted signer's Ed25519 public key (PEM, 32 raw bytes or 64 hex characters)."""


def verify_chain(ws: Workspace, actor: User, req: VerifyChain) -> VerifyReport:
    authorize(actor, Operation.AUDIT_READ)
    head = None
    if req.anchor is not None:
        try:
            head = ChainHead.from_json(json.loads(req.anchor))
        except (ValueError, TypeError, AttributeError):
            raise InvalidArgument("the anchor is not a chain head saved by `audit head`") from None
    key = None if req.key is None else load_verify_key(req.key)
    return ws.audit.verify(verify_key=key, anchor=head)
