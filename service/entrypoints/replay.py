"""`face-service replay`: rebuild or backfill a store from the log.

`--source events` applies the face events (no fetch, no inference). `--source commands`
processes the commands topic again with a consumer group of its own, through the same
pipeline as the live service; throttling is decided from the records' timestamps, so a
replay from the beginning decides exactly as the live run did.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from service.adapters.broker_connection import BrokerUnreachable, start_consumer
from service.adapters.dead_letters import DiscardingDeadLetters
from service.adapters.event_log import read_face_events
from service.adapters.result_publisher import DiscardingPublisher, KafkaJsonPublisher
from service.adapters.topic_reader import read_to_end, topic_partitions
from service.bootstrap import open_pipeline, retry_policy
from service.dependencies import kafka_unreachable, wait_for_kafka
from service.entrypoints.command_flow import CommandFlow, Commit
from service.entrypoints.consumer import committer, incoming_record, partition_count
from service.service_layer.handling import Answer
from service.service_layer.intake import IncomingRecord
from service.service_layer.ports import MessagePublisher, Stores
from service.service_layer.restore import apply_face_events
from service.settings import Settings


@dataclass(frozen=True)
class StartAt:
    """Where a commands replay starts: the beginning, a time, or offsets per partition."""

    since: datetime | None = None
    offsets: dict[int, int] | None = None


class Progress:
    """records done, rate and time left, on one line of stderr."""

    def __init__(self, total: int | None, out: Callable[[str], object] = sys.stderr.write) -> None:
        self.total, self.done, self._out = total, 0, out
        self._started = time.monotonic()
        self._shown = 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= 0.5 or self.done == self.total:
            self._shown = now
            self._out("\r" + self.line(now))

    def line(self, now: float) -> str:
        rate = self.done / max(now - self._started, 1e-6)
        if not self.total:
            return f"{self.done} records  {rate:.1f}/s"
        left = (self.total - self.done) / rate if rate else 0.0
        filled = int(30 * self.done / self.total)
        bar = "#" * filled + "." * (30 - filled)
        return f"[{bar}] {self.done}/{self.total} records  {rate:.1f}/s  {left:.0f}s left"

    def finish(self) -> None:
        self._out("\n")


async def replay_events(
    settings: Settings, stores: Stores, progress: Progress | None = None
) -> Counter[str]:
    events = read_face_events(settings.bootstrap_servers, settings.events_topic)
    advance = (lambda _kind: progress.advance()) if progress else None
    return await apply_face_events(events, stores, retry_policy(settings), advance)


async def replay_commands(
    settings: Settings,
    stores: Stores,
    start: StartAt,
    group_id: str,
    results_topic: str | None = None,
    events_topic: str | None = None,
    progress: Progress | None = None,
) -> Counter[str]:
    """Process the commands written before the call again; outcome codes counted.

    The records go through the service's own flow, so they wait for one another exactly
    as live ones do."""
    codes: Counter[str] = Counter()

    def answered(answer: Answer) -> None:
        codes[answer.outcome.code.value if answer.outcome.code else "OK"] += 1
        if progress is not None:
            progress.advance()

    # Kafka first, as the service does: the models load only once the broker answers.
    async with (
        _publishers(settings, results_topic, events_topic) as (results, events),
        _commands_consumer(settings, start, group_id, progress) as (batches, commit),
        open_pipeline(
            settings, stores, results=results, events=events, dead_letters=DiscardingDeadLetters()
        ) as pipeline,
    ):
        flow = CommandFlow(pipeline.handling, settings.max_records_in_flight, answered)
        try:
            async for records in batches:
                await flow.take(records, commit)
        finally:
            # Normally: every record finished and committed. After an error: the work
            # under way is stopped before the store and the consumer close.
            await flow.close(deadline_s=None if flow.failures == 0 else 0)
    if flow.failures:
        raise ReplayFailed(f"{flow.failures} records failed and were left uncommitted")
    return codes


class ReplayFailed(Exception):
    """Records whose work raised: not counted, not committed (see the log)."""


@asynccontextmanager
async def _publishers(
    settings: Settings, results_topic: str | None, events_topic: str | None
) -> AsyncIterator[tuple[MessagePublisher, MessagePublisher]]:
    if not results_topic and not events_topic:
        yield DiscardingPublisher(), DiscardingPublisher()
        return
    broker = KafkaBroker(
        settings.bootstrap_servers, enable_idempotence=settings.idempotent_producer
    )
    await wait_for_kafka(broker, settings)
    await broker.start()
    try:
        yield (
            KafkaJsonPublisher(broker, results_topic) if results_topic else DiscardingPublisher(),
            KafkaJsonPublisher(broker, events_topic) if events_topic else DiscardingPublisher(),
        )
    finally:
        await broker.stop()


@asynccontextmanager
async def _commands_consumer(
    settings: Settings, start: StartAt, group_id: str, progress: Progress | None
) -> AsyncIterator[tuple[AsyncIterator[list[IncomingRecord]], Commit]]:
    """The commands written before now, in batches, and the commit of their consumer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
    )
    try:
        await start_consumer(consumer, settings.startup_timeout_s)
    except BrokerUnreachable as error:
        raise kafka_unreachable(settings, str(error)) from error
    try:
        partitions = await topic_partitions(consumer, settings.commands_topic)
        consumer.assign(partitions)
        await _seek(consumer, partitions, start)
        end = await consumer.end_offsets(partitions)
        if progress is not None:
            begin = {tp: await consumer.position(tp) for tp in partitions}
            progress.total = sum(max(0, end[tp] - begin[tp]) for tp in partitions)
        topic = settings.commands_topic

        async def batches() -> AsyncIterator[list[IncomingRecord]]:
            async for batch in read_to_end(consumer, end, settings.max_records_in_flight):
                count = partition_count(consumer, topic)
                yield [incoming_record(r, count) for r in batch]

        yield batches(), committer(consumer, topic)
    finally:
        await consumer.stop()


async def _seek(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], start: StartAt
) -> None:
    if start.offsets is not None:
        for tp in partitions:
            consumer.seek(tp, start.offsets.get(tp.partition, 0))
    elif start.since is not None:
        found = await consumer.offsets_for_times(
            {tp: int(start.since.timestamp() * 1000) for tp in partitions}
        )
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else end[tp])
    else:
        await consumer.seek_to_beginning(*partitions)
