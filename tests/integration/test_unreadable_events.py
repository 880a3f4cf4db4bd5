"""A face events topic the service cannot read: its in-process store is not rebuilt, and
the service says so and takes no command, instead of serving part of a library."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiokafka import AIOKafkaProducer

from service.entrypoints.service_app import Service
from tests.support import suite_kafka
from tests.support.image_server import ImageServer
from tests.support.settings import service_settings


class Heard(logging.Handler):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message, self.record = message, asyncio.Event()
        self.extra: dict[str, object] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.extra = dict(record.__dict__)
            self.record.set()


async def test_a_legacy_event_stops_the_rebuild_and_the_service_says_why(
    kafka: str, deepface_home: Path, image_server: ImageServer
) -> None:
    names = suite_kafka.topic_names("commands", "results", "events", "dlq")
    topics = await suite_kafka.create_topics(kafka, names)
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        # A FaceRegistered as an older version wrote it: no Type, the embedding in clear.
        legacy = b'{"Owner": "u", "FaceId": "0123456789abcdef0123456789abcdef", "Embedding": [0.1]}'
        sent = await producer.send_and_wait(topics["events"], legacy, key=b"u")
    finally:
        await producer.stop()
    heard = Heard("cannot rebuild the store from the face events: no command is taken")
    logging.getLogger("service").addHandler(heard)
    try:
        settings = service_settings(kafka, topics, deepface_home, image_server)
        async with Service(settings).running() as service:
            async with asyncio.timeout(120):
                await heard.record.wait()
            checks = await service.readiness()
    finally:
        logging.getLogger("service").removeHandler(heard)

    assert checks["store"] is False
    assert f"partition {sent.partition}, offset {sent.offset}" in str(heard.extra["error"])
