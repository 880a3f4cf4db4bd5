"""Commands from a librdkafka client (confluent-kafka), as a team without Java would send them.

With Java's partitioner (`murmur2_random`) its commands land where aiokafka's do and are
answered alike; with librdkafka's default (`consistent_random`, CRC32), or a partition
chosen by hand, a user's record sits on another partition and is refused.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from service.domain.partitioning import key_partition
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes
from tests.support.kafka_client import CommandClient, new_request_id

# librdkafka cannot talk to the embedded Tansu broker (its ApiVersionRequest fails).
pytestmark = pytest.mark.apache_kafka


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def command(url: str, person: str = "P1") -> dict[str, Any]:
    return {
        "RequestId": new_request_id(),
        "CategoryId": "Cat-1",
        "PersonId": person,
        "ImageUrl": url,
    }


class LibrdkafkaClient:
    """A confluent-kafka producer, driven from a thread so the service's loop keeps running."""

    def __init__(self, bootstrap: str, topic: str, **config: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, **config})
        self._topic = topic

    def partition_count(self) -> int:
        metadata = self._producer.list_topics(self._topic, timeout=10)
        return len(metadata.topics[self._topic].partitions)

    async def send(self, user: str, body: dict[str, Any], partition: int | None = None) -> int:
        """Produce one command and wait for its delivery; returns its partition."""
        return await asyncio.to_thread(self._send, user, body, partition)

    def _send(self, user: str, body: dict[str, Any], partition: int | None) -> int:
        delivered: list[Message] = []
        failed: list[KafkaError] = []

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failed.append(error)
            else:
                delivered.append(message)

        options: dict[str, Any] = {} if partition is None else {"partition": partition}
        self._producer.produce(
            self._topic,
            key=user.encode(),
            value=json.dumps(body).encode(),
            on_delivery=report,
            **options,
        )
        assert self._producer.flush(30) == 0, "not delivered within 30 s"
        assert failed == [], failed
        [message] = delivered
        return int(message.partition())


def crc32_disagrees(users: list[str], partitions: int) -> list[str]:
    """Users whose key librdkafka's consistent_random (CRC32) puts elsewhere than murmur2."""
    return [
        user
        for user in users
        if zlib.crc32(user.encode()) % partitions != key_partition(user.encode(), partitions)
    ]


async def test_with_javas_partitioner_a_librdkafka_producer_is_answered_like_aiokafka(
    client: CommandClient, kafka: str, image_server: ImageServer
) -> None:
    producer = LibrdkafkaClient(kafka, client.commands_topic, partitioner="murmur2_random")
    user = new_user()
    url = image_server.serve(
        "/librdkafka-astronaut.png", fixture_bytes("astronaut.png"), content_type="image/png"
    )
    from_librdkafka = command(url, person="P1")
    from_aiokafka = command(url, person="P2")

    partition = await producer.send(user, from_librdkafka)
    aiokafka_partition, _ = await client.send_raw(user.encode(), json.dumps(from_aiokafka).encode())

    assert partition == aiokafka_partition
    assert partition == key_partition(user.encode(), producer.partition_count())
    results = await client.results_for([from_librdkafka["RequestId"], from_aiokafka["RequestId"]])
    assert all("FaceId" in result for result in results.values()), results


async def test_librdkafkas_default_partitioner_puts_users_on_a_partition_that_is_refused(
    client: CommandClient, kafka: str
) -> None:
    producer = LibrdkafkaClient(kafka, client.commands_topic)  # consistent_random: CRC32
    partitions = producer.partition_count()
    users = crc32_disagrees([new_user() for _ in range(40)], partitions)[:5]
    assert len(users) == 5
    bodies = {user: command("https://img.example/never-fetched.jpg") for user in users}

    landed = {user: await producer.send(user, body) for user, body in bodies.items()}

    assert landed == {user: zlib.crc32(user.encode()) % partitions for user in users}
    results = await client.results_for([body["RequestId"] for body in bodies.values()])
    for user, body in bodies.items():
        result = results[body["RequestId"]]
        assert result["Code"] == "InvalidParameter.Partition", result
        assert result["HttpStatusCode"] == 400
        expected = key_partition(user.encode(), partitions)
        assert f"on partition {landed[user]} of" in result["Message"]
        assert f"belongs on partition {expected} of {partitions}" in result["Message"]
        assert "partitioner=murmur2_random" in result["Message"]


async def test_a_record_sent_to_a_partition_chosen_by_hand_is_refused(
    client: CommandClient, kafka: str
) -> None:
    producer = LibrdkafkaClient(kafka, client.commands_topic, partitioner="murmur2_random")
    partitions = producer.partition_count()
    user = new_user()
    wrong = (key_partition(user.encode(), partitions) + 1) % partitions
    body = command("https://img.example/never-fetched.jpg")

    assert await producer.send(user, body, partition=wrong) == wrong

    result = await client.result(body["RequestId"])
    assert result["Code"] == "InvalidParameter.Partition", result
