"""Read topic partitions from where a consumer stands up to offsets fixed in advance."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def known_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, from the consumer's own metadata.

    A consumer that is assigned partitions by hand keeps metadata only for topics it was
    told of: `topics()` fetches every topic's but does not keep it (Tansu's answer to the
    bootstrap request held every topic; Apache Kafka's holds none).
    """
    await consumer._client.add_topic(topic)  # aiokafka has no public call for this
    return set(consumer.partitions_for_topic(topic) or ())


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, only: Collection[int] | None = None
) -> list[TopicPartition]:
    existing = await known_partitions(consumer, topic)
    return [TopicPartition(topic, p) for p in sorted(existing) if only is None or p in only]


async def read_to_end(
    consumer: AIOKafkaConsumer,
    end: dict[TopicPartition, int],
    max_records: int | None = None,
) -> AsyncIterator[list[ConsumerRecord[Any, Any]]]:
    """Batches of the records before `end`; records written later are left unread."""
    remaining = {tp for tp in end if await consumer.position(tp) < end[tp]}
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
        batch = [r for tp, records in fetched.items() for r in records if r.offset < end[tp]]
        if batch:
            yield batch
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
