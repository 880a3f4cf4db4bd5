"""The data keys of faces (crypto-shredding): in MongoDB, or in a local file in embedded mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bson import Binary
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from service.adapters.mongo import transient_on_driver_errors
from service.domain.errors import TransientError

COLLECTION = "face_keys"
KEY_BYTES = 32  # AES-256

_T = TypeVar("_T")


class MongoFaceKeys:
    """One document per (owner, face_id) holding its key.

    `database` is a motor database, or mongomock-motor's in the embedded mode: only calls
    both honour are used (equality-only upsert filters).
    """

    def __init__(self, database: Any) -> None:
        self._keys = database[COLLECTION]

    async def ensure_indexes(self) -> None:
        async with transient_on_driver_errors("creating the face key index"):
            await self._keys.create_index(
                [("owner", ASCENDING), ("face_id", ASCENDING)], unique=True, name="face_key"
            )

    async def key_for(self, owner: str, face_id: str) -> bytes:
        identity = {"owner": owner, "face_id": face_id}
        insert = {"key": Binary(os.urandom(KEY_BYTES)), "created_at": datetime.now(UTC)}
        async with transient_on_driver_errors("making a face key"):
            # Of concurrent first calls one inserts; the others either match its document
            # (so $setOnInsert leaves it) or lose the race on the unique index: then it exists.
            with contextlib.suppress(DuplicateKeyError):
                await self._keys.update_one(identity, {"$setOnInsert": insert}, upsert=True)
            document = await self._keys.find_one(identity)
        if document is None:
            raise TransientError("a face key was destroyed while it was made")
        return bytes(document["key"])

    async def find(self, owner: str, face_id: str) -> bytes | None:
        async with transient_on_driver_errors("reading a face key"):
            document = await self._keys.find_one({"owner": owner, "face_id": face_id})
        return bytes(document["key"]) if document else None

    async def destroy(self, owner: str, face_ids: Collection[str]) -> None:
        if not face_ids:
            return
        async with transient_on_driver_errors("destroying face keys"):
            await self._keys.delete_many({"owner": owner, "face_id": {"$in": list(face_ids)}})


class FileFaceKeys:
    """The keys in a SQLite file, for the embedded mode.

    There the store lives in process memory, but the embedded broker, and the sealed events
    on its topics, can outlive a restart of the service: the keys must outlive it too, or
    the events left on the log could never be read again.
    """

    def __init__(self, path: Path, synced: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created owner-only before SQLite opens it (its journal takes the same mode).
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(descriptor, 0o600)
        finally:
            os.close(descriptor)
        # One connection shared by the worker threads, one call at a time under the lock;
        # autocommit, so each statement is its own transaction unless BEGIN says otherwise.
        # Unsynced, statements run on the event loop: another process holding the file
        # fails them at once (a transient error, retried with backoff) instead of blocking
        # the loop for SQLite's 5 s busy wait.
        self._connection = sqlite3.connect(
            path, timeout=5.0 if synced else 0.0, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        # Deleted rows are overwritten in the file, not just unlinked from the b-tree: a
        # destroyed key must not be recoverable from the file's free pages.
        self._connection.execute("PRAGMA secure_delete = ON")
        self._synced = synced
        if not synced:
            # Written to the OS, not synced to the disk: a crash of the service loses
            # nothing. Surviving the machine's crash, all a sync adds, is of no use next to
            # the embedded broker, whose topics live in memory (a new one resets the file).
            # The sync was 1-3 ms of every registration's latency.
            self._connection.execute("PRAGMA synchronous = OFF")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS face_keys ("
            " owner TEXT NOT NULL, face_id TEXT NOT NULL, key BLOB NOT NULL,"
            " created_at TEXT NOT NULL, PRIMARY KEY (owner, face_id)) WITHOUT ROWID"
        )

    @classmethod
    def reset(cls, path: Path) -> FileFaceKeys:
        """A store without keys, for a new embedded broker: its topics hold no sealed events."""
        for stale in (path, path.with_name(path.name + "-journal")):
            stale.unlink(missing_ok=True)
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    async def key_for(self, owner: str, face_id: str) -> bytes:
        def make_or_read(connection: sqlite3.Connection) -> bytes:
            connection.execute(
                "INSERT OR IGNORE INTO face_keys (owner, face_id, key, created_at)"
                " VALUES (?, ?, ?, ?)",
                (owner, face_id, os.urandom(KEY_BYTES), datetime.now(UTC).isoformat()),
            )
            key = _key_in(connection, owner, face_id)
            if key is None:  # only if the file is changed behind our back
                raise TransientError("a face key was not stored")
            return key

        return await self._run("making a face key", make_or_read)

    async def find(self, owner: str, face_id: str) -> bytes | None:
        return await self._run(
            "reading a face key", lambda connection: _key_in(connection, owner, face_id)
        )

    async def destroy(self, owner: str, face_ids: Collection[str]) -> None:
        rows = [(owner, face_id) for face_id in face_ids]

        def delete(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "DELETE FROM face_keys WHERE owner = ? AND face_id = ?", rows
                )
                connection.execute("COMMIT")
            except BaseException:
                # Left open, the transaction would make the next BEGIN fail.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        if rows:
            await self._run("destroying face keys", delete)

    async def _run(self, doing: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        def locked() -> _T:
            with self._lock:
                return work(self._connection)

        try:
            if not self._synced:
                # Nothing waits on the disk: a statement takes tens of microseconds, where
                # the hop to a thread and back took 1.6 ms of a registration's latency.
                return locked()
            return await asyncio.to_thread(locked)
        except sqlite3.OperationalError as error:  # locked, I/O error, disk full: may pass
            raise TransientError(f"the face key file failed {doing}: {error}") from error


def _key_in(connection: sqlite3.Connection, owner: str, face_id: str) -> bytes | None:
    row = connection.execute(
        "SELECT key FROM face_keys WHERE owner = ? AND face_id = ?", (owner, face_id)
    ).fetchone()
    return bytes(row[0]) if row else None
