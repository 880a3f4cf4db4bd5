"""Publishing results: a broker hiccup is retried; a broker that stays away fails the batch,
so its offsets are not committed and it is processed again later."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from service.adapters.dead_letters import DiscardingDeadLetters
from service.domain.errors import TransientError
from service.service_layer.batch import CommandBatchProcessor, PartitionThrottle
from service.service_layer.intake import IncomingRecord
from service.service_layer.register import RegisterFaceHandler
from service.service_layer.retry import RetriesExhausted, RetryPolicy


class FlakyPublisher:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.published: list[BaseModel] = []

    async def publish(self, owner: str | None, message: BaseModel) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise TransientError("publishing failed: KafkaConnectionError")
        self.published.append(message)


def processor(results: FlakyPublisher, attempts: int) -> CommandBatchProcessor:
    return CommandBatchProcessor(
        handler=RegisterFaceHandler.__new__(RegisterFaceHandler),  # never reached here
        throttle=PartitionThrottle(100),
        results=results,
        events=FlakyPublisher(0),
        dead_letters=DiscardingDeadLetters(),
        retry=RetryPolicy(attempts=attempts, base_delay_s=0),
        system_category_keys=set(),
        max_command_bytes=4096,
    )


NOT_JSON = IncomingRecord("cmds", 0, 5, 0, b"user-1", b"not json")


async def test_a_failed_publish_is_retried_and_the_result_published_once() -> None:
    results = FlakyPublisher(failures=2)
    await processor(results, attempts=3).process([NOT_JSON])
    assert [r.model_dump()["Code"] for r in results.published] == ["InvalidParameter.Message"]


async def test_a_broker_that_stays_away_fails_the_batch_instead_of_dropping_the_result() -> None:
    results = FlakyPublisher(failures=100)
    with pytest.raises(ExceptionGroup) as failed:
        await processor(results, attempts=3).process([NOT_JSON])
    assert failed.group_contains(RetriesExhausted)
    assert results.published == []
