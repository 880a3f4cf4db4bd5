"""The person store through the MongoDB driver: mongomock-motor here, a real MongoDB when
MONGODB_URI is set. The same tests, unchanged, for both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from service.adapters.person_store import MongoPersonStore
from service.domain.commands import RegisterFace
from service.domain.errors import ErrorCode, Rejected
from service.domain.faces import Box
from service.domain.person import FaceImage, ModelProvenance
from tests.support.commands import register_face

PROVENANCE = ModelProvenance(model="Dlib", detector="mtcnn", weights_sha256="ab" * 32)


def command(
    request_id: str,
    owner: str = "user-1",
    category: str = "Cat-1",
    person: str = "P1",
    name: str | None = "Ann",
) -> RegisterFace:
    return register_face(request_id, owner, category, person, name)


def image(cmd: RegisterFace, sha: str | None = None) -> FaceImage:
    return FaceImage(
        face_id=cmd.face_id,
        request_id=cmd.request_id,
        image_url=cmd.image_url,
        image_sha256=sha or f"sha-of-{cmd.request_id}",
        embedding=tuple(float(i) / 128 for i in range(128)),
        box=Box(10, 20, 100, 120),
        provenance=PROVENANCE,
        created_at=datetime.now(UTC),
    )


@pytest.fixture
async def store(database: Any) -> MongoPersonStore:
    store = MongoPersonStore(database)
    await store.ensure_indexes()
    return store


async def test_an_added_image_is_stored_with_everything_needed_later(
    store: MongoPersonStore, database: Any
) -> None:
    cmd = command("R1")
    stored = await store.add_image(cmd, image(cmd))
    assert stored.face_id == cmd.face_id
    document = await database["persons"].find_one({"owner": "user-1"})
    assert (document["category_id"], document["person_id"]) == ("Cat-1", "P1")
    assert document["person_name"] == "Ann"
    assert document["created_at"] and document["updated_at"]
    [saved] = document["images"]
    assert saved["face_id"] == cmd.face_id and saved["request_id"] == "R1"
    assert len(saved["embedding"]) == 128
    assert saved["box"] == {"x": 10, "y": 20, "w": 100, "h": 120}
    assert (saved["model"], saved["detector"]) == ("Dlib", "mtcnn")
    assert saved["weights_sha256"] == "ab" * 32
    assert saved["image_sha256"] == "sha-of-R1"


async def test_ids_differing_in_case_reach_one_person(store: MongoPersonStore) -> None:
    first, second = (
        command("R1", category="Cat-1", person="P1"),
        command("R2", category="cat-1", person="p1"),
    )
    await store.add_image(first, image(first))
    await store.add_image(second, image(second))
    person = await store.get_person("user-1", "cat-1", "p1")
    assert person is not None and len(person.images) == 2
    assert person.category_id == "Cat-1"


async def test_the_same_request_twice_stores_one_image(store: MongoPersonStore) -> None:
    cmd = command("R1")
    first = await store.add_image(cmd, image(cmd))
    again = await store.add_image(cmd, image(cmd))
    person = await store.get_person(*cmd.person_ref)
    assert person is not None and len(person.images) == 1
    assert again.face_id == first.face_id


async def test_the_same_image_bytes_again_return_the_existing_face(
    store: MongoPersonStore,
) -> None:
    first, second = command("R1"), command("R2")
    await store.add_image(first, image(first, sha="same-bytes"))
    existing = await store.add_image(second, image(second, sha="same-bytes"))
    assert existing.face_id == first.face_id
    person = await store.get_person(*first.person_ref)
    assert person is not None and len(person.images) == 1


async def test_concurrent_registrations_never_exceed_ten_images(
    store: MongoPersonStore,
) -> None:
    commands = [command(f"R{i}") for i in range(13)]
    outcomes = await asyncio.gather(
        *(store.add_image(c, image(c)) for c in commands), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, Rejected)]
    assert len(refused) == 3
    assert {r.code for r in refused} == {ErrorCode.FACE_LIMIT_EXCEEDED}
    person = await store.get_person(*commands[0].person_ref)
    assert person is not None and len(person.images) == 10


async def test_two_owners_with_the_same_ids_have_separate_persons(
    store: MongoPersonStore,
) -> None:
    for i in range(10):
        cmd = command(f"A{i}", owner="alice")
        await store.add_image(cmd, image(cmd))
    bob = command("B1", owner="bob")
    await store.add_image(bob, image(bob))  # alice's full person does not count for bob
    alice_person = await store.get_person("alice", "cat-1", "p1")
    bob_person = await store.get_person("bob", "cat-1", "p1")
    assert alice_person is not None and len(alice_person.images) == 10
    assert bob_person is not None and [i.request_id for i in bob_person.images] == ["B1"]


async def test_a_later_person_name_replaces_the_earlier(store: MongoPersonStore) -> None:
    first, second = command("R1", name="Ann"), command("R2", name="Ann Lee")
    await store.add_image(first, image(first))
    await store.add_image(second, image(second))
    person = await store.get_person(*first.person_ref)
    assert person is not None and person.person_name == "Ann Lee"
