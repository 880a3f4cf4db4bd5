"""The TagCustomPerson use case: names and descriptions of a person and its library."""

from __future__ import annotations

from service.contracts.face_events import person_tagged
from service.contracts.messages import PersonTagged, TagSucceeded
from service.domain.commands import TagPerson
from service.domain.journal import JournalEntry
from service.service_layer.journaled import JournaledAnswers, JournaledHandler, journal_entry
from service.service_layer.lookups import named_person
from service.service_layer.ports import FaceKeys, PersonStore

ACTION = "TagCustomPerson"


class TagPersonHandler(JournaledHandler[TagPerson]):
    action = ACTION

    def __init__(self, store: PersonStore, keys: FaceKeys, answers: JournaledAnswers) -> None:
        super().__init__(answers)
        self._store = store
        self._keys = keys

    async def decide(self, command: TagPerson) -> JournalEntry:
        await named_person(self._store, command.owner, command.category, command.person)
        text_key = None
        if command.texts.touches_person:
            text_key = await self._keys.key_for(command.owner, command.text_key_id)
        return tagged_entry(person_tagged(command, text_key))

    async def apply(self, command: TagPerson, entry: JournalEntry) -> None:
        if entry.event is None:
            return
        if command.texts.touches_person and (
            await self._keys.find(command.owner, command.text_key_id) is None
        ):
            # The person it named was unregistered since (its text keys went with it): a
            # person registered again under the id is another, and keeps its own texts.
            return
        await self._store.tag(command)


def tagged_entry(event: PersonTagged) -> JournalEntry:
    """The journal entry of a tag, from its event (see `unregistered_entry`)."""
    result = TagSucceeded(
        RequestId=event.RequestId, CategoryId=event.CategoryId, PersonId=event.PersonId
    )
    return journal_entry(event.Owner, ACTION, result, event)
