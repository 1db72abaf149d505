"""Ed25519 keys for signing audit entries and the chain head, and the exact bytes signed.

Signed messages are domain-separated, so an entry signature can never pass as a head signature:
an entry's is ``b"faceledger-audit-entry\\0" + hash``, the head's is
``b"faceledger-audit-head\\0" + seq (8 bytes, big-endian) + hash`` (hash = 32 raw bytes).
Signatures and public keys are stored as lowercase hex.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceledger.errors import InvalidArgument

_ENTRY_DOMAIN = b"faceledger-audit-entry\x00"
_HEAD_DOMAIN = b"faceledger-audit-head\x00"


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def load_signing_key(data: bytes) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS#8, unencrypted) or 32 raw bytes."""
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument("the audit signing key must be an Ed25519 key")
    return key


def load_verify_key(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo), 32 raw bytes or 64 hex characters."""
    text = data.strip()
    if len(text) == 64:
        try:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            pass
    if len(data) == 32:
        try:
            return Ed25519PublicKey.from_public_bytes(data)
        except ValueError as exc:
            raise InvalidArgument(f"not an Ed25519 public key: {exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgument("the audit verify key must be an Ed25519 key")
    return key


def signing_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_hex(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key as hex: the ``signer`` recorded in entries."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign_entry(key: Ed25519PrivateKey, hash_hex: str) -> str:
    return key.sign(_ENTRY_DOMAIN + bytes.fromhex(hash_hex)).hex()


def sign_head(key: Ed25519PrivateKey, seq: int, hash_hex: str) -> str:
    return key.sign(_head_message(seq, hash_hex)).hex()


def entry_signature_ok(signer_hex: str, signature_hex: str, hash_hex: str) -> bool:
    """Whether the signature verifies; False for anything malformed (never raises)."""
    try:
        return _check(signer_hex, signature_hex, _ENTRY_DOMAIN + bytes.fromhex(hash_hex))
    except (ValueError, TypeError, OverflowError):
        return False


def head_signature_ok(signer_hex: str, signature_hex: str, seq: int, hash_hex: str) -> bool:
    """Whether the head signature verifies; False for anything malformed (never raises)."""
    try:
        return _check(signer_hex, signature_hex, _head_message(seq, hash_hex))
    except (ValueError, TypeError, OverflowError):
        return False


def _head_message(seq: int, hash_hex: str) -> bytes:
    return _HEAD_DOMAIN + seq.to_bytes(8, "big") + bytes.fromhex(hash_hex)


def _check(signer_hex: str, signature_hex: str, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signer_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except InvalidSignature:
        return False
    return True
