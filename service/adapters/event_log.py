"""Read the face events topic from the beginning to its current end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from service.adapters.topic_reader import read_to_end, topic_partitions
from service.contracts.messages import FaceRegistered

log = logging.getLogger(__name__)


async def read_face_events(
    bootstrap_servers: str, topic: str, partitions: Collection[int] | None = None
) -> AsyncIterator[FaceRegistered]:
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
                event = _decode(record.value, record.partition, record.offset)
                if event is not None:
                    yield event
    finally:
        await consumer.stop()


def _decode(value: bytes | None, partition: int, offset: int) -> FaceRegistered | None:
    try:
        return FaceRegistered.model_validate(json.loads(value or b""))
    except (ValueError, ValidationError):
        log.error(
            "skipped an undecodable face event",
            extra={"partition": partition, "offset": offset},
        )
        return None
