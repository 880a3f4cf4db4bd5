"""The commands whose answer is journaled: decided once, applied (again) from the entry.

An unregister whose faces are gone by its second processing, a tag of a person removed
since, a list of a library that has changed since: each must answer as the first time. So
the first processing writes its answer (and event) to the journal before it changes
anything, and every processing applies the change the entry records, then answers from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel

from service.contracts.messages import Result
from service.domain.commands import ListPersons, SearchFaces, TagPerson, UnregisterFaces
from service.domain.errors import ErrorCode, Rejected
from service.domain.journal import JournalEntry
from service.service_layer.outcome import Outcome, failed, journaled, unexpected_failure
from service.service_layer.ports import Journal
from service.service_layer.retry import RetriesExhausted, RetryPolicy

log = logging.getLogger("service.commands")

Decide = Callable[[], Awaitable[JournalEntry]]
Apply = Callable[[JournalEntry], Awaitable[None]]
C = TypeVar("C", UnregisterFaces, TagPerson, ListPersons, SearchFaces)


class JournaledAnswers:
    def __init__(self, journal: Journal, retry: RetryPolicy) -> None:
        self._journal = journal
        self._retry = retry

    async def answer(
        self,
        owner: str,
        action: str,
        request_id: str,
        decide: Decide,
        apply: Apply,
        retention_s: float | None = None,
    ) -> Outcome:
        """`decide` reads what it needs and returns the entry, or raises the refusal to
        journal (kept `retention_s`, None: for good); `apply` makes the entry's change, and
        must be harmless to repeat."""

        async def entry() -> JournalEntry:
            found = await self._journal.find(owner, action, request_id)
            if found is not None:
                return found
            try:
                decided = await decide()
            except Rejected as refusal:
                result = failed(request_id, refusal.code, refusal.message)
                decided = journal_entry(owner, action, result, expires_at=expiry(retention_s))
            return await self._journal.keep(decided)

        try:
            kept = await self._retry.run(entry)
        except RetriesExhausted as error:
            return Outcome(code=ErrorCode.INTERNAL, message=f"errorMsg:{error}")
        except Exception as error:
            # A bug or an input nothing foresaw: answered and logged, the partition moves on.
            log.exception(f"{action} failed", extra={"request_id": request_id})
            return unexpected_failure(error)
        # Journaled means decided: the change is now owed, however long the store is away.
        # Answering before it is made would commit a half-made change (an unregister's keys
        # gone, its faces still stored, no event).
        await self._until_applied(action, request_id, apply, kept)
        return journaled(kept)

    async def _until_applied(
        self, action: str, request_id: str, apply: Apply, entry: JournalEntry
    ) -> None:
        while True:
            try:
                await self._retry.run(lambda: apply(entry))
                return
            except RetriesExhausted:
                log.exception(
                    f"{action} decided but not yet applied; trying again",
                    extra={"request_id": request_id},
                )
                await asyncio.sleep(self._retry.base_delay_s)


class JournaledHandler(Generic[C]):
    """A handler whose answer is journaled: `decide` once, `apply` on every processing."""

    action: ClassVar[str]
    # How long its answers are kept; None: for good. Answers that hold personal data (a
    # list's URLs, a search's names) or that may change (a search's failed fetch) expire.
    retention_s: float | None = None

    def __init__(self, answers: JournaledAnswers) -> None:
        self._answers = answers

    async def handle(self, command: C) -> Outcome:
        return await self._answers.answer(
            command.owner,
            self.action,
            command.request_id,
            partial(self.decide, command),
            partial(self.apply, command),
            self.retention_s,
        )

    async def decide(self, command: C) -> JournalEntry:
        """The entry to journal, from what the store holds now; raises the refusal."""
        raise NotImplementedError

    async def apply(self, command: C, entry: JournalEntry) -> None:
        """The change the entry records; harmless to repeat. Nothing, for a read."""
        return None


def journal_entry(
    owner: str,
    action: str,
    result: Result,
    event: BaseModel | None = None,
    expires_at: datetime | None = None,
    erased_face_ids: tuple[str, ...] = (),
    erased_key_ids: tuple[str, ...] = (),
) -> JournalEntry:
    """The entry of a command that answered `result` (and published `event`)."""
    return JournalEntry(
        owner=owner,
        action=action,
        request_id=result.RequestId,
        result=result.model_dump(mode="json"),
        event=event.model_dump(mode="json") if event is not None else None,
        erased_face_ids=erased_face_ids,
        erased_key_ids=erased_key_ids,
        expires_at=expires_at,
    )


def now_ms() -> datetime:
    """MongoDB keeps milliseconds: a time journaled must read back as it was written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def expiry(retention_s: float | None) -> datetime | None:
    """When an entry kept `retention_s` expires; None (kept for good) for None."""
    return None if retention_s is None else now_ms() + timedelta(seconds=retention_s)
