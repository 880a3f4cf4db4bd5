"""A user's commands must sit on the partition their key maps to: the limiter and the order of
a person's commands are kept per partition, so a record elsewhere is refused before it counts."""

from __future__ import annotations

import json

import pytest

from service.bootstrap import bootstrap
from service.domain.errors import ErrorCode
from service.domain.partitioning import key_partition
from service.entrypoints.consumer import partition_count
from service.metrics import LiveCounts, service_registry
from service.service_layer.handling import Decision
from service.service_layer.intake import IncomingRecord
from service.service_layer.outcome import Outcome
from service.settings import Settings
from tests.fakes import (
    CountingAnalyser,
    CountingFetcher,
    RecordingDeadLetters,
    RecordingPublisher,
    memory_stores,
)

PARTITIONS = 4
USER = b"user-1"
HOME = key_partition(USER, PARTITIONS)
AWAY = (HOME + 1) % PARTITIONS
NOW_MS = 1_700_000_000_000
BODY = {"CategoryId": "Cat-1", "PersonId": "p1", "ImageUrl": "https://img.example/a.jpg"}


def record(
    partition: int,
    offset: int = 0,
    key: bytes | None = USER,
    partition_count: int | None = PARTITIONS,
) -> IncomingRecord:
    value = json.dumps(BODY).encode()
    return IncomingRecord("cmds", partition, offset, NOW_MS, key, value, partition_count)


class Intake:
    """The real wiring, with fakes of the ports: records decided, refusals answered."""

    def __init__(self, limit: int = 100, check_key_partition: bool = True) -> None:
        self.results = RecordingPublisher()
        self.dead_letters = RecordingDeadLetters()
        settings = Settings(
            rate_limit_per_second=limit,
            kafka_check_key_partition=check_key_partition,
            max_command_bytes=4096,
        )
        self.handling = bootstrap(
            settings,
            stores=memory_stores(),
            fetcher=CountingFetcher(),
            analyser=CountingAnalyser(),
            results=self.results,
            events=RecordingPublisher(),
            dead_letters=self.dead_letters,
            weights_sha256="sha",
        )

    def jobs(self, *records: IncomingRecord) -> list[Decision]:
        return self.handling.decide(records)

    async def refusal(self, record: IncomingRecord) -> Outcome:
        [decision] = self.jobs(record)
        assert decision.scope is None, "admitted, not refused"
        answer = await decision.work()
        await self.handling.deliver(answer)
        return answer.outcome


def admitted(decision: Decision) -> bool:
    return decision.scope is not None


def mismatches_counted() -> float:
    registry = service_registry(LiveCounts(lambda: 0, lambda: 0))
    return registry.get_sample_value("face_register_partition_mismatches_total") or 0.0


def test_a_record_on_the_partition_of_its_key_is_admitted() -> None:
    [job] = Intake().jobs(record(HOME))
    assert admitted(job)


async def test_a_record_on_another_partition_is_refused_naming_both_partitions_and_the_fix() -> (
    None
):
    before = mismatches_counted()
    intake = Intake()

    outcome = await intake.refusal(record(AWAY))

    assert outcome.code is ErrorCode.INVALID_PARTITION
    assert outcome.code.http_status == 400
    assert f"on partition {AWAY} of cmds" in outcome.message
    assert f"belongs on partition {HOME} of {PARTITIONS}" in outcome.message
    assert "partitioner=murmur2_random" in outcome.message
    assert "by hand" in outcome.message
    [result] = intake.results.dumps()
    assert result["Code"] == "InvalidParameter.Partition"
    assert result["HttpStatusCode"] == 400
    assert mismatches_counted() == before + 1


async def test_a_misplaced_record_is_answered_but_not_dead_lettered() -> None:
    intake = Intake()
    await intake.refusal(record(AWAY))
    assert intake.dead_letters.sent == []


def test_a_misplaced_record_is_refused_before_the_limiter_counts_it() -> None:
    intake = Intake(limit=1)
    # Both at one timestamp: had the misplaced one been counted, the second would be throttled.
    misplaced, home = intake.jobs(record(AWAY, offset=0), record(HOME, offset=0))
    assert not admitted(misplaced)
    assert admitted(home)


async def test_a_user_over_the_limit_is_still_told_the_record_is_misplaced() -> None:
    intake = Intake(limit=1)
    [first] = intake.jobs(record(HOME, offset=0))
    assert admitted(first)
    outcome = await intake.refusal(record(AWAY, offset=1))
    assert outcome.code is ErrorCode.INVALID_PARTITION


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe"])
async def test_a_record_without_a_usable_key_is_refused_for_its_key_first(
    key: bytes | None,
) -> None:
    # Whatever partition a raw key would map to, none of these is on it.
    for partition in range(PARTITIONS):
        if key and key_partition(key, PARTITIONS) == partition:
            continue
        outcome = await Intake().refusal(record(partition, key=key))
        assert outcome.code is ErrorCode.INVALID_USER_ID


def test_with_the_check_off_a_misplaced_record_is_admitted() -> None:
    [job] = Intake(check_key_partition=False).jobs(record(AWAY))
    assert admitted(job)


def test_a_record_whose_partition_count_is_unknown_is_not_checked() -> None:
    [job] = Intake().jobs(record(AWAY, partition_count=None))
    assert admitted(job)


def test_the_check_is_on_unless_an_operator_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().kafka_check_key_partition is True
    monkeypatch.setenv("KAFKA_CHECK_KEY_PARTITION", "false")
    assert Settings().kafka_check_key_partition is False


class MetadataOf:
    def __init__(self, partitions: set[int] | None) -> None:
        self._partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._partitions


@pytest.mark.parametrize(("known", "count"), [({0, 1, 2, 3, 4, 5}, 6), (set(), None), (None, None)])
def test_the_edge_reads_the_partition_count_from_the_consumers_metadata(
    known: set[int] | None, count: int | None
) -> None:
    assert partition_count(MetadataOf(known), "cmds") == count
