"""Replay and backfill: the log alone rebuilds the live store, with the very same FaceIds,
and nothing unregistered comes back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from service.adapters.event_log import read_face_events
from service.adapters.journal import MongoJournal
from service.adapters.mongo import open_database
from service.adapters.person_store import MongoPersonStore
from service.adapters.sealing import SealBroken, associated_data, open_sealed
from service.contracts.face_events import opened
from service.contracts.messages import FaceRegistered
from service.domain.ids import derive_face_id
from service.entrypoints.replay import Progress, StartAt, replay_commands, replay_events
from service.entrypoints.service_app import Service
from service.service_layer.ports import FaceKeys, Stores
from service.settings import Settings
from tests.support import suite_kafka
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes, small_no_face, tom_variants
from tests.support.kafka_client import CommandClient
from tests.support.settings import service_settings


@dataclass
class LiveRun:
    settings: Settings
    live_database: Any
    keys: FaceKeys
    results: dict[str, dict[str, Any]]
    raw_results: dict[str, bytes]
    unregistered: list[str]  # FaceIds
    topics: dict[str, str]


async def empty_stores(keys: FaceKeys) -> tuple[Stores, Any]:
    """An empty store and journal, with the keys the service has (as after a restart)."""
    _client, database = open_database(None, f"replay_{uuid.uuid4().hex[:8]}")
    persons, journal = MongoPersonStore(database), MongoJournal(database)
    await persons.ensure_indexes()
    await journal.ensure_indexes()
    return Stores(persons, journal, keys), database


async def library(database: Any) -> list[tuple[Any, ...]]:
    """Libraries, persons and their images in order, as a user of the store would compare
    them; embeddings too."""
    persons = [p async for p in database["persons"].find({})]
    libraries = [
        (c["owner"], c["category_key"], c["category_id"], c.get("name"), c.get("description"))
        async for c in database["libraries"].find({})
    ]
    return sorted(libraries) + sorted(
        (
            p["owner"],
            p["category_key"],
            p["person_key"],
            p["category_id"],
            p["person_id"],
            p["person_name"],
            p["person_description"],
            [
                (i["face_id"], i["request_id"], i["image_sha256"], i["box"], i["embedding"])
                for i in p["images"]
            ],
        )
        for p in persons
    )


async def send_mixed_workload(
    client: CommandClient, server: ImageServer
) -> tuple[list[str], list[str]]:
    """The RequestIds sent, and the FaceIds the workload unregisters."""
    tag = uuid.uuid4().hex[:6]
    faces = [server.serve(f"/{tag}/f{i}.jpg", d) for i, d in enumerate(tom_variants())]
    no_face = server.serve(f"/{tag}/no-face.jpg", small_no_face())
    group = server.serve(f"/{tag}/group.jpg", fixture_bytes("t1.jpg"))
    alice, bob, carol = (f"{name}-{tag}" for name in ("alice", "bob", "carol"))
    ids = []
    start = int(time.time() * 1000)
    sent_by: dict[str, int] = {}

    async def command(user: str, body: dict[str, Any]) -> str:
        # Four a second: under this run's limit of five.
        sent_by[user] = sent_by.get(user, 0) + 1
        ids.append(await client.send(user, body, timestamp_ms=start + 250 * sent_by[user]))
        return ids[-1]

    async def send(user: str, person: str, url: str, **extra: Any) -> str:
        body = {"CategoryId": "Lib", "PersonId": person, "ImageUrl": url, **extra}
        return await command(user, body)

    def unregister(person: str, face: str) -> dict[str, Any]:
        return {
            "Action": "UnregisterCustomFace",
            "CategoryId": "Lib",
            "PersonId": person,
            "FaceId": face,
        }

    for i in range(3):
        await send(alice, "Ann", faces[i], PersonName="Ann")
    await send(alice, "ann", faces[0])  # same bytes again, other case
    await send(alice, "Ann", no_face)
    await send(alice, "Ann", group)
    await send(alice, "Ann", "ftp://example.com/a.jpg")
    await send(alice, "ALL", faces[1])
    for i in range(8):  # eight inside one second: over the limit of five
        body = {"CategoryId": "Lib", "PersonId": "Bo", "ImageUrl": faces[4]}
        ids.append(await client.send(bob, body, timestamp_ms=start + i * 20))
    bobs_first = ids[-8]
    carols = [await send(carol, "Full", faces[i]) for i in range(12)]
    # FaceIds are derived from the RequestIds: the client knows them before the results.
    first, second = (derive_face_id(carol, "lib", "full", r) for r in carols[:2])
    await command(carol, unregister("Full", first.upper()))
    await command(carol, unregister("Full", first))  # gone by now: NotFound.Face
    await send(carol, "Full", faces[11])  # the freed place
    await command(carol, unregister("Full", second))
    await command(carol, {"Action": "ListCustomPersons", "MaxResults": 1})
    await command(
        alice,
        {
            "Action": "TagCustomPerson",
            "CategoryId": "lib",
            "PersonId": "ANN",
            "CategoryName": "L",
            "PersonDescription": "first",
        },
    )
    await command(alice, {"Action": "ListCustomPersons", "CategoryId": "LIB"})
    await command(bob, unregister("ALL", "ALL"))
    await command(bob, {"Action": "ListCustomPersons"})
    # Bob's first call registered his one face; the others were throttled or the same bytes.
    return ids, [first, second, derive_face_id(bob, "lib", "bo", bobs_first)]


@pytest_asyncio.fixture(scope="module")
async def live_run(
    kafka: str, deepface_home: Path, image_server: ImageServer
) -> AsyncIterator[LiveRun]:
    names = suite_kafka.topic_names("commands", "results", "events", "dlq", "replayed")
    # The workload sets the call times the limiter judges, so the broker must keep them.
    topics = await suite_kafka.create_topics(kafka, names, commands_log_append_time=False)
    settings = service_settings(kafka, topics, deepface_home, image_server, rate_limit_per_second=5)
    async with Service(settings).running() as service:
        client = CommandClient(kafka, topics["commands"], topics["results"])
        await client.start()
        ids, unregistered = await send_mixed_workload(client, image_server)
        results = await client.results_for(ids, timeout_s=180)
        await client.stop()
        assert service.stores is not None
        raw = {r: client.raw_results[r][0] for r in ids}
        yield LiveRun(
            settings, service.database, service.stores.keys, results, raw, unregistered, topics
        )


async def test_the_live_run_covers_every_kind_of_outcome(live_run: LiveRun) -> None:
    codes = {r.get("Code", "OK") for r in live_run.results.values()}
    assert codes >= {
        "OK",
        "InvalidImage.NoFace",
        "InvalidImage.MultipleFaces",
        "InvalidParameter.ImageUrl",
        "InvalidParameter.PersonId",
        "Throttling.User",
        "FaceLimitExceeded",
        "NotFound.Face",
    }
    unregistered = [r for r in live_run.results.values() if "UnregisteredFaceCount" in r]
    assert sorted(r["UnregisteredFaceCount"] for r in unregistered) == [1, 1, 1]
    listed = sorted(
        (json.dumps(r["Categories"]) for r in live_run.results.values() if "Categories" in r),
        key=len,
    )
    bobs, alices, carols = (json.loads(page) for page in listed)
    assert bobs == []
    [alices_library] = alices
    assert alices_library["CategoryName"] == "L"
    assert alices_library["Persons"][0]["PersonDescription"] == "first"
    [carols_library] = carols
    assert [len(p["Faces"]) for p in carols_library["Persons"]] == [9]
    faces = {f["FaceId"] for p in carols_library["Persons"] for f in p["Faces"]}
    assert not faces & set(live_run.unregistered)


async def test_replaying_the_events_into_an_empty_store_rebuilds_the_live_store(
    live_run: LiveRun,
) -> None:
    stores, database = await empty_stores(live_run.keys)
    lines: list[str] = []

    counts = await replay_events(live_run.settings, stores, Progress(None, lines.append))

    assert await library(database) == await library(live_run.live_database)
    assert counts["unregistered"] == 3 and counts["tagged"] == 1
    assert lines and "records" in lines[-1]
    rebuilt = str(await library(database))
    assert all(face not in rebuilt for face in live_run.unregistered)


async def test_the_events_topic_holds_no_readable_embedding_of_a_removed_face(
    live_run: LiveRun,
) -> None:
    sealed = [
        e
        async for e in read_face_events(
            live_run.settings.bootstrap_servers, live_run.topics["events"]
        )
        if isinstance(e, FaceRegistered)
    ]
    readable, unreadable = [], []
    for event in sealed:
        key = await live_run.keys.find(event.Owner, event.FaceId)
        if key is None:
            unreadable.append(event.FaceId)
        else:
            _command, image = opened(event, key, None)
            readable.append(image.face_id)
    # And no key the service still has opens a removed face's event.
    for event in (e for e in sealed if e.FaceId in live_run.unregistered):
        for other in {e.FaceId for e in sealed} - set(live_run.unregistered):
            key = await live_run.keys.find(event.Owner, other)
            with pytest.raises(SealBroken):
                open_sealed(
                    key or b"\0" * 32, associated_data(event.Owner, event.FaceId), event.Sealed
                )

    assert sorted(unreadable) == sorted(live_run.unregistered)
    assert len(readable) == len(set(readable)) > 10


async def test_replaying_the_commands_reproduces_the_store_and_every_result(
    live_run: LiveRun, kafka: str
) -> None:
    stores, database = await empty_stores(live_run.keys)
    replayed = CommandClient(kafka, live_run.topics["commands"], live_run.topics["replayed"])
    await replayed.start()
    try:
        counts = await replay_commands(
            live_run.settings,
            stores,
            StartAt(),
            group_id=f"replay-{uuid.uuid4().hex[:6]}",
            results_topic=live_run.topics["replayed"],
        )
        await replayed.results_for(list(live_run.results), timeout_s=60)
        raw = {r: replayed.raw_results[r][0] for r in live_run.results}
    finally:
        await replayed.stop()

    # Byte for byte: the unregistrations and lists too.
    assert raw == live_run.raw_results
    assert sum(counts.values()) == len(live_run.results)
    assert counts["Throttling.User"] == 3
    assert await library(database) == await library(live_run.live_database)
