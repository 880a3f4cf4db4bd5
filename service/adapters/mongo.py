"""The MongoDB database handle: a real server through motor, or the in-process engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymongo
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from service.domain.errors import TransientError
from service.service_layer.startup import OutOfTime, retry_until


def open_database(uri: str | None, database: str) -> tuple[Any, Any]:
    """(client, database). With no URI, mongomock-motor: same driver calls, no persistence."""
    if uri is None:
        from service.adapters.embedded_mongo import embedded_client

        client: Any = embedded_client()
    else:
        from motor.motor_asyncio import AsyncIOMotorClient

        try:
            client = AsyncIOMotorClient(uri, tz_aware=True)
        except (ConfigurationError, ValueError) as error:  # pymongo's words for a bad URI
            raise BadUri(_without_password(str(error), uri)) from error
    return client, client[database]


class BadUri(Exception):
    """MONGODB_URI cannot make a client; the message never holds the password."""


def _without_password(text: str, uri: str) -> str:
    password = _authority(uri)[0].partition(":")[2]
    return text.replace(password, "***") if password else text


def _authority(uri: str) -> tuple[str, str]:
    """(user:password, host:port list) of a MongoDB URI."""
    authority = uri.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    userinfo, _, hosts = authority.rpartition("@")
    return userinfo, hosts


class MongoUnreachable(Exception):
    """No MongoDB server answered a ping in time; the message, if any, says why."""


class MongoRefused(Exception):
    """A server answered, but refused: bad credentials, or a user without rights."""


async def wait_for_ping(database: Any, within_s: float, on_retry: Callable[[float], None]) -> None:
    """A `ping` answered, tried again while no server can be reached (within one attempt
    the driver itself keeps looking for a server). `on_retry(pause_s)` hears of each retry."""
    try:
        await retry_until(
            lambda left_s: _ping(database, left_s),
            within_s=within_s,
            # A mongodb+srv URI is resolved at the first use: its DNS may still be coming up.
            retry_on=(ConnectionFailure, ConfigurationError),
            on_retry=lambda _error, pause_s: on_retry(pause_s),
        )
    except OutOfTime as error:
        # The driver's own reason only where it says more than "no server": a DNS answer.
        last = str(error.last) if isinstance(error.last, ConfigurationError) else ""
        raise MongoUnreachable(last) from error
    except OperationFailure as error:
        # The server's own words ("Authentication failed."): they never hold the password.
        raise MongoRefused(str(error.details.get("errmsg") if error.details else error)) from error


async def _ping(database: Any, timeout_s: float) -> None:
    with pymongo.timeout(timeout_s):
        await database.command("ping")


def hosts(uri: str) -> str:
    """The host:port list of a MongoDB URI, without its user and password."""
    return _authority(uri)[1]


class transient_on_driver_errors:
    """Driver failures (unreachable server, failover, timeouts) may pass: they become
    TransientError, which is retried. A duplicate key is an answer, not a failure."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, _tb: Any) -> None:
        # None, not bool: it never swallows, and mypy then knows a return inside is one.
        if (
            kind is not None
            and issubclass(kind, PyMongoError)
            and not isinstance(error, DuplicateKeyError)
        ):
            raise TransientError(f"MongoDB failed {self._doing}: {type(error).__name__}") from error
