"""The Kafka edge: each poll of command records handed on, offsets committed when told.

FastStream stays here. The handler takes the raw records and decodes them itself, so a
record that is not JSON, or carries odd headers, is a refusal and never a crashed batch.
Records finish out of order, so FastStream does not acknowledge anything: the pipeline
commits each partition's position through the consumer itself.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from service.entrypoints.command_flow import Commit
from service.service_layer.intake import IncomingRecord
from service.settings import Settings

# How long a poll waits for records; it returns as soon as some arrive. FastStream's own
# poll then sleeps as long again when it found nothing, which a command reaching an idle
# service waited out (at 50 ms, a third of a lone portrait's time outside inference; at 5,
# 1.25 ms on average and 200 wake-ups a second): `_poll_without_sleeping` replaces it.
IDLE_POLL_MS = 100

BatchHandler = Callable[[Sequence[IncomingRecord], Commit], Awaitable[object]]
PartitionsChanged = Callable[[set[int]], Awaitable[None]]


class CommandPartitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partition-scoped state moves with the partition: aiokafka awaits these callbacks
    before it fetches from newly assigned partitions."""

    def __init__(self, topic: str, assigned: PartitionsChanged, revoked: PartitionsChanged) -> None:
        self._topic = topic
        self._assigned = assigned
        self._revoked = revoked

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._assigned({tp.partition for tp in assigned if tp.topic == self._topic})

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked({tp.partition for tp in revoked if tp.topic == self._topic})


async def _parse_without_headers(
    records: tuple[ConsumerRecord[Any, Any], ...], original: Callable[..., Awaitable[Any]]
) -> Any:
    # Commands carry nothing we read in headers, and FastStream decodes every header as
    # UTF-8: one binary header would otherwise fail the whole batch.
    return await original(tuple(dataclasses.replace(r, headers=()) for r in records))


def incoming_record(
    record: ConsumerRecord[bytes, bytes], partition_count: int | None
) -> IncomingRecord:
    return IncomingRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        partition_count=partition_count,
    )


def partition_count(consumer: AIOKafkaConsumer, topic: str) -> int | None:
    """The topic's partition count in the consumer's metadata: the one the producers'
    partitioners divide by. None if the metadata does not know the topic."""
    return len(consumer.partitions_for_topic(topic) or ()) or None


def committer(consumer: AIOKafkaConsumer, topic: str) -> Commit:
    """Commits the topic's partitions at the positions given, through this consumer."""

    async def commit(positions: dict[int, int]) -> None:
        await consumer.commit({TopicPartition(topic, p): o for p, o in positions.items()})

    return commit


def _no_body_decoding(_message: Any) -> None:
    return None


def _poll_without_sleeping(subscriber: Any, max_records: int) -> None:
    """FastStream's batch poll, less its sleep after a poll that found nothing."""

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        batches = await consumer.getmany(timeout_ms=IDLE_POLL_MS, max_records=max_records)
        return tuple(itertools.chain.from_iterable(batches.values()))

    subscriber.get_msg = get_msg


def subscribe_commands(
    broker: KafkaBroker, settings: Settings, handle: BatchHandler, listener: CommandPartitions
) -> Any:
    """The commands topic's subscriber, handing each poll's records to `handle`."""
    subscriber = broker.subscriber(
        settings.commands_topic,
        group_id=settings.kafka_group_id,
        batch=True,
        max_records=settings.max_records_in_flight,
        batch_timeout_ms=IDLE_POLL_MS,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        parser=_parse_without_headers,
        decoder=_no_body_decoding,
        include_in_schema=False,
        listener=listener,
    )
    _poll_without_sleeping(subscriber, settings.max_records_in_flight)

    @subscriber
    async def on_commands(message: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[bytes, bytes], ...] = message.raw_message
        consumer: AIOKafkaConsumer = message.consumer
        count = partition_count(consumer, settings.commands_topic)
        commit = committer(consumer, settings.commands_topic)
        await handle([incoming_record(r, count) for r in records], commit)

    return subscriber
