import json

import pytest

from service.domain.errors import ErrorCode, Rejected
from service.domain.ids import derive_request_id
from service.service_layer.intake import IncomingRecord, Unreadable, open_envelope, parse_command

SYSTEM = {"celebrity", "politician", "sensitive"}
MAX_BYTES = 4096
VALID = {"CategoryId": "Cat-1", "PersonId": "p1", "ImageUrl": "https://img.example/a.jpg"}


def record(value: object, key: bytes | None = b"user-1", offset: int = 7) -> IncomingRecord:
    raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return IncomingRecord("cmds", 2, offset, 1_700_000_000_000, key, raw)


def refusal(value: object, key: bytes | None = b"user-1") -> Rejected:
    with pytest.raises(Rejected) as refused:
        parse_command(open_envelope(record(value, key), MAX_BYTES), SYSTEM)
    return refused.value


def test_a_valid_command_keeps_the_spelling_and_the_owner() -> None:
    command = parse_command(
        open_envelope(record({**VALID, "PersonName": "Ann"}), MAX_BYTES), SYSTEM
    )
    assert command.owner == "user-1"
    assert (command.category.display, command.category.key) == ("Cat-1", "cat-1")
    assert command.person_name == "Ann"


def test_a_command_without_request_id_gets_one_derived_from_its_position() -> None:
    command = parse_command(open_envelope(record(VALID), MAX_BYTES), SYSTEM)
    assert command.request_id == derive_request_id("cmds", 2, 7)


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", "é".encode() * 128 + b"x"])
def test_a_record_without_a_usable_key_is_refused(key: bytes | None) -> None:
    assert refusal(VALID, key=key).code is ErrorCode.INVALID_USER_ID


def test_a_user_id_of_256_bytes_is_one() -> None:
    command = parse_command(open_envelope(record(VALID, key="é".encode() * 128), MAX_BYTES), SYSTEM)
    assert command.owner == "é" * 128


@pytest.mark.parametrize(
    "value", [b"not json", b"[1, 2]", b"\xff\xfe", None, b'"text"', b'{"PersonName": "\\udc00"}']
)
def test_a_value_that_is_not_a_json_object_is_refused(value: bytes | None) -> None:
    assert refusal(value).code is ErrorCode.INVALID_MESSAGE


def test_an_unknown_action_is_refused() -> None:
    rejected = refusal({**VALID, "Action": "DeleteCustomFace"})
    assert rejected.code is ErrorCode.INVALID_MESSAGE
    assert "Action" in rejected.message


def test_the_body_cannot_name_another_user() -> None:
    rejected = refusal({**VALID, "UserId": "someone-else"})
    assert rejected.code is ErrorCode.INVALID_MESSAGE
    assert "UserId" in rejected.message


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("CategoryId", None, ErrorCode.INVALID_CATEGORY_ID),
        ("CategoryId", "", ErrorCode.INVALID_CATEGORY_ID),
        ("CategoryId", "c" * 121, ErrorCode.INVALID_CATEGORY_ID),
        ("CategoryId", 12, ErrorCode.INVALID_CATEGORY_ID),
        ("PersonId", None, ErrorCode.INVALID_PERSON_ID),
        ("PersonId", "", ErrorCode.INVALID_PERSON_ID),
        ("PersonId", "p" * 121, ErrorCode.INVALID_PERSON_ID),
        ("PersonName", "n" * 513, ErrorCode.INVALID_PERSON_NAME),
        ("ImageUrl", "ftp://img.example/a.jpg", ErrorCode.INVALID_IMAGE_URL),
        ("ImageUrl", "not a url", ErrorCode.INVALID_IMAGE_URL),
        ("ImageUrl", "http://[::1/a.png", ErrorCode.INVALID_IMAGE_URL),
        ("ImageUrl", "http://img.example:99999/a.png", ErrorCode.INVALID_IMAGE_URL),
        ("ImageUrl", None, ErrorCode.INVALID_IMAGE_URL),
        ("RequestId", "", ErrorCode.INVALID_REQUEST_ID),
    ],
)
def test_each_invalid_field_gets_its_own_code(field: str, value: object, code: ErrorCode) -> None:
    body = dict(VALID)
    if value is None:
        body.pop(field, None)
    else:
        body[field] = value
    rejected = refusal(body)
    assert rejected.code is code
    assert field in rejected.message


def test_ids_of_120_characters_in_any_language_are_accepted() -> None:
    body = {**VALID, "CategoryId": "库" * 120, "PersonId": "ü" * 120}
    command = parse_command(open_envelope(record(body), MAX_BYTES), SYSTEM)
    assert command.category.display == "库" * 120


@pytest.mark.parametrize("category", ["celebrity", "Celebrity", "POLITICIAN", "sensitive"])
def test_a_system_library_id_is_forbidden_in_any_case(category: str) -> None:
    rejected = refusal({**VALID, "CategoryId": category})
    assert rejected.code is ErrorCode.SYSTEM_CATEGORY
    assert rejected.code.http_status == 403


@pytest.mark.parametrize("person", ["ALL", "all", "All"])
def test_person_id_all_is_reserved(person: str) -> None:
    assert refusal({**VALID, "PersonId": person}).code is ErrorCode.INVALID_PERSON_ID


def test_a_refused_record_still_reports_its_request_id() -> None:
    envelope = open_envelope(record({"RequestId": "ABC-1", "CategoryId": ""}), MAX_BYTES)
    assert envelope.request_id == "ABC-1"


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (None, b"user-1", ErrorCode.INVALID_MESSAGE),
        (b"\xff\xfe{}", b"user-1", ErrorCode.INVALID_MESSAGE),
        (b"{not json", b"user-1", ErrorCode.INVALID_MESSAGE),
        ([VALID], b"user-1", ErrorCode.INVALID_MESSAGE),
        ({**VALID, "Extra": 1}, b"user-1", ErrorCode.INVALID_MESSAGE),
        ({**VALID, "CategoryId": 5}, b"user-1", ErrorCode.INVALID_CATEGORY_ID),
        (b'{"PersonId": "' + b"x" * MAX_BYTES + b'"}', b"user-1", ErrorCode.INVALID_MESSAGE),
        (VALID, None, ErrorCode.INVALID_USER_ID),
    ],
    ids=[
        "tombstone",
        "not-utf8",
        "not-json",
        "array",
        "unknown-field",
        "wrong-type",
        "over-cap",
        "no-key",
    ],
)
def test_a_record_that_is_not_a_readable_command_is_unreadable(
    value: object, key: bytes | None, code: ErrorCode
) -> None:
    rejected = refusal(value, key=key)
    assert isinstance(rejected, Unreadable)
    assert rejected.code is code


@pytest.mark.parametrize(
    "body",
    [
        {**VALID, "CategoryId": "x" * 121},
        {k: v for k, v in VALID.items() if k != "ImageUrl"},
        {**VALID, "ImageUrl": "ftp://img.example/a.jpg"},
    ],
)
def test_a_readable_command_with_bad_values_is_refused_but_not_unreadable(
    body: dict[str, object],
) -> None:
    assert not isinstance(refusal(body), Unreadable)


def test_an_oversized_record_says_how_large_it_is() -> None:
    message = refusal(b" " * (MAX_BYTES + 1) + json.dumps(VALID).encode()).message
    assert str(MAX_BYTES) in message and "bytes" in message
