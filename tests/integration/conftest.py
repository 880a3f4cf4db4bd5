from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from service.adapters.model_weights import PlacedWeights, place_weights
from service.entrypoints.service_app import Service
from tests.conftest import mongodb_uri
from tests.support.image_server import ImageServer
from tests.support.kafka_client import CommandClient
from tests.support.settings import service_settings

IMAGE_MAX_BYTES = 2_000_000


@pytest.fixture(scope="session")
def placed_weights(deepface_home: Path) -> PlacedWeights:
    """The Dlib and mtcnn weights with every graph built from them, as a service places them."""
    placed = place_weights(deepface_home, "Dlib", "mtcnn")
    assert placed.model_weights is not None and placed.model_graph is not None
    assert placed.detector_graphs is not None
    return placed


@pytest_asyncio.fixture(scope="session")
async def service(
    kafka: str, topics: dict[str, str], deepface_home: Path, image_server: ImageServer
) -> AsyncIterator[Service]:
    settings = service_settings(
        kafka,
        topics,
        deepface_home,
        image_server,
        image_max_bytes=IMAGE_MAX_BYTES,
        image_total_timeout_s=5,
        image_first_byte_timeout_s=2,
        retry_attempts=2,
        retry_base_delay_s=0.01,
        inference_workers=2,
    )
    async with Service(settings).running() as running:
        yield running
        if mongodb_uri():
            await running.database.client.drop_database(settings.mongodb_database)


@pytest_asyncio.fixture(scope="session")
async def client(service: Service) -> AsyncIterator[CommandClient]:
    settings = service.settings
    client = CommandClient(
        settings.bootstrap_servers,
        settings.commands_topic,
        settings.results_topic,
        settings.events_topic,
        settings.dlq_topic,
    )
    await client.start()
    yield client
    await client.stop()
