"""The MongoDB database handle: a real server through motor, or the in-process engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure

from service.service_layer.startup import OutOfTime, retry_until


def open_database(uri: str | None, database: str) -> tuple[Any, Any]:
    """(client, database). With no URI, mongomock-motor: same driver calls, no persistence."""
    if uri is None:
        from mongomock_motor import AsyncMongoMockClient

        client: Any = AsyncMongoMockClient(tz_aware=True)
    else:
        from motor.motor_asyncio import AsyncIOMotorClient

        client = AsyncIOMotorClient(uri, tz_aware=True)
    return client, client[database]


class MongoUnreachable(Exception):
    """No MongoDB server answered a ping in time."""


class MongoRefused(Exception):
    """A server answered, but refused: bad credentials, or a user without rights."""


async def wait_for_ping(database: Any, within_s: float, on_retry: Callable[[float], None]) -> None:
    """A `ping` answered, tried again while no server can be reached (within one attempt
    the driver itself keeps looking for a server). `on_retry(pause_s)` hears of each retry."""
    try:
        await retry_until(
            lambda left_s: _ping(database, left_s),
            within_s=within_s,
            retry_on=(ConnectionFailure,),
            on_retry=lambda _error, pause_s: on_retry(pause_s),
        )
    except OutOfTime as error:
        raise MongoUnreachable(f"no answer within {within_s:g} s") from error
    except OperationFailure as error:
        # The server's own words ("Authentication failed."): they never hold the password.
        raise MongoRefused(str(error.details.get("errmsg") if error.details else error)) from error


async def _ping(database: Any, timeout_s: float) -> None:
    with pymongo.timeout(timeout_s):
        await database.command("ping")


def hosts(uri: str) -> str:
    """The host:port list of a MongoDB URI, without its user and password."""
    authority = uri.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    return authority.rpartition("@")[2]
