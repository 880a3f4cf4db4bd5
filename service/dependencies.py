"""What the service needs before it can take a command: its store opened, Kafka and
MongoDB answering. Each wait has the start-up time budget, and a failure says what to
change (`StartupFailed`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from faststream.kafka import KafkaBroker

from service.adapters import mongo
from service.adapters.broker_connection import (
    BrokerUnreachable,
    ProducerIdRefused,
    connect_broker,
)
from service.adapters.face_keys import FileFaceKeys, MongoFaceKeys
from service.adapters.journal import MongoJournal
from service.adapters.person_store import MongoPersonStore
from service.bootstrap import retry_policy
from service.service_layer.ports import FaceKeys, Stores
from service.service_layer.startup import StartupFailed
from service.settings import Settings

log = logging.getLogger("service")


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[tuple[Stores, Any]]:
    """The stores and their database, indexes created."""
    uri = settings.mongodb_uri.get_secret_value() if settings.mongodb_uri else None
    try:
        client, database = mongo.open_database(uri, settings.mongodb_database)
    except mongo.BadUri as error:
        raise StartupFailed(
            f"MONGODB_URI cannot be used: {error}",
            "correct MONGODB_URI (mongodb://host:port/... or mongodb+srv://... whose DNS "
            "records exist)",
        ) from error
    closing: list[Callable[[], None]] = []
    try:
        if uri is None:
            log.warning("no MONGODB_URI: faces are kept in process memory and NOT persisted")
        else:
            await wait_for_mongodb(database, uri, settings)
        persons, journal = MongoPersonStore(database), MongoJournal(database)
        for indexed in (persons, journal):
            await retry_policy(settings).run(indexed.ensure_indexes)
        keys: FaceKeys
        if uri is None:
            file_keys = FileFaceKeys(
                settings.embedded_face_keys_file, synced=not settings.uses_embedded_kafka
            )
            closing.append(file_keys.close)
            keys = file_keys
        else:
            mongo_keys = MongoFaceKeys(database)
            await retry_policy(settings).run(mongo_keys.ensure_indexes)
            keys = mongo_keys
        yield Stores(persons=persons, journal=journal, keys=keys), database
    finally:
        for close in closing:
            close()
        client.close()


async def wait_for_kafka(broker: KafkaBroker, settings: Settings) -> None:
    """The broker's producer and admin client connected, waiting for a broker that is
    still starting; its subscribers do not start here."""
    servers = settings.bootstrap_servers
    try:
        await connect_broker(
            broker,
            settings.startup_timeout_s,
            on_retry=lambda reason, pause_s: log.info(
                "Kafka does not answer yet",
                extra={
                    "bootstrap_servers": servers,
                    "reason": reason,
                    "retry_in_s": round(pause_s, 2),
                },
            ),
        )
    except BrokerUnreachable as error:
        raise kafka_unreachable(settings, str(error)) from error
    except ProducerIdRefused as error:
        raise StartupFailed(
            f"the Kafka broker at {servers} refused InitProducerId ({error}): "
            "it does not offer idempotent producers",
            "set KAFKA_ENABLE_IDEMPOTENCE=false to start without the idempotent producer",
        ) from error


def kafka_unreachable(settings: Settings, last: str) -> StartupFailed:
    return StartupFailed(
        f"Kafka at {settings.bootstrap_servers} did not answer within "
        f"{settings.startup_timeout_s:g} s (last: {last})",
        "check KAFKA_BOOTSTRAP_SERVERS and that the broker runs and is reachable from here; "
        "STARTUP_TIMEOUT_S sets how long start-up waits",
    )


async def wait_for_mongodb(database: Any, uri: str, settings: Settings) -> None:
    """MongoDB answers a ping, waiting for a server that is still starting."""
    hosts = mongo.hosts(uri)
    try:
        await mongo.wait_for_ping(
            database,
            settings.startup_timeout_s,
            on_retry=lambda pause_s: log.info(
                "MongoDB does not answer yet",
                extra={"hosts": hosts, "retry_in_s": round(pause_s, 2)},
            ),
        )
    except mongo.MongoUnreachable as error:
        raise StartupFailed(
            f"MongoDB at {hosts} did not answer within {settings.startup_timeout_s:g} s"
            + (f" (last: {error})" if str(error) else ""),
            "check MONGODB_URI and that MongoDB runs and is reachable from here; "
            "STARTUP_TIMEOUT_S sets how long start-up waits",
        ) from error
    except mongo.MongoRefused as error:
        raise StartupFailed(
            f"MongoDB at {hosts} refused the service: {error}",
            "check the user, password and authSource in MONGODB_URI, and the user's roles "
            "on MONGODB_DATABASE",
        ) from error
