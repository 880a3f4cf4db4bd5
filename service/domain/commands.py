"""The RegisterCustomFace command once its owner and fields are known to be valid."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.ids import LibraryId, derive_face_id


@dataclass(frozen=True)
class RegisterFace:
    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId
    image_url: str
    person_name: str | None
    timestamp_ms: int

    @property
    def face_id(self) -> str:
        return derive_face_id(self.owner, self.category.key, self.person.key, self.request_id)

    @property
    def person_ref(self) -> tuple[str, str, str]:
        """What makes two commands touch the same person document."""
        return (self.owner, self.category.key, self.person.key)
