"""Identity rules: case-insensitive ids, stable RequestIds and FaceIds."""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from dataclasses import dataclass

MAX_ID_LENGTH = 120
# A user id is a record key, and goes into every result and face event of the user: a long
# one would make those records too large for Kafka, which would refuse them for good.
MAX_USER_ID_BYTES = 256

# Fixed namespace: a RequestId derived from a record's position must be the same in
# every process and every replay, so it cannot come from anything random.
_REQUEST_ID_NAMESPACE = uuid.UUID("6f1f7c5e-3f0a-5d2b-9a4e-2b8c1d0e7a51")


def identity_key(value: str) -> str:
    """The form two ids are compared in: `Cat-1` and `cat-1` name one library."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


@dataclass(frozen=True)
class LibraryId:
    """An id as the user spelled it, with the key it is compared by."""

    display: str
    key: str

    @classmethod
    def of(cls, value: str) -> LibraryId:
        return cls(display=value, key=identity_key(value))


def derive_request_id(topic: str, partition: int, offset: int) -> str:
    """A RequestId for a command that brought none; a replay of the record derives the same."""
    name = f"{topic}/{partition}/{offset}"
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, name)).upper()


def derive_face_id(owner: str, category_key: str, person_key: str, request_id: str) -> str:
    """32 lowercase hex characters, the same whenever the same command is processed."""
    # JSON keeps the parts apart whatever characters the ids hold.
    material = json.dumps([owner, category_key, person_key, request_id], ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def derive_text_key_id(owner: str, category_key: str, person_key: str, request_id: str) -> str:
    """The id of the key that seals the person texts a command set (its name, description):
    `t` and 31 hex characters, so it never equals a FaceId."""
    material = json.dumps(
        [owner, category_key, person_key, request_id, "texts"], ensure_ascii=False
    )
    return "t" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:31]
