"""Sealed events open only with their own key, for their own face, untouched."""

from __future__ import annotations

import base64
import os

import pytest

from service.adapters.sealing import SealBroken, associated_data, open_sealed, seal

KEY = bytes(range(32))
PAYLOAD = b'{"face_id": "f-1", "embedding": [0.5, 0.25]}'
FACE = associated_data("user-1", "f-1")


def test_a_sealed_payload_opens_with_its_key_and_face() -> None:
    token = seal(KEY, FACE, PAYLOAD)
    assert token.isascii() and PAYLOAD not in base64.b64decode(token)
    assert open_sealed(KEY, FACE, token) == PAYLOAD


def test_sealing_again_gives_the_same_token() -> None:
    assert seal(KEY, FACE, PAYLOAD) == seal(KEY, FACE, PAYLOAD)


def test_associated_data_keeps_its_parts_apart() -> None:
    assert associated_data("ab", "c") != associated_data("a", "bc")
    assert associated_data("ü", "f") == '["ü", "f"]'.encode()


@pytest.mark.parametrize(
    ("key", "associated"),
    [
        pytest.param(os.urandom(32), FACE, id="wrong key"),
        pytest.param(KEY, associated_data("user-2", "f-1"), id="other owner"),
        pytest.param(KEY, associated_data("user-1", "f-2"), id="other face id"),
    ],
)
def test_a_token_does_not_open_for_another_key_or_face(key: bytes, associated: bytes) -> None:
    token = seal(KEY, FACE, PAYLOAD)
    with pytest.raises(SealBroken):
        open_sealed(key, associated, token)


def test_a_tampered_token_does_not_open() -> None:
    sealed = bytearray(base64.b64decode(seal(KEY, FACE, PAYLOAD)))
    sealed[0] ^= 1
    with pytest.raises(SealBroken):
        open_sealed(KEY, FACE, base64.b64encode(bytes(sealed)).decode("ascii"))


@pytest.mark.parametrize("token", ["not base64!", "QUJD", "", "é"])
def test_garbage_does_not_open(token: str) -> None:
    with pytest.raises(SealBroken):
        open_sealed(KEY, FACE, token)
