"""The embedded store's lookups by index answer exactly as mongomock's full scans do."""

from __future__ import annotations

import random
from typing import Any

import mongomock.filtering
import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, WriteError

from service.adapters.embedded_mongo import embedded_client

OWNERS = ["acme", "Acme", "globex", "ünïcode"]
LIBRARIES = ["stars", "crowd"]
PERSONS = ["p1", "p2", "p3"]


def _person(rng: random.Random) -> dict[str, Any]:
    return {
        "owner": rng.choice(OWNERS),
        "category_key": rng.choice(LIBRARIES),
        "person_key": rng.choice(PERSONS),
    }


def _query(rng: random.Random) -> dict[str, Any]:
    person = _person(rng)
    return rng.choice(
        [
            person,
            {"owner": person["owner"], "tags": f"t{rng.randrange(4)}"},
            {"_id": rng.randrange(40)},
            {"owner": person["owner"]},
            {"owner": person["owner"], "category_key": person["category_key"]},
            {**person, "images.0": {"$exists": True}},
            {"owner": person["owner"], "images.face_id": f"f{rng.randrange(6)}"},
            {"owner": person["owner"], "$or": [{"n": {"$gt": 3}}, {"person_key": "p1"}]},
            {"owner": {"$in": [person["owner"], "globex"]}},
            {"category_key": person["category_key"]},
            {},
        ]
    )


async def _apply(collection: Any, rng: random.Random, step: int) -> str:
    """One random write; what came of it, to compare between the two stores."""
    actions = ["insert", "upsert", "set", "move", "push", "replace", "delete", "array", "tags"]
    actions += ["upsert onto a taken _id", "_id changed", "fails halfway"]
    action = rng.choice(actions)
    person = _person(rng)
    try:
        if action == "insert":
            await collection.insert_one({"_id": step, **person, "images": [], "n": 0})
        elif action == "upsert":
            await collection.update_one(
                person, {"$setOnInsert": {"_id": step, "images": []}}, upsert=True
            )
        elif action == "set":
            await collection.update_many(_query(rng), {"$set": {"n": rng.randrange(6)}})
        elif action == "move":  # an indexed field changed in place
            field = rng.choice(["owner", "category_key", "person_key"])
            await collection.update_one(_query(rng), {"$set": {field: person[field]}})
        elif action == "push":
            image = {"face_id": f"f{rng.randrange(6)}"}
            await collection.update_one(person, {"$push": {"images": image}})
        elif action == "replace":
            await collection.replace_one(_query(rng), {**person, "images": [], "n": 9})
        elif action == "delete":
            await collection.delete_one(_query(rng))
        elif action == "array":  # an array where a string is indexed: equal to each
            await collection.insert_one({"_id": step, **person, "owner": ["acme", "globex"]})
        elif action == "tags":  # an indexed array of strings, as erased_face_ids
            tags = [f"t{rng.randrange(4)}" for _ in range(rng.randrange(3))]
            await collection.update_one(_query(rng), {"$set": {"tags": tags}})
        elif action == "upsert onto a taken _id":
            taken = {"_id": rng.randrange(step + 1), **person}
            await collection.update_one(taken, {"$set": {"n": 1}}, upsert=True)
        elif action == "_id changed":
            await collection.update_one(
                {"_id": rng.randrange(step + 1)}, {"$set": {"_id": rng.randrange(step + 1)}}
            )
        else:  # the first operator applied, the second refused: mongomock keeps the first
            update = {"$set": {"owner": person["owner"]}, "$pop": {"n": 1}}
            await collection.update_one(_query(rng), update)
    except (DuplicateKeyError, WriteError, KeyError) as error:  # KeyError: $pop of no field
        return f"{action}: {type(error).__name__}"
    return action


async def _found(collection: Any, query: dict[str, Any]) -> list[Any]:
    # In mongomock's order: it decides which document an update_one changes.
    return [repr(sorted(d.items())) async for d in collection.find(query)]


async def _indexes(collection: Any) -> None:
    await collection.create_index(
        [("owner", ASCENDING), ("category_key", ASCENDING), ("person_key", ASCENDING)],
        unique=True,
        name="person_identity",
    )
    await collection.create_index(
        [("owner", ASCENDING), ("images.face_id", ASCENDING)], name="owner_face_id"
    )
    await collection.create_index([("owner", ASCENDING), ("tags", ASCENDING)], name="tags")


async def test_every_query_finds_what_a_full_scan_finds_through_random_writes() -> None:
    scanned = AsyncMongoMockClient(tz_aware=True)["db"]["persons"]
    indexed = embedded_client()["db"]["persons"]
    for collection in (scanned, indexed):
        await _indexes(collection)
    rng = random.Random(20261130)
    for step in range(600):
        state = rng.getstate()
        expected = await _apply(scanned, rng, step)
        rng.setstate(state)
        assert await _apply(indexed, rng, step) == expected, f"step {step}"
        for _ in range(4):
            query = _query(rng)
            assert await _found(indexed, query) == await _found(scanned, query), (step, query)
        if step == 300:  # indexes dropped and made again over what is stored
            outcomes = []
            for collection in (scanned, indexed):
                await collection.drop_indexes()
                try:  # a failed update may have left two persons alike: unique refused
                    await _indexes(collection)
                    outcomes.append("made")
                except DuplicateKeyError:
                    outcomes.append("duplicate")
            assert outcomes[0] == outcomes[1]
    assert await indexed.count_documents({}) > 10  # the writes left a store worth querying


@pytest.mark.parametrize("persons", [10, 1000])
async def test_a_lookup_by_identity_tests_one_person_however_many_are_stored(
    persons: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = embedded_client()["db"]["persons"]
    await _indexes(collection)
    await collection.insert_many(
        [{"owner": "acme", "category_key": "stars", "person_key": f"p{i}"} for i in range(persons)]
    )
    tested = 0
    applies = mongomock.filtering.filter_applies

    def counting(query: Any, document: Any) -> bool:
        nonlocal tested
        tested += 1
        return bool(applies(query, document))

    monkeypatch.setattr("service.adapters.embedded_mongo.filter_applies", counting)
    identity = {"owner": "acme", "category_key": "stars", "person_key": "p7"}
    found = await collection.find_one(identity)
    assert found is not None and found["person_key"] == "p7"
    assert tested == 1
