"""The MongoDB database handle: a real server through motor, or the in-process engine."""

from __future__ import annotations

from typing import Any


def open_database(uri: str | None, database: str) -> tuple[Any, Any]:
    """(client, database). With no URI, mongomock-motor: same driver calls, no persistence."""
    if uri is None:
        from mongomock_motor import AsyncMongoMockClient

        client: Any = AsyncMongoMockClient(tz_aware=True)
    else:
        from motor.motor_asyncio import AsyncIOMotorClient

        client = AsyncIOMotorClient(uri, tz_aware=True)
    return client, client[database]
