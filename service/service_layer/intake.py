"""From a raw Kafka record to a valid command, or the reason it is refused."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from service.contracts.messages import (
    ACTIONS,
    ListCustomPersonsCommand,
    RegisterCustomFaceCommand,
    SearchCustomFaceCommand,
    TagCustomPersonCommand,
    UnregisterCustomFaceCommand,
)
from service.domain.commands import (
    ALL,
    Command,
    ListPersons,
    RegisterFace,
    SearchFaces,
    TagPerson,
    Texts,
    UnregisterFaces,
)
from service.domain.errors import ErrorCode, Rejected
from service.domain.ids import MAX_USER_ID_BYTES, LibraryId, derive_request_id
from service.domain.paging import page_start
from service.domain.partitioning import key_partition

DEFAULT_ACTION = "RegisterCustomFace"

_FIELD_CODES = {
    "RequestId": ErrorCode.INVALID_REQUEST_ID,
    "CategoryId": ErrorCode.INVALID_CATEGORY_ID,
    "PersonId": ErrorCode.INVALID_PERSON_ID,
    "PersonName": ErrorCode.INVALID_PERSON_NAME,
    "ImageUrl": ErrorCode.INVALID_IMAGE_URL,
    "FaceId": ErrorCode.INVALID_FACE_ID,
    "MaxResults": ErrorCode.INVALID_MAX_RESULTS,
    "NextToken": ErrorCode.INVALID_NEXT_TOKEN,
    "CategoryName": ErrorCode.INVALID_CATEGORY_NAME,
    "CategoryDescription": ErrorCode.INVALID_CATEGORY_DESCRIPTION,
    "PersonDescription": ErrorCode.INVALID_PERSON_DESCRIPTION,
    "CategoryIds": ErrorCode.INVALID_CATEGORY_IDS,
    "MaxFaces": ErrorCode.INVALID_MAX_FACES,
    "Limit": ErrorCode.INVALID_LIMIT,
    "MaxDistance": ErrorCode.INVALID_MAX_DISTANCE,
    "DuplicatePersonMaxDistance": ErrorCode.INVALID_DUPLICATE_DISTANCE,
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

    @property
    def action(self) -> str:
        """The action the record names, for its rate budget; a record naming none, or one
        not served, counts as RegisterCustomFace (it is refused later all the same)."""
        named = self.body.get("Action") if isinstance(self.body, dict) else None
        return named if isinstance(named, str) and named in ACTIONS else DEFAULT_ACTION


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


def parse_command(envelope: Envelope, system_category_keys: Collection[str]) -> Command:
    if envelope.owner is None:
        raise Unreadable(
            ErrorCode.INVALID_USER_ID,
            "the record has no key, or one that is not UTF-8 text or is over "
            f"{MAX_USER_ID_BYTES} bytes; the key must be the user id",
        )
    if isinstance(envelope.body, str):
        raise Unreadable(ErrorCode.INVALID_MESSAGE, envelope.body)
    action = envelope.body.get("Action", DEFAULT_ACTION)
    model = ACTIONS.get(action) if isinstance(action, str) else None
    if model is None:
        raise Unreadable(ErrorCode.INVALID_MESSAGE, f"Action must be one of {', '.join(ACTIONS)}")
    try:
        wire = model.model_validate(envelope.body, strict=True)
    except ValidationError as error:
        raise _rejection(error) from None
    fields = _Fields(envelope.owner, envelope.request_id, system_category_keys)
    if isinstance(wire, RegisterCustomFaceCommand):
        return fields.register(wire, envelope.record.timestamp_ms)
    if isinstance(wire, UnregisterCustomFaceCommand):
        return fields.unregister(wire)
    if isinstance(wire, TagCustomPersonCommand):
        return fields.tag(wire)
    if isinstance(wire, SearchCustomFaceCommand):
        return fields.search(wire)
    return fields.list(wire)


@dataclass(frozen=True)
class _Fields:
    """The rules between fields, once each field is valid on its own."""

    owner: str
    request_id: str
    system_category_keys: Collection[str]

    def register(self, wire: RegisterCustomFaceCommand, timestamp_ms: int) -> RegisterFace:
        _check_image_url(wire.ImageUrl)
        return RegisterFace(
            owner=self.owner,
            request_id=self.request_id,
            category=self._category(wire.CategoryId),
            person=_person(wire.PersonId),
            image_url=wire.ImageUrl,
            person_name=wire.PersonName,
            timestamp_ms=timestamp_ms,
            duplicate_max_distance=wire.DuplicatePersonMaxDistance,
        )

    def unregister(self, wire: UnregisterCustomFaceCommand) -> UnregisterFaces:
        command = UnregisterFaces(
            owner=self.owner,
            request_id=self.request_id,
            category=self._category(wire.CategoryId),
            person=LibraryId.of(wire.PersonId),
            face_id=wire.FaceId,
        )
        if command.whole_library and not command.whole_person:
            raise Rejected(ErrorCode.INVALID_FACE_ID, "FaceId must be 'ALL' when PersonId is 'ALL'")
        return command

    def tag(self, wire: TagCustomPersonCommand) -> TagPerson:
        texts = Texts(
            category_name=wire.CategoryName,
            category_description=wire.CategoryDescription,
            person_name=wire.PersonName,
            person_description=wire.PersonDescription,
        )
        if texts == Texts():
            raise Rejected(
                ErrorCode.INVALID_MESSAGE,
                "give at least one of CategoryName, CategoryDescription, PersonName, "
                "PersonDescription",
            )
        return TagPerson(
            owner=self.owner,
            request_id=self.request_id,
            category=self._category(wire.CategoryId),
            person=_person(wire.PersonId),
            texts=texts,
        )

    def list(self, wire: ListCustomPersonsCommand) -> ListPersons:
        category = self._category(wire.CategoryId) if wire.CategoryId is not None else None
        if wire.PersonId is not None and category is None:
            raise Rejected(ErrorCode.INVALID_PERSON_ID, "PersonId needs CategoryId")
        after = None
        if wire.NextToken is not None:
            try:
                after = page_start(wire.NextToken)
            except ValueError as error:
                raise Rejected(ErrorCode.INVALID_NEXT_TOKEN, str(error)) from None
            if category is not None and after.category_key != category.key:
                raise Rejected(
                    ErrorCode.INVALID_NEXT_TOKEN, "NextToken belongs to another CategoryId"
                )
        return ListPersons(
            owner=self.owner,
            request_id=self.request_id,
            category=category,
            person=_person(wire.PersonId) if wire.PersonId is not None else None,
            max_results=wire.MaxResults,
            after=after,
        )

    def search(self, wire: SearchCustomFaceCommand) -> SearchFaces:
        categories: dict[str, LibraryId] = {}
        for value in wire.CategoryIds:
            category = self._category(value)
            categories.setdefault(category.key, category)
        _check_image_url(wire.ImageUrl)
        return SearchFaces(
            owner=self.owner,
            request_id=self.request_id,
            categories=tuple(categories.values()),
            image_url=wire.ImageUrl,
            max_faces=wire.MaxFaces,
            limit=wire.Limit,
            max_distance=wire.MaxDistance,
        )

    def _category(self, value: str) -> LibraryId:
        category = LibraryId.of(value)
        if category.key in self.system_category_keys:
            raise Rejected(
                ErrorCode.SYSTEM_CATEGORY,
                f"CategoryId {value!r} is a system library id; choose another",
            )
        return category


def _person(value: str) -> LibraryId:
    person = LibraryId.of(value)
    if person.key == ALL:
        raise Rejected(ErrorCode.INVALID_PERSON_ID, "PersonId 'ALL' is reserved")
    return person


def _owner(key: bytes | None) -> str | None:
    # Not the owner of anything the service writes: its refusal goes out without a key.
    if not key or len(key) > MAX_USER_ID_BYTES:
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
    try:
        # JSON may escape half of a UTF-16 pair ("\ud800"): text no answer could carry,
        # since the publisher cannot write it, and its record would never be answered.
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "the record value escapes a lone UTF-16 surrogate, which is not text"
    return decoded


def _rejection(error: ValidationError) -> Rejected:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if field == "Action":
        return Unreadable(ErrorCode.INVALID_MESSAGE, f"Action must be one of {', '.join(ACTIONS)}")
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
