"""Valid commands for tests: RegisterFace for the use case and the store, and the wire
bodies of the library's other actions."""

from __future__ import annotations

from typing import Any

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


def unregister(person: str, face: str, category: str = "Cat-1", **more: Any) -> dict[str, Any]:
    return {
        "Action": "UnregisterCustomFace",
        "CategoryId": category,
        "PersonId": person,
        "FaceId": face,
        **more,
    }


def tag(person: str, category: str = "Cat-1", **texts: str) -> dict[str, Any]:
    return {"Action": "TagCustomPerson", "CategoryId": category, "PersonId": person, **texts}


def listing(**fields: Any) -> dict[str, Any]:
    return {"Action": "ListCustomPersons", **fields}
