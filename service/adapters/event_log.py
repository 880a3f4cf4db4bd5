"""Read the face events topic from the beginning to its current end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from service.adapters.topic_reader import read_to_end, topic_partitions
from service.contracts.face_events import decode_event_json
from service.contracts.messages import FaceEvent


class UnreadableEvent(Exception):
    """An event of the log that is not one this service writes. A rebuild stops there: one
    that skipped it could bring back a face its unregistration was meant to remove."""


async def read_face_events(
    bootstrap_servers: str, topic: str, partitions: Collection[int] | None = None
) -> AsyncIterator[FaceEvent]:
    """Every event of `partitions` (all when None) written before the call, in log order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        chosen = await topic_partitions(consumer, topic, partitions)
        if not chosen:
            return
        consumer.assign(chosen)
        await consumer.seek_to_beginning(*chosen)
        async for batch in read_to_end(consumer, await consumer.end_offsets(chosen)):
            for record in batch:
                yield _decode(record.value, record.partition, record.offset)
    finally:
        await consumer.stop()


def _decode(value: bytes | None, partition: int, offset: int) -> FaceEvent:
    try:
        return decode_event_json(value or b"")
    except ValidationError as error:
        problem = error.errors()[0]
        raise UnreadableEvent(
            f"the face event at partition {partition}, offset {offset} cannot be read "
            f"({problem['msg']} at {'.'.join(str(p) for p in problem['loc']) or 'the top'})"
        ) from None
