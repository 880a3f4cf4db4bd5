"""Kafka clients connected before anything heavy starts, waiting for a broker still starting:
the service's KafkaBroker (its producer, with InitProducerId when idempotent, and its admin
client) before its subscribers, and a replay's consumer before its models."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl

from service.service_layer.startup import OutOfTime, retry_until


class BrokerUnreachable(Exception):
    """No broker answered in time; the message is the last reason aiokafka gave."""


class ProducerIdRefused(Exception):
    """The broker answered InitProducerId with an error: no idempotent producer here."""


async def connect_broker(
    broker: KafkaBroker, within_s: float, on_retry: Callable[[str, float], None]
) -> None:
    """`broker.connect()`, which starts no subscriber (`broker.start()` does that later,
    and finds the broker connected), tried again while the broker cannot be reached.
    `on_retry(reason, pause_s)` hears of each retry."""
    await _until_connected(lambda: _connect_once(broker), within_s, on_retry)


async def start_consumer(consumer: AIOKafkaConsumer, within_s: float) -> None:
    """`consumer.start()`, tried again while the broker cannot be reached."""

    async def start_once() -> None:
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # a failed start leaves its client open otherwise
            raise

    await _until_connected(start_once, within_s, lambda _reason, _pause_s: None)


async def _until_connected(
    attempt: Callable[[], Awaitable[None]],
    within_s: float,
    on_retry: Callable[[str, float], None],
) -> None:
    with _reasons_from_aiokafka() as reasons:
        try:
            await retry_until(
                lambda _left_s: attempt(),
                within_s=within_s,
                retry_on=(KafkaConnectionError,),
                on_retry=lambda error, pause_s: on_retry(reasons.last or str(error), pause_s),
            )
        except OutOfTime as error:
            raise BrokerUnreachable(reasons.last or str(error.last)) from error


async def _connect_once(broker: KafkaBroker) -> None:
    """A failed attempt leaves nothing open, so it can be tried again."""
    config = broker.config.broker_config
    if not isinstance(config.producer, _ProducerClosedOnFailedStart):
        # The producer's own parser and decoder serve only `request`, which Kafka does not
        # support, so none are lost here.
        config.producer = _ProducerClosedOnFailedStart(parser=None, decoder=None)
    try:
        await broker.connect()
    except BaseException:
        await broker.stop()  # the admin client, or a producer started before it failed
        raise


class _ProducerClosedOnFailedStart(AioKafkaFastProducerImpl):
    """aiokafka needs `stop()` after a failed `start()` (aio-libs/aiokafka#1130), and
    FastStream 0.7.8 drops the producer without it: its metadata task runs on, and its
    collection logs "Unclosed AIOKafkaProducer"."""

    __slots__ = ()

    async def connect(self, producer: Any, serializer: Any, codec: Any = None) -> None:
        try:
            await super().connect(producer, serializer, codec)
        except BaseException as error:
            await producer.stop()
            # start() is a bootstrap, which fails only with KafkaConnectionError, then the
            # InitProducerId of an idempotent producer: any other Kafka error is its answer.
            if isinstance(error, KafkaError) and not isinstance(error, KafkaConnectionError):
                raise ProducerIdRefused(str(error)) from error
            raise


class _LastReason(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


@contextmanager
def _reasons_from_aiokafka() -> Iterator[_LastReason]:
    """While start-up waits, aiokafka's errors ("Unable connect to ...: [Errno 111] ...")
    are expected: they become the reason in the service's own lines, not lines of theirs."""
    logger = logging.getLogger("aiokafka")
    reasons, propagate = _LastReason(), logger.propagate
    logger.addHandler(reasons)
    logger.propagate = False
    try:
        yield reasons
    finally:
        logger.removeHandler(reasons)
        logger.propagate = propagate
