"""Real parts for the tests: Apache Kafka over the wire (or Tansu, `TEST_KAFKA=tansu`), a
local image server, and a store on mongomock-motor, or on the MongoDB that `MONGODB_URI`
names. Nothing the suite starts outlives it (see `tests/support/reaper.py`)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from service.adapters.embedded_kafka import EmbeddedKafka
from service.adapters.mongo import open_database
from tests.support import apache_kafka, reaper, suite_kafka
from tests.support.image_server import ImageServer
from tests.support.ports import free_port

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_configure(config: pytest.Config) -> None:
    reaper.adopt_orphans()
    if suite_kafka.on_apache() and (missing := apache_kafka.missing_tools()):
        pytest.exit(
            apache_kafka.MISSING_TOOLS.format(
                version=apache_kafka.KAFKA_VERSION, missing=" and ".join(missing)
            ),
            returncode=2,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if suite_kafka.on_apache():
        return
    apache_only = [item for item in items if item.get_closest_marker("apache_kafka")]
    if apache_only:
        # Said, not hidden: these need a JVM, which TEST_KAFKA=tansu is for doing without.
        config.hook.pytest_deselected(items=apache_only)
        items[:] = [item for item in items if not item.get_closest_marker("apache_kafka")]
        sys.stderr.write(f"TEST_KAFKA=tansu: {len(apache_only)} Apache Kafka tests not run\n")


_broker_seconds: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _broker_seconds:
        return
    name = f"Apache Kafka {apache_kafka.KAFKA_VERSION}" if suite_kafka.on_apache() else "Tansu"
    jars = f"jars ready in {_broker_seconds['jars']:.1f} s, " if "jars" in _broker_seconds else ""
    terminalreporter.write_line(
        f"test broker: {name}, {jars}started in {_broker_seconds['start']:.1f} s"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    left = reaper.kill_leftovers()
    if left:
        # A test or fixture forgot to stop what it started: killed now, named here.
        sys.stderr.write(f"\nkilled processes the tests left running: {left}\n")


@pytest.fixture(scope="session", autouse=True)
def face_keys_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where every service of the run, in process or not, keeps its faces' keys when it has
    no MongoDB: in the run's temporary directory, not the user's home."""
    path = tmp_path_factory.mktemp("face-keys") / "face-keys.sqlite"
    before = os.environ.get("EMBEDDED_FACE_KEYS_FILE")
    os.environ["EMBEDDED_FACE_KEYS_FILE"] = str(path)
    yield path
    if before is None:
        del os.environ["EMBEDDED_FACE_KEYS_FILE"]
    else:
        os.environ["EMBEDDED_FACE_KEYS_FILE"] = before


@pytest_asyncio.fixture(scope="session")
async def broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[apache_kafka.ApacheKafka | EmbeddedKafka]:
    """The suite's broker: Apache Kafka, or Tansu with `TEST_KAFKA=tansu`."""
    started: apache_kafka.ApacheKafka | EmbeddedKafka
    began = time.perf_counter()
    if suite_kafka.on_apache():
        # Resolves the jars from Maven Central on the first run, finds them cached after.
        started = apache_kafka.ApacheKafka(tmp_path_factory.mktemp("apache-kafka"))
        _broker_seconds["jars"] = time.perf_counter() - began
    else:
        started = EmbeddedKafka("127.0.0.1", free_port())
    began = time.perf_counter()
    await started.start()
    _broker_seconds["start"] = time.perf_counter() - began
    yield started
    await started.stop()


@pytest_asyncio.fixture(scope="session")
async def kafka(broker: apache_kafka.ApacheKafka | EmbeddedKafka) -> str:
    """The bootstrap address of the suite's broker."""
    return broker.bootstrap_servers


@pytest_asyncio.fixture(scope="session")
async def topics(kafka: str) -> dict[str, str]:
    return await suite_kafka.create_topics(kafka, suite_kafka.topic_names())


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
