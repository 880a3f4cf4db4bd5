"""The Kafka edge: a batch of command records in, one use-case call, offsets committed after.

FastStream stays here. The handler takes the raw records and decodes them itself, so a
record that is not JSON, or carries odd headers, is a refusal and never a crashed batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from service.service_layer.intake import IncomingRecord
from service.settings import Settings

BatchHandler = Callable[[Sequence[IncomingRecord]], Awaitable[object]]
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


def incoming_record(record: ConsumerRecord[bytes, bytes]) -> IncomingRecord:
    return IncomingRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
    )


def _no_body_decoding(_message: Any) -> None:
    return None


def subscribe_commands(
    broker: KafkaBroker, settings: Settings, handle: BatchHandler, listener: CommandPartitions
) -> None:
    @broker.subscriber(
        settings.commands_topic,
        group_id=settings.kafka_group_id,
        batch=True,
        max_records=settings.max_records_in_flight,
        batch_timeout_ms=50,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        auto_offset_reset="earliest",
        # The batch is committed only after every record in it has its result published;
        # anything raised (a result that could not be published) rewinds the batch.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_parse_without_headers,
        decoder=_no_body_decoding,
        include_in_schema=False,
        listener=listener,
    )
    async def on_commands(message: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[bytes, bytes], ...] = message.raw_message
        await handle([incoming_record(r) for r in records])
