"""Unreadable command records, copied as they came to the dead-letter topic."""

from __future__ import annotations

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from service.domain.errors import Rejected, TransientError
from service.service_layer.intake import IncomingRecord


def dead_letter_headers(record: IncomingRecord, refusal: Rejected) -> dict[str, str]:
    return {
        "dlq-reason": refusal.message,
        "dlq-code": refusal.code.value,
        "dlq-source-topic": record.topic,
        "dlq-source-partition": str(record.partition),
        "dlq-source-offset": str(record.offset),
    }


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        try:
            await self._broker.publish(
                record.value or b"",
                topic=self._topic,
                key=record.key,
                headers=dead_letter_headers(record, refusal),
            )
        except (KafkaError, OSError) as error:
            raise TransientError(f"publishing to {self._topic} failed: {error!r}") from error


class DiscardingDeadLetters:
    """For replays: the live run copied these records already."""

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        return None
