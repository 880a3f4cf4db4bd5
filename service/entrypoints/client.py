"""A client of the service over Kafka: produce commands, read results."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.adapters.topic_reader import known_partitions


@dataclass(frozen=True)
class CommandRequest:
    """One command: `body` is the record's value, `user` its key."""

    user: str
    body: Mapping[str, Any]

    def __post_init__(self) -> None:
        # The result is found by RequestId alone: without one there is nothing to wait for.
        if not isinstance(self.body.get("RequestId"), str) or not self.body["RequestId"]:
            raise ValueError("the command body needs a RequestId")

    @property
    def request_id(self) -> str:
        return str(self.body["RequestId"])


async def send_command(
    bootstrap: str,
    commands_topic: str,
    results_topic: str,
    request: CommandRequest,
    wait_s: float | None,
) -> dict[str, Any]:
    """Produce the command; with `wait_s`, return its result, else what was sent.

    TimeoutError when no result comes within `wait_s`."""
    results = None
    if wait_s is not None:
        # Positioned at the end before producing, so the result cannot slip past unseen.
        results = await _consumer_at_end(bootstrap, results_topic)
    try:
        await _produce(bootstrap, commands_topic, request)
        if results is None or wait_s is None:
            return dict(request.body)
        return await _result_of(results, request.request_id, wait_s)
    finally:
        if results is not None:
            await results.stop()


async def _produce(bootstrap: str, topic: str, request: CommandRequest) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            json.dumps(dict(request.body), ensure_ascii=False).encode("utf-8"),
            key=request.user.encode("utf-8"),
        )
    finally:
        await producer.stop()


async def _result_of(results: AIOKafkaConsumer, request_id: str, wait_s: float) -> dict[str, Any]:
    async with asyncio.timeout(wait_s):
        async for record in results:
            value = _json(record.value)
            if value.get("RequestId") == request_id:
                return value
    raise TimeoutError  # the consumer stopped: no result will come


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
    try:
        await consumer.start()
        partitions = await _wait_for_partitions(consumer, topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)
    except BaseException:
        await consumer.stop()
        raise
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
