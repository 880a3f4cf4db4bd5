"""Unreadable command records, copied as they came to the dead-letter topic."""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from service.domain.errors import Rejected, TransientError
from service.service_layer.intake import IncomingRecord

log = logging.getLogger(__name__)

# Under Kafka's default max.message.bytes (1 MiB) with room for the headers: a record
# just under the broker's limit must not make a copy the broker refuses.
MAX_COPY_BYTES = 512 * 1024


def dead_letter_copy(
    record: IncomingRecord, refusal: Rejected, max_bytes: int = MAX_COPY_BYTES
) -> tuple[bytes, dict[str, str]]:
    value = record.value or b""
    headers = {
        "dlq-reason": refusal.message,
        "dlq-code": refusal.code.value,
        "dlq-source-topic": record.topic,
        "dlq-source-partition": str(record.partition),
        "dlq-source-offset": str(record.offset),
    }
    if len(value) > max_bytes:
        headers["dlq-truncated-from-bytes"] = str(len(value))
        value = value[:max_bytes]
    return value, headers


class KafkaDeadLetters:
    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        value, headers = dead_letter_copy(record, refusal)
        try:
            await self._broker.publish(value, topic=self._topic, key=record.key, headers=headers)
        except KafkaError as error:
            if error.retriable:
                raise TransientError(f"publishing to {self._topic} failed: {error!r}") from error
            # Trying again would fail again and hold the partition: the record keeps its
            # error result, and stays on the commands topic for its retention.
            log.error(
                "dead-letter copy refused by the broker",
                extra={
                    "error": type(error).__name__,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
        except OSError as error:
            raise TransientError(f"publishing to {self._topic} failed: {error!r}") from error


class DiscardingDeadLetters:
    """For replays: the live run copied these records already."""

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        return None
