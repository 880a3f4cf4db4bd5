"""The largest face event the service publishes fits one record of the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from service.adapters.result_publisher import KafkaJsonPublisher
from service.contracts.messages import FacesUnregistered
from service.contracts.record_size import MAX_MESSAGE_BYTES, message_bytes
from service.domain.errors import MessageTooLarge
from service.entrypoints.service_app import Service
from tests.support.suite_kafka import create_topics


def unregistered(faces: int) -> FacesUnregistered:
    return FacesUnregistered(
        Owner="event-size-user",
        RequestId=str(uuid.uuid4()),
        CategoryId="Huge-Library",
        PersonId="ALL",
        FaceId="ALL",
        FaceIds=tuple(uuid.uuid4().hex for _ in range(faces)),
        KeyIds=(),
        UnregisteredAt=datetime.now(UTC),
    )


def largest_allowed() -> FacesUnregistered:
    faces = 27_000
    while message_bytes(unregistered(faces + 100)) <= MAX_MESSAGE_BYTES:
        faces += 100
    return unregistered(faces)


async def test_the_largest_event_allowed_is_published_and_one_larger_is_not(
    kafka: str, service: Service
) -> None:
    [topic] = (await create_topics(kafka, {"events": f"event-size-{uuid.uuid4().hex}"})).values()
    publisher = KafkaJsonPublisher(service.broker, topic)
    largest = largest_allowed()
    assert MAX_MESSAGE_BYTES - 4_000 < message_bytes(largest) <= MAX_MESSAGE_BYTES

    await publisher.publish(largest.Owner, largest)

    # What the refusal of a larger library prevents: a record the producer never sends,
    # for which a command could only wait.
    with pytest.raises(MessageTooLarge, match="FacesUnregistered"):
        await publisher.publish(largest.Owner, unregistered(len(largest.FaceIds) + 5_000))
