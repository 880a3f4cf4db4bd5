"""Real parts for the tests: a Tansu broker over the wire, a local image server, and a store
on mongomock-motor, or on the MongoDB that `MONGODB_URI` names."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from service.adapters.embedded_kafka import EmbeddedKafka, ensure_topics
from service.adapters.mongo import open_database
from tests.support.image_server import ImageServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture(scope="session")
async def kafka() -> AsyncIterator[str]:
    broker = EmbeddedKafka("127.0.0.1", free_port())
    await broker.start()
    yield broker.bootstrap_servers
    await broker.stop()


@pytest_asyncio.fixture(scope="session")
async def topics(kafka: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "commands": f"commands-{suffix}",
        "results": f"results-{suffix}",
        "events": f"events-{suffix}",
        "dlq": f"dlq-{suffix}",
    }
    await ensure_topics(kafka, list(names.values()), partitions=4)
    return names


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deepface_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deepface-home")


def mongodb_uri() -> str | None:
    return os.environ.get("MONGODB_URI") or None


@pytest_asyncio.fixture
async def database() -> AsyncIterator[Any]:
    """A fresh database per test, through the driver the service uses."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    client, database = open_database(mongodb_uri(), name)
    yield database
    if mongodb_uri():
        await client.drop_database(name)
    client.close()
