"""What unregister and tag look up first: the person they name, or which thing is missing."""

from __future__ import annotations

from service.domain.errors import ErrorCode, Rejected
from service.domain.ids import LibraryId
from service.domain.person import Person
from service.service_layer.ports import PersonStore


async def named_person(
    store: PersonStore, owner: str, category: LibraryId, person: LibraryId
) -> Person:
    """The person, with at least one face; else NotFound.Category or NotFound.Person."""
    found = await store.get_person(owner, category.key, person.key)
    if found is not None and found.images:
        return found
    if await store.get_library(owner, category.key) is None:
        raise category_not_found(category.display)
    raise Rejected(
        ErrorCode.PERSON_NOT_FOUND,
        f"person {person.display!r} does not exist in library {category.display!r}",
    )


def category_not_found(category_id: str) -> Rejected:
    return Rejected(ErrorCode.CATEGORY_NOT_FOUND, f"library {category_id!r} does not exist")
