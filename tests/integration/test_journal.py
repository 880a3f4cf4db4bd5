"""The answers journal through the MongoDB driver (mongomock-motor here, a real MongoDB when
MONGODB_URI is set): an entry reads back as it was kept, whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.adapters.journal import MongoJournal
from service.domain.journal import JournalEntry

ENTRY = JournalEntry(
    owner="user-1",
    action="UnregisterCustomFace",
    request_id="U-1",
    result={"RequestId": "U-1", "CategoryId": "Cat-1", "UnregisteredFaceCount": 2},
    event={"Type": "FacesUnregistered", "FaceIds": ["a" * 32, "b" * 32], "At": "2026-11-30Z"},
    erased_face_ids=("a" * 32, "b" * 32),
    erased_key_ids=("t" + "1" * 31,),
    expires_at=datetime(2026, 12, 7, 6, 0, 0, 123000, tzinfo=UTC),
)


async def test_an_entry_reads_back_whole(database: Any) -> None:
    journal = MongoJournal(database)
    await journal.ensure_indexes()

    kept = await journal.keep(ENTRY)
    found = await journal.find("user-1", "UnregisterCustomFace", "U-1")

    assert kept == ENTRY and found == ENTRY
    assert await journal.find("user-2", "UnregisterCustomFace", "U-1") is None


async def test_the_first_entry_of_a_command_stands(database: Any) -> None:
    journal = MongoJournal(database)
    await journal.ensure_indexes()
    await journal.keep(ENTRY)

    later = await journal.keep(JournalEntry("user-1", "UnregisterCustomFace", "U-1", {"x": 1}))

    assert later == ENTRY


async def test_erased_faces_are_known_to_their_owner_only(database: Any) -> None:
    journal = MongoJournal(database)
    await journal.ensure_indexes()
    await journal.keep(ENTRY)

    assert await journal.erased("user-1", "a" * 32)
    assert not await journal.erased("user-1", "c" * 32)
    assert not await journal.erased("user-2", "a" * 32)
