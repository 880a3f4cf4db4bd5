"""MongoDB away for a while in the middle of a run: retried, never an error result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from service.domain.commands import RegisterFace
from service.domain.errors import TransientError
from service.domain.person import FaceImage, Person
from service.entrypoints.service_app import Service
from service.service_layer.ports import PersonStore
from tests.support import suite_kafka
from tests.support.image_server import ImageServer
from tests.support.images import tom_variants
from tests.support.kafka_client import CommandClient
from tests.support.settings import service_settings


class StoreOutage:
    """Wraps the real store; while `down` is set, every call fails as MongoDB would."""

    def __init__(self, inner: PersonStore) -> None:
        self.inner = inner
        self.down = asyncio.Event()
        self.refused_calls = 0

    def _check(self) -> None:
        if self.down.is_set():
            self.refused_calls += 1
            raise TransientError("MongoDB failed: ServerSelectionTimeoutError (injected)")

    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None:
        self._check()
        return await self.inner.get_person(owner, category_key, person_key)

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage:
        self._check()
        return await self.inner.add_image(command, image)

    async def restore(self, command: RegisterFace, image: FaceImage) -> bool:
        self._check()
        return await self.inner.restore(command, image)


@pytest_asyncio.fixture
async def outage_setup(
    kafka: str, deepface_home: Path, image_server: ImageServer
) -> AsyncIterator[tuple[StoreOutage, CommandClient]]:
    topics = await suite_kafka.create_topics(kafka, suite_kafka.topic_names())
    settings = service_settings(
        kafka, topics, deepface_home, image_server, retry_attempts=12, retry_base_delay_s=0.1
    )
    wrapped: list[StoreOutage] = []

    def wrap(store: PersonStore) -> PersonStore:
        wrapped.append(StoreOutage(store))
        return wrapped[0]

    async with Service(settings, wrap_store=wrap).running():
        client = CommandClient(kafka, topics["commands"], topics["results"], topics["events"])
        await client.start()
        yield wrapped[0], client
        await client.stop()


async def test_a_store_outage_delays_commands_but_fails_none(
    outage_setup: tuple[StoreOutage, CommandClient], image_server: ImageServer
) -> None:
    outage, client = outage_setup
    urls = [image_server.serve(f"/outage/{i}.jpg", d) for i, d in enumerate(tom_variants())]
    users = [f"outage-user-{i}" for i in range(4)]

    outage.down.set()
    ids = [
        await client.send(users[i % 4], {"CategoryId": "c", "PersonId": "p", "ImageUrl": url})
        for i, url in enumerate(urls)
    ]
    await asyncio.sleep(3)
    assert not any(r in client.results for r in ids), "answered while the store was down"
    outage.down.clear()

    results = await client.results_for(ids, timeout_s=120)

    assert outage.refused_calls > 0
    codes = [results[r].get("Code", "OK") for r in ids]
    assert "InternalError" not in codes
    assert codes.count("OK") >= 12
