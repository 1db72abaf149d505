"""AES-GCM template encryption: round trip, binding to template and model, key handling."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.store.crypto import KEY_BYTES, TemplateCipher, generate_key

PLAIN = np.linspace(-1, 1, 128, dtype=np.float32).astype("<f4").tobytes()


def test_round_trip_with_fresh_nonces() -> None:
    cipher = TemplateCipher(generate_key())
    a = cipher.encrypt(7, "dlib-resnet-v1", PLAIN)
    b = cipher.encrypt(7, "dlib-resnet-v1", PLAIN)
    assert a != b and a[:12] != b[:12]  # a new random nonce each time
    assert len(a) == 12 + len(PLAIN) + 16
    assert PLAIN not in a
    assert cipher.decrypt(7, "dlib-resnet-v1", a) == PLAIN
    assert cipher.decrypt(7, "dlib-resnet-v1", b) == PLAIN


@pytest.mark.parametrize(
    ("template_id", "model_id"),
    [(8, "dlib-resnet-v1"), (-7, "dlib-resnet-v1"), (7, "arcface-r100"), (7, "dlib-resnet-v")],
)
def test_ciphertext_is_bound_to_template_id_and_model(template_id: int, model_id: str) -> None:
    cipher = TemplateCipher(generate_key())
    blob = cipher.encrypt(7, "dlib-resnet-v1", PLAIN)
    with pytest.raises(IntegrityError, match="authentication"):
        cipher.decrypt(template_id, model_id, blob)


def test_altered_truncated_or_foreign_ciphertext_is_refused() -> None:
    cipher = TemplateCipher(generate_key())
    blob = bytearray(cipher.encrypt(1, "m", PLAIN))
    blob[40] ^= 0x01
    with pytest.raises(IntegrityError):
        cipher.decrypt(1, "m", bytes(blob))
    with pytest.raises(IntegrityError, match="truncated"):
        cipher.decrypt(1, "m", bytes(blob[:20]))
    other = TemplateCipher(generate_key())
    with pytest.raises(IntegrityError):
        other.decrypt(1, "m", cipher.encrypt(1, "m", PLAIN))


def test_key_id_is_a_stable_fingerprint_that_hides_the_key() -> None:
    key = generate_key()
    assert len(key) == KEY_BYTES and key != generate_key()
    a, b = TemplateCipher(key), TemplateCipher(key)
    assert a.key_id == b.key_id and len(a.key_id) == 16
    assert a.key_id != TemplateCipher(generate_key()).key_id
    assert a.key_id not in key.hex()
    assert key.hex() not in repr(a) and a.key_id in repr(a)


def test_keys_from_text() -> None:
    key = generate_key()
    fingerprint = TemplateCipher(key).key_id
    for text in (
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        f"  {key.hex()}\n",
    ):
        assert TemplateCipher.from_text(text).key_id == fingerprint
    for bad in ("", "abc", key.hex()[:-2], base64.b64encode(key[:16]).decode(), "z" * 64):
        with pytest.raises(InvalidArgument, match=r"32 bytes"):
            TemplateCipher.from_text(bad)
    with pytest.raises(InvalidArgument):
        TemplateCipher(key[:16])
