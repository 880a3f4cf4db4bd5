"""Results go to the results topic, keyed by the owner like the command."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from service.contracts.messages import RegisterResult


class KafkaResultPublisher:
    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def publish(self, owner: str | None, result: RegisterResult) -> None:
        await self._broker.publish(
            result.model_dump(mode="json"),
            topic=self._topic,
            key=owner.encode("utf-8") if owner is not None else None,
            headers={"result-type": type(result).__name__},
        )
