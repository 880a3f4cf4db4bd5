"""Read the face events topic from the beginning to its current end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from service.contracts.messages import FaceRegistered

log = logging.getLogger(__name__)


async def read_face_events(
    bootstrap_servers: str, topic: str, partitions: Collection[int] | None = None
) -> AsyncIterator[FaceRegistered]:
    """Every event of `partitions` (all when None) written before the call, in log order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        existing = consumer.partitions_for_topic(topic) or set()
        chosen = [
            TopicPartition(topic, p)
            for p in sorted(existing)
            if partitions is None or p in partitions
        ]
        if not chosen:
            return
        consumer.assign(chosen)
        await consumer.seek_to_beginning(*chosen)
        end = await consumer.end_offsets(chosen)
        remaining = {tp for tp in chosen if end[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp]:
                        event = _decode(record.value, tp, record.offset)
                        if event is not None:
                            yield event
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


def _decode(value: bytes | None, tp: TopicPartition, offset: int) -> FaceRegistered | None:
    try:
        return FaceRegistered.model_validate(json.loads(value or b""))
    except (ValueError, ValidationError):
        log.error(
            "skipped an undecodable face event",
            extra={"partition": tp.partition, "offset": offset},
        )
        return None
