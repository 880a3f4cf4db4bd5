"""The commands subscriber's poll. FastStream's batch poll sleeps as long as it waited
whenever it found nothing, and a command reaching an idle service waited that sleep out:
ours hands on what the consumer holds and never sleeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from service.entrypoints.command_flow import Commit
from service.entrypoints.consumer import IDLE_POLL_MS, CommandPartitions, subscribe_commands
from service.service_layer.intake import IncomingRecord
from service.settings import Settings

SETTINGS = Settings(max_records_in_flight=7)


class HeldRecords:
    """The one call a poll makes on aiokafka's consumer, answering from `polls` in turn."""

    def __init__(self, *polls: dict[Any, list[Any]]) -> None:
        self.polls = list(polls)
        self.calls: list[tuple[int, int | None]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        self.calls.append((timeout_ms, max_records))
        return self.polls.pop(0)


async def _handle(records: Sequence[IncomingRecord], commit: Commit) -> None:
    raise AssertionError("no poll here reaches the handler")


async def _nothing(partitions: set[int]) -> None:
    return None


def _subscriber() -> Any:
    # Never connected: the poll is called directly, on a stand-in consumer.
    broker = KafkaBroker("127.0.0.1:1")
    listener = CommandPartitions(SETTINGS.commands_topic, _nothing, _nothing)
    return subscribe_commands(broker, SETTINGS, _handle, listener)


def _record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=SETTINGS.commands_topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"user-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=6,
        serialized_value_size=2,
        headers=(),
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(anyio, "sleep", sleep)
    return slept


def test_the_poll_replaced_is_faststreams_own() -> None:
    # If FastStream renamed its poll, ours would be set and never called.
    subscriber = _subscriber()
    assert any("get_msg" in vars(cls) for cls in type(subscriber).__mro__)
    assert "get_msg" in vars(subscriber)


async def test_a_poll_that_finds_nothing_returns_at_once_without_sleeping(
    sleeps: list[float],
) -> None:
    consumer = HeldRecords({})
    assert await _subscriber().get_msg(consumer) == ()
    assert sleeps == []
    # It waits for records in the consumer, where they wake it the moment they arrive.
    assert consumer.calls == [(IDLE_POLL_MS, SETTINGS.max_records_in_flight)]


async def test_a_poll_hands_on_every_partition_s_records_in_order(sleeps: list[float]) -> None:
    first = [_record(0, 5), _record(0, 6)]
    second = [_record(3, 1)]
    consumer = HeldRecords({"p0": first, "p3": second})
    assert await _subscriber().get_msg(consumer) == (*first, *second)
    assert sleeps == []
