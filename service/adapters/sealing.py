"""Sealing a face's event with its data key (AES-256-GCM-SIV), so destroying the key shreds
it."""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

# Re-published events must be byte-identical to the first, so sealing is deterministic: a
# fixed nonce. A face's key normally seals one payload only, its own event; but a command
# sent again under the same RequestId with another PersonName would seal a second one. Plain
# GCM would then leak the key stream; GCM-SIV (RFC 8452) is built for a repeated nonce and
# reveals no more than whether two payloads are equal.
_NONCE = bytes(12)


class SealBroken(Exception):
    """The token cannot be opened: wrong key, another face's data, tampered with, or garbage."""


def associated_data(owner: str, face_id: str) -> bytes:
    """Binds a token to its face: a JSON list, so ("ab", "c") and ("a", "bc") differ."""
    return json.dumps([owner, face_id], ensure_ascii=False).encode("utf-8")


def seal(key: bytes, associated: bytes, plaintext: bytes) -> str:
    sealed = AESGCMSIV(key).encrypt(_NONCE, plaintext, associated)
    return base64.b64encode(sealed).decode("ascii")


def open_sealed(key: bytes, associated: bytes, token: str) -> bytes:
    try:
        sealed = base64.b64decode(token.encode("ascii"), validate=True)
        return AESGCMSIV(key).decrypt(_NONCE, sealed, associated)
    except (InvalidTag, binascii.Error, UnicodeEncodeError) as error:
        raise SealBroken(f"a sealed event did not open: {type(error).__name__}") from error
