"""A client of the service over Kafka: produce commands, read results."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.adapters.topic_reader import known_partitions


@dataclass(frozen=True)
class RegisterRequest:
    user: str
    category_id: str
    person_id: str
    image_url: str
    person_name: str | None
    request_id: str

    def command(self) -> dict[str, str]:
        body = {
            "RequestId": self.request_id,
            "CategoryId": self.category_id,
            "PersonId": self.person_id,
            "ImageUrl": self.image_url,
        }
        if self.person_name is not None:
            body["PersonName"] = self.person_name
        return body


async def register(
    bootstrap: str,
    commands_topic: str,
    results_topic: str,
    request: RegisterRequest,
    wait_s: float | None,
) -> dict[str, Any]:
    """Produce the command; with `wait_s`, return its result, else what was sent."""
    results = None
    if wait_s is not None:
        # Positioned at the end before producing, so the result cannot slip past unseen.
        results = await _consumer_at_end(bootstrap, results_topic)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                commands_topic,
                json.dumps(request.command(), ensure_ascii=False).encode("utf-8"),
                key=request.user.encode("utf-8"),
            )
        finally:
            await producer.stop()
        if results is None or wait_s is None:
            return request.command()
        async with asyncio.timeout(wait_s):
            async for record in results:
                value = _json(record.value)
                if value.get("RequestId") == request.request_id:
                    return value
        raise TimeoutError
    finally:
        if results is not None:
            await results.stop()


async def follow_results(bootstrap: str, topic: str, from_beginning: bool) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for record in consumer:
            line = {
                "key": record.key.decode("utf-8", "replace") if record.key else None,
                "partition": record.partition,
                "offset": record.offset,
                "value": _json(record.value),
            }
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        await consumer.stop()


async def _consumer_at_end(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = await _wait_for_partitions(consumer, topic)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_end(*assigned)
    for partition in assigned:
        await consumer.position(partition)
    return consumer


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    async with asyncio.timeout(10):
        while True:
            if partitions := await known_partitions(consumer, topic):
                return partitions
            await asyncio.sleep(0.2)  # a topic being created: metadata has no notification


def _json(value: bytes | None) -> dict[str, Any]:
    try:
        decoded = json.loads(value or b"")
    except ValueError:
        return {"raw": (value or b"").decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else {"raw": decoded}
