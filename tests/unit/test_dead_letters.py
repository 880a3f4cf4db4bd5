from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from service.adapters.dead_letters import KafkaDeadLetters, dead_letter_copy
from service.domain.errors import ErrorCode, TransientError
from service.service_layer.intake import IncomingRecord, Unreadable

RECORD = IncomingRecord("cmds", 3, 41, 0, b"user-1", b"x" * 100)
REFUSAL = Unreadable(ErrorCode.INVALID_MESSAGE, "the record value is not JSON")


def test_the_copy_carries_the_reason_and_the_source_position() -> None:
    value, headers = dead_letter_copy(RECORD, REFUSAL)
    assert value == RECORD.value
    assert headers == {
        "dlq-reason": "the record value is not JSON",
        "dlq-code": "InvalidParameter.Message",
        "dlq-source-topic": "cmds",
        "dlq-source-partition": "3",
        "dlq-source-offset": "41",
    }


def test_a_copy_too_large_for_the_broker_is_cut_and_says_so() -> None:
    value, headers = dead_letter_copy(RECORD, REFUSAL, max_bytes=10)
    assert value == b"x" * 10
    assert headers["dlq-truncated-from-bytes"] == "100"


class RefusingBroker:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def publish(self, *_: Any, **__: Any) -> None:
        raise self.error


async def test_a_copy_the_broker_will_never_take_does_not_hold_the_partition() -> None:
    letters = KafkaDeadLetters(RefusingBroker(MessageSizeTooLargeError()), "dlq")  # type: ignore[arg-type]
    await letters.send(RECORD, REFUSAL)  # logged, not raised: no endless redo


async def test_a_broker_that_may_come_back_is_retried() -> None:
    letters = KafkaDeadLetters(RefusingBroker(KafkaConnectionError()), "dlq")  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        await letters.send(RECORD, REFUSAL)
