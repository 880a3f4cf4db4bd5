"""Valid RegisterFace commands for tests of the use case and the store."""

from __future__ import annotations

from service.domain.commands import RegisterFace
from service.domain.ids import LibraryId


def register_face(
    request_id: str = "R1",
    owner: str = "user-1",
    category: str = "Cat-1",
    person: str = "P1",
    name: str | None = None,
    image_url: str | None = None,
) -> RegisterFace:
    return RegisterFace(
        owner=owner,
        request_id=request_id,
        category=LibraryId.of(category),
        person=LibraryId.of(person),
        image_url=image_url or f"https://img.example/{request_id}.jpg",
        person_name=name,
        timestamp_ms=0,
    )
