"""The answer journal in MongoDB: one document per journaled command."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from service.adapters.mongo import transient_on_driver_errors
from service.domain.journal import JournalEntry

COLLECTION = "answers"


class MongoJournal:
    """Entries by (owner, action, RequestId). Unregistrations are kept for good: they hold
    ids, never biometric data, and they keep erased faces from coming back. Entries with an
    `expires_at` (listings, which hold image URLs) are deleted by a TTL index."""

    def __init__(self, database: Any) -> None:
        self._answers = database[COLLECTION]

    async def ensure_indexes(self) -> None:
        async with transient_on_driver_errors("creating indexes"):
            await self._answers.create_index(
                [("owner", ASCENDING), ("action", ASCENDING), ("request_id", ASCENDING)],
                unique=True,
                name="answer_identity",
            )
            await self._answers.create_index(
                [("owner", ASCENDING), ("erased_face_ids", ASCENDING)], name="erased_faces"
            )
            await self._answers.create_index(
                "expires_at", expireAfterSeconds=0, name="answer_expiry"
            )

    async def find(self, owner: str, action: str, request_id: str) -> JournalEntry | None:
        async with transient_on_driver_errors("reading an answer"):
            document = await self._answers.find_one(
                {"owner": owner, "action": action, "request_id": request_id}
            )
        return _entry(document) if document else None

    async def keep(self, entry: JournalEntry) -> JournalEntry:
        async with transient_on_driver_errors("journaling an answer"):
            try:
                await self._answers.insert_one(_document(entry))
            except DuplicateKeyError:
                # Kept by an earlier delivery of the command: that answer stands.
                kept = await self.find(entry.owner, entry.action, entry.request_id)
                if kept is not None:
                    return kept
        return entry

    async def erased(self, owner: str, face_id: str) -> bool:
        async with transient_on_driver_errors("reading erasures"):
            found = await self._answers.find_one(
                {"owner": owner, "erased_face_ids": face_id}, {"_id": 1}
            )
        return found is not None


def _document(entry: JournalEntry) -> dict[str, Any]:
    return {
        "owner": entry.owner,
        "action": entry.action,
        "request_id": entry.request_id,
        "result": entry.result,
        "event": entry.event,
        "erased_face_ids": list(entry.erased_face_ids),
        "erased_key_ids": list(entry.erased_key_ids),
        "expires_at": entry.expires_at,
    }


def _entry(document: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        owner=document["owner"],
        action=document["action"],
        request_id=document["request_id"],
        result=document["result"],
        event=document.get("event"),
        erased_face_ids=tuple(document.get("erased_face_ids", ())),
        erased_key_ids=tuple(document.get("erased_key_ids", ())),
        expires_at=document.get("expires_at"),
    )
