"""From a raw Kafka record to a valid RegisterFace command, or the reason it is refused."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from service.contracts.messages import RegisterCustomFaceCommand
from service.domain.commands import RegisterFace
from service.domain.errors import ErrorCode, Rejected
from service.domain.ids import LibraryId, derive_request_id, identity_key
from service.domain.partitioning import key_partition

RESERVED_PERSON_KEY = identity_key("ALL")

_FIELD_CODES = {
    "RequestId": ErrorCode.INVALID_REQUEST_ID,
    "CategoryId": ErrorCode.INVALID_CATEGORY_ID,
    "PersonId": ErrorCode.INVALID_PERSON_ID,
    "PersonName": ErrorCode.INVALID_PERSON_NAME,
    "ImageUrl": ErrorCode.INVALID_IMAGE_URL,
}


@dataclass(frozen=True)
class IncomingRecord:
    """A commands-topic record, free of any Kafka client type. `partition_count` is the
    topic's, as the consumer sees it; None when unknown, and then the key's partition is
    not checked."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    partition_count: int | None = None


class Unreadable(Rejected):
    """A record that is not a readable command. Besides its error result, a copy goes to the
    dead-letter topic, where an operator can see what producers send wrong."""


@dataclass(frozen=True)
class Envelope:
    """What can be known of a record before its fields are judged."""

    record: IncomingRecord
    owner: str | None
    request_id: str
    body: dict[str, object] | str  # the JSON object, or why the value is not one


def open_envelope(record: IncomingRecord, max_bytes: int) -> Envelope:
    """Owner and RequestId, recovered even from a record that will be refused."""
    body = _json_object(record.value, max_bytes)
    given = body.get("RequestId") if isinstance(body, dict) else None
    request_id = (
        given
        if isinstance(given, str) and 0 < len(given) <= 128
        else derive_request_id(record.topic, record.partition, record.offset)
    )
    return Envelope(record=record, owner=_owner(record.key), request_id=request_id, body=body)


def wrong_partition(envelope: Envelope) -> Rejected | None:
    """The refusal of a record that is not on the partition Kafka's default partitioner gives
    its key, or None. A user's commands must all sit there: the limiter and the order of a
    person's commands are kept per partition. A record without a usable key is left to
    `parse_command` (InvalidParameter.UserId).

    Not Unreadable: the command itself is sound and its producer gets the fix in the
    result, while a misconfigured producer misplaces most of its records, which would fill
    the dead-letter topic with copies of good commands.
    """
    record = envelope.record
    if envelope.owner is None or not record.key or record.partition_count is None:
        return None
    expected = key_partition(record.key, record.partition_count)
    if record.partition == expected:
        return None
    return Rejected(
        ErrorCode.INVALID_PARTITION,
        f"the record is on partition {record.partition} of {record.topic}, but its key "
        f"belongs on partition {expected} of {record.partition_count}, where Kafka's "
        "default (murmur2) partitioner puts it and all of the user's commands must be: "
        "librdkafka clients (confluent-kafka, kcat) need partitioner=murmur2_random, "
        "and no producer may choose the partition by hand",
    )


def parse_command(envelope: Envelope, system_category_keys: Collection[str]) -> RegisterFace:
    if envelope.owner is None:
        raise Unreadable(
            ErrorCode.INVALID_USER_ID,
            "the record has no key, or one that is not UTF-8 text; the key must be the user id",
        )
    if isinstance(envelope.body, str):
        raise Unreadable(ErrorCode.INVALID_MESSAGE, envelope.body)
    try:
        wire = RegisterCustomFaceCommand.model_validate(envelope.body, strict=True)
    except ValidationError as error:
        raise _rejection(error) from None
    category = LibraryId.of(wire.CategoryId)
    person = LibraryId.of(wire.PersonId)
    if category.key in system_category_keys:
        raise Rejected(
            ErrorCode.SYSTEM_CATEGORY,
            f"CategoryId {wire.CategoryId!r} is a system library id; choose another",
        )
    if person.key == RESERVED_PERSON_KEY:
        raise Rejected(ErrorCode.INVALID_PERSON_ID, "PersonId 'ALL' is reserved")
    _check_image_url(wire.ImageUrl)
    return RegisterFace(
        owner=envelope.owner,
        request_id=envelope.request_id,
        category=category,
        person=person,
        image_url=wire.ImageUrl,
        person_name=wire.PersonName,
        timestamp_ms=envelope.record.timestamp_ms,
    )


def _owner(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        owner = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return owner if owner.strip() else None


def _json_object(value: bytes | None, max_bytes: int) -> dict[str, object] | str:
    if not value:
        return "the record has no value"
    if len(value) > max_bytes:
        return f"the record value is {len(value)} bytes, over the {max_bytes}-byte limit"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "the record value is not UTF-8 text"
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return "the record value is not JSON"
    if not isinstance(decoded, dict):
        return f"the record value is a JSON {type(decoded).__name__}, not an object"
    return decoded


def _rejection(error: ValidationError) -> Rejected:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if field == "Action":
        return Unreadable(ErrorCode.INVALID_MESSAGE, "Action must be RegisterCustomFace")
    code = _FIELD_CODES.get(field)
    if code is None:
        if first["type"] == "extra_forbidden":
            return Unreadable(ErrorCode.INVALID_MESSAGE, f"unknown field {field!r}")
        return Unreadable(ErrorCode.INVALID_MESSAGE, f"{field}: {first['msg']}")
    if first["type"] == "missing":
        return Rejected(code, f"{field} is required")
    if first["type"].endswith("_type"):
        # A number where text belongs: the producer's serializer is wrong, not the value.
        return Unreadable(code, f"{field}: {first['msg']}")
    return Rejected(code, f"{field}: {first['msg']}")


def _check_image_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise Rejected(ErrorCode.INVALID_IMAGE_URL, "ImageUrl must be an http or https URL")
