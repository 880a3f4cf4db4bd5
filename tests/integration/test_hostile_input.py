"""Hostile input through the real service path: a real broker, real DeepFace, and an image
server on 127.0.0.2 that misbehaves on purpose. Only 127.0.0.2 is allow-listed, so every
other loopback spelling must still be refused.

Each case asserts its exact result code, and for unreadable records the dead-letter copy;
then a normal registration from the same user must still succeed.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from service.domain.ids import derive_request_id
from service.entrypoints.service_app import Service
from service.logs import JsonFormatter
from tests.support.hostile_cases import CASES, OK, HostileCase, Record, Url
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes, tom_variants
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
        decoded = json.loads(value or b"")
        # A value that is not all text has its RequestId derived, as an unreadable one.
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
        given = decoded.get("RequestId")
    except (ValueError, AttributeError, RecursionError):
        return None
    return given if isinstance(given, str) else None


async def test_two_users_with_the_same_ids_have_separate_libraries(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    faces = [
        image_server.serve(f"/{tag}/tom-{i}.jpg", data) for i, data in enumerate(tom_variants())
    ]
    other_face = image_server.serve(f"/{tag}/astronaut.png", fixture_bytes("astronaut.png"))
    shared_request_id = f"R-{tag}"

    alice_first = await client.register(alice, {**body(faces[0]), "RequestId": shared_request_id})
    # The same RequestId from another user is another command, not a repeat of Alice's.
    await client.send(bob, {**body(other_face), "RequestId": shared_request_id})
    both = await client.all_results(shared_request_id, 2)
    bob_first = next(r for r in both if r != alice_first)
    alice_rest = [await client.register(alice, body(url)) for url in faces[1:11]]
    bob_second = await client.register(bob, body(faces[11]))

    assert "FaceId" in alice_first and "FaceId" in bob_first
    assert bob_first["FaceId"] != alice_first["FaceId"]
    # Alice's cap is reached; Bob's person, same ids, is untouched by it.
    assert [r.get("Code", OK) for r in alice_rest] == [OK] * 9 + ["FaceLimitExceeded"]
    # Bob's person holds the astronaut, so Tom does not match it: Alice's Tom faces
    # were never compared with Bob's.
    assert bob_second["Code"] == "InvalidImage.FaceMismatch"
    persons = service.database["persons"]
    alice_doc = await persons.find_one({"owner": alice, "category_key": "lib", "person_key": "p"})
    bob_doc = await persons.find_one({"owner": bob, "category_key": "lib", "person_key": "p"})
    assert len(alice_doc["images"]) == 10
    assert [i["face_id"] for i in bob_doc["images"]] == [bob_first["FaceId"]]


async def test_logs_hold_no_url_secrets_and_no_embeddings(
    client: CommandClient,
    service: Service,
    image_server: ImageServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="service")
    tag = uuid.uuid4().hex[:8]
    user = f"logs-{tag}"
    face = image_server.serve(f"/{tag}/face.png", fixture_bytes("Tom_Hanks_54745.png"))
    hop = image_server.redirect(f"/{tag}/hop", "http://127.0.0.1/x.png?token=SECRET-2#SECRET-3")
    signed = [f"{face}?X-Signature=SECRET-1#frag-SECRET-4", f"{hop}?sig=SECRET-5"]

    results = [await client.register(user, body(url)) for url in signed]

    assert "FaceId" in results[0] and results[1]["Code"] == "InvalidParameter.ImageUrl"
    stored = await service.database["persons"].find_one({"owner": user})
    embedding_values = {repr(v) for v in stored["images"][0]["embedding"][:8]}
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any(user in line for line in lines)  # the run was logged at all
    for line in lines:
        assert "SECRET" not in line, line
        assert not any(value in line for value in embedding_values), line
