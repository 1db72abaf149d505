"""AES-256-GCM encryption of template vectors at rest (issue 5 §6).

Each vector gets a fresh random 96-bit nonce; the associated data binds the ciphertext to its
template id and model id, so a ciphertext copied onto another row, or relabelled with another
model, fails authentication instead of decrypting to a vector in the wrong place. With random
nonces one key should encrypt at most 2**32 vectors (NIST SP 800-38D); rotate keys before that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.errors import IntegrityError, InvalidArgument

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD_PREFIX = b"faceledger/template/v1\x00"
_KEY_ID_LABEL = b"faceledger/template-key-id/v1"


def generate_key() -> bytes:
    """A new random 256-bit key."""
    return os.urandom(KEY_BYTES)


class TemplateCipher:
    """Encrypts and decrypts template vectors with one 256-bit key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise InvalidArgument(f"a template key must be {KEY_BYTES} bytes (256 bits)")
        self._aead = AESGCM(bytes(key))
        digest = hmac.new(bytes(key), _KEY_ID_LABEL, hashlib.sha256).hexdigest()
        self.key_id = digest[:16]
        """A public fingerprint of the key (reveals nothing about it), stored with each row."""

    @classmethod
    def from_text(cls, text: str) -> TemplateCipher:
        """A cipher from a key written as 64 hex digits or as base64 (standard or URL-safe)."""
        s = text.strip()
        key: bytes | None = None
        if len(s) == 2 * KEY_BYTES:
            try:
                key = bytes.fromhex(s)
            except ValueError:
                key = None
        if key is None:
            try:
                key = base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                key = None
        if key is None or len(key) != KEY_BYTES:
            raise InvalidArgument(
                f"a template key must be {KEY_BYTES} bytes written as 64 hex digits or base64"
            )
        return cls(key)

    def __repr__(self) -> str:
        return f"TemplateCipher(key_id={self.key_id!r})"

    def encrypt(self, template_id: int, model_id: str, plaintext: bytes) -> bytes:
        """``nonce || ciphertext || tag``."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(template_id, model_id))

    def decrypt(self, template_id: int, model_id: str, blob: bytes) -> bytes:
        """The plaintext; :class:`IntegrityError` if the data was altered or moved."""
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise IntegrityError(f"template {template_id}: encrypted vector is truncated")
        nonce, body = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, _aad(template_id, model_id))
        except InvalidTag:
            raise IntegrityError(
                f"template {template_id}: encrypted vector fails authentication "
                "(altered, or copied from another template or model)"
            ) from None


def _aad(template_id: int, model_id: str) -> bytes:
    return _AAD_PREFIX + struct.pack(">q", template_id) + model_id.encode("utf-8")
