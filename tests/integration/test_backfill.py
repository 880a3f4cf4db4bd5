"""Replay and backfill: the log alone rebuilds the live store, with the very same FaceIds."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from service.adapters.mongo import open_database
from service.adapters.person_store import MongoPersonStore
from service.bootstrap import Service
from service.entrypoints.replay import Progress, StartAt, replay_commands, replay_events
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
    results: dict[str, dict[str, Any]]
    topics: dict[str, str]


async def empty_store() -> tuple[MongoPersonStore, Any]:
    _client, database = open_database(None, f"replay_{uuid.uuid4().hex[:8]}")
    store = MongoPersonStore(database)
    await store.ensure_indexes()
    return store, database


async def library(database: Any) -> list[tuple[Any, ...]]:
    """Persons and their images in order, as a user of the store would compare them."""
    persons = [p async for p in database["persons"].find({})]
    return sorted(
        (
            p["owner"],
            p["category_key"],
            p["person_key"],
            p["category_id"],
            p["person_id"],
            p["person_name"],
            [(i["face_id"], i["request_id"], i["image_sha256"], i["box"]) for i in p["images"]],
        )
        for p in persons
    )


async def send_mixed_workload(client: CommandClient, server: ImageServer) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    faces = [server.serve(f"/{tag}/f{i}.jpg", d) for i, d in enumerate(tom_variants())]
    no_face = server.serve(f"/{tag}/no-face.jpg", small_no_face())
    group = server.serve(f"/{tag}/group.jpg", fixture_bytes("t1.jpg"))
    alice, bob, carol = (f"{name}-{tag}" for name in ("alice", "bob", "carol"))
    ids = []
    start = int(time.time() * 1000)
    sent_by: dict[str, int] = {}

    async def send(user: str, person: str, url: str, **extra: Any) -> None:
        # Four a second: under this run's limit of five.
        sent_by[user] = sent_by.get(user, 0) + 1
        body = {"CategoryId": "Lib", "PersonId": person, "ImageUrl": url, **extra}
        ids.append(await client.send(user, body, timestamp_ms=start + 250 * sent_by[user]))

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
    for i in range(12):
        await send(carol, "Full", faces[i])
    return ids


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
        ids = await send_mixed_workload(client, image_server)
        results = await client.results_for(ids, timeout_s=180)
        await client.stop()
        yield LiveRun(settings, service.database, results, topics)


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
    }


async def test_replaying_the_events_into_an_empty_store_rebuilds_the_live_store(
    live_run: LiveRun,
) -> None:
    store, database = await empty_store()
    lines: list[str] = []

    counts = await replay_events(live_run.settings, store, Progress(None, lines.append))

    assert await library(database) == await library(live_run.live_database)
    assert counts["stored"] == sum(len(p[-1]) for p in await library(database))
    assert lines and "records" in lines[-1]


async def test_replaying_the_commands_reproduces_the_store_and_every_result(
    live_run: LiveRun, kafka: str
) -> None:
    store, database = await empty_store()
    replayed = CommandClient(kafka, live_run.topics["commands"], live_run.topics["replayed"])
    await replayed.start()
    try:
        counts = await replay_commands(
            live_run.settings,
            store,
            StartAt(),
            group_id=f"replay-{uuid.uuid4().hex[:6]}",
            results_topic=live_run.topics["replayed"],
        )
        results = await replayed.results_for(list(live_run.results), timeout_s=60)
    finally:
        await replayed.stop()

    assert results == live_run.results
    assert sum(counts.values()) == len(live_run.results)
    assert counts["Throttling.User"] == 3
    assert await library(database) == await library(live_run.live_database)
