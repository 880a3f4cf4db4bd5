"""JSON messages to a Kafka topic, keyed by the owner like the command."""

from __future__ import annotations

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from service.domain.errors import MessageTooLarge, TransientError


class KafkaJsonPublisher:
    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def publish(self, owner: str | None, message: BaseModel) -> None:
        try:
            await self._broker.publish(
                message.model_dump(mode="json"),
                topic=self._topic,
                key=owner.encode("utf-8") if owner is not None else None,
                headers={"message-type": type(message).__name__},
            )
        except MessageSizeTooLargeError as error:
            raise MessageTooLarge(f"{type(message).__name__} to {self._topic}: {error}") from error
        except (KafkaError, OSError) as error:
            raise TransientError(f"publishing to {self._topic} failed: {error!r}") from error


class DiscardingPublisher:
    """For replays that must not write to the live topics."""

    async def publish(self, owner: str | None, message: BaseModel) -> None:
        return None
