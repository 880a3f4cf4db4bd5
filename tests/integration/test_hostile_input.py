"""Hostile input through the real service path: a real broker, real DeepFace, and an image
server on 127.0.0.2 that misbehaves on purpose. Only 127.0.0.2 is allow-listed, so every
other loopback spelling must still be refused.

Each case asserts its exact result code, and for unreadable records the dead-letter copy;
then a normal registration from the same user must still succeed.
"""

from __future__ import annotations

import json
import uuid

import pytest

from service.domain.ids import derive_request_id
from tests.support.hostile_cases import CASES, OK, HostileCase, Record, Url
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes
from tests.support.kafka_client import CommandClient


def body(url: str, person: str = "p") -> dict[str, str]:
    return {"CategoryId": "Lib", "PersonId": person, "ImageUrl": url}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_hostile_case_gets_its_exact_result_and_the_user_carries_on(
    case: HostileCase, client: CommandClient, image_server: ImageServer
) -> None:
    tag = f"hostile-{case.name}-{uuid.uuid4().hex[:6]}"
    user = f"user-{tag}"
    made = case.make(image_server, tag, user.encode())

    if isinstance(made, Url):
        result = await client.register(user, body(made.url))
    else:
        assert isinstance(made, Record)
        partition, offset = await client.send_raw(made.key, made.value, headers=list(made.headers))
        request_id = _request_id_of(made.value) or derive_request_id(
            client.commands_topic, partition, offset
        )
        result = await client.result(request_id)

    assert result.get("Code", OK) == case.expect, result
    if case.expect != OK:
        assert result["Message"]
    if case.dead_letter:
        assert isinstance(made, Record)
        letter = await client.dead_letter(partition, offset)
        assert (letter.key, letter.value or None) == (made.key, made.value or None)
        assert letter.headers["dlq-code"] == case.expect
        assert letter.headers["dlq-reason"] == result["Message"]
        assert letter.headers["dlq-source-topic"] == client.commands_topic
    else:
        assert all(letter.key != user.encode() for letter in client.dead_letters.values())

    face = image_server.serve(f"/{tag}/after.png", fixture_bytes("Tom_Hanks_54745.png"))
    after = await client.register(user, body(face, person="after"))
    assert "FaceId" in after, after


def _request_id_of(value: bytes | None) -> str | None:
    try:
        given = json.loads(value or b"").get("RequestId")
    except (ValueError, AttributeError, RecursionError):
        return None
    return given if isinstance(given, str) else None
