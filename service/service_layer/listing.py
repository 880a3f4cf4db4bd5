"""The ListCustomPersons use case: one page of a user's libraries, persons and faces."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from service.contracts.messages import (
    ListedCategory,
    ListedFace,
    ListedPerson,
    ListSucceeded,
)
from service.contracts.record_size import MAX_MESSAGE_BYTES, message_bytes
from service.domain.commands import ListPersons, PageStart
from service.domain.journal import JournalEntry
from service.domain.paging import next_token
from service.domain.person import Library, Person
from service.service_layer.journaled import (
    JournaledAnswers,
    JournaledHandler,
    expiry,
    journal_entry,
)
from service.service_layer.ports import PersonStore

ACTION = "ListCustomPersons"


class ListPersonsHandler(JournaledHandler[ListPersons]):
    action = ACTION

    def __init__(
        self, store: PersonStore, answers: JournaledAnswers, answer_retention_s: float
    ) -> None:
        super().__init__(answers)
        self._store = store
        # A page holds image URLs and names: its journaled copy must not outlive their erasure
        # by long.
        self.retention_s = answer_retention_s

    async def decide(self, command: ListPersons) -> JournalEntry:
        found = await self._store.page_of_persons(
            command.owner,
            command.category.key if command.category else None,
            command.person.key if command.person else None,
            command.after,
            command.max_results + 1,
        )
        libraries = await self._store.libraries(command.owner, {p.category_key for p in found})
        by_key = {library.category_key: library for library in libraries}
        size = min(command.max_results, len(found))
        result = _page(command, found, size, by_key)
        if size > 1 and (taken := message_bytes(result)) > MAX_MESSAGE_BYTES:
            # Long image URLs: as many persons as fit, the rest on the next page. Each
            # person is measured once; the page around them takes what is left.
            widths = list(accumulate(message_bytes(_person(p)) + 1 for p in found[:size]))
            room = MAX_MESSAGE_BYTES - (taken - widths[-1])
            size = max(1, bisect_right(widths, room))
            result = _page(command, found, size, by_key)
            while size > 1 and message_bytes(result) > MAX_MESSAGE_BYTES:  # its NextToken
                size -= 1
                result = _page(command, found, size, by_key)
        return journal_entry(command.owner, ACTION, result, expires_at=expiry(self.retention_s))


def _page(
    command: ListPersons, found: list[Person], size: int, libraries: dict[str, Library]
) -> ListSucceeded:
    """The first `size` persons of `found`, and a token to the rest if there is more."""
    page = found[:size]
    token = None
    if len(found) > len(page):
        last = page[-1]
        token = next_token(PageStart(last.category_key, last.person_key))
    return ListSucceeded(
        RequestId=command.request_id, Categories=_categories(page, libraries), NextToken=token
    )


def _categories(page: list[Person], libraries: dict[str, Library]) -> tuple[ListedCategory, ...]:
    grouped: dict[str, list[Person]] = {}
    for person in page:  # in (category key, person key) order already
        grouped.setdefault(person.category_key, []).append(person)
    categories = []
    for key, persons in grouped.items():
        library = libraries.get(key)
        categories.append(
            ListedCategory(
                CategoryId=library.category_id if library else persons[0].category_id,
                CategoryName=library.name if library else None,
                CategoryDescription=library.description if library else None,
                Persons=tuple(_person(p) for p in persons),
            )
        )
    return tuple(categories)


def _person(person: Person) -> ListedPerson:
    return ListedPerson(
        PersonId=person.person_id,
        PersonName=person.person_name,
        PersonDescription=person.person_description,
        Faces=tuple(ListedFace(FaceId=i.face_id, ImageUrl=i.image_url) for i in person.images),
    )
