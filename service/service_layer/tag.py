"""The TagCustomPerson use case: names and descriptions of a person and its library."""

from __future__ import annotations

from functools import partial

from service.contracts.face_events import person_tagged
from service.contracts.messages import PersonTagged, TagSucceeded
from service.domain.commands import TagPerson
from service.domain.errors import ErrorCode, Rejected
from service.domain.journal import JournalEntry
from service.service_layer.journaled import JournaledAnswers
from service.service_layer.outcome import Outcome
from service.service_layer.ports import FaceKeys, PersonStore
from service.service_layer.unregister import category_not_found

ACTION = "TagCustomPerson"


class TagPersonHandler:
    def __init__(self, store: PersonStore, keys: FaceKeys, answers: JournaledAnswers) -> None:
        self._store = store
        self._keys = keys
        self._answers = answers

    async def handle(self, command: TagPerson) -> Outcome:
        return await self._answers.answer(
            command.owner,
            ACTION,
            command.request_id,
            partial(self._decide, command),
            partial(self._apply, command),
        )

    async def _decide(self, command: TagPerson) -> JournalEntry:
        person = await self._store.get_person(*command.person_ref)
        if person is None or not person.images:
            if await self._store.get_library(command.owner, command.category.key) is None:
                raise category_not_found(command.category.display)
            raise Rejected(
                ErrorCode.PERSON_NOT_FOUND,
                f"person {command.person.display!r} does not exist in library "
                f"{command.category.display!r}",
            )
        text_key = None
        if command.texts.touches_person:
            text_key = await self._keys.key_for(command.owner, command.text_key_id)
        return tagged_entry(person_tagged(command, text_key))

    async def _apply(self, command: TagPerson, entry: JournalEntry) -> None:
        if entry.event is not None:
            await self._store.tag(command)


def tagged_entry(event: PersonTagged) -> JournalEntry:
    """The journal entry of a tag, from its event (see `unregistered_entry`)."""
    result = TagSucceeded(
        RequestId=event.RequestId, CategoryId=event.CategoryId, PersonId=event.PersonId
    )
    return JournalEntry(
        owner=event.Owner,
        action=ACTION,
        request_id=event.RequestId,
        result=result.model_dump(mode="json"),
        event=event.model_dump(mode="json"),
    )
