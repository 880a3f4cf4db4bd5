"""What the use cases need from the outside world, and nothing more."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from service.domain.commands import PageStart, RegisterFace, TagPerson
from service.domain.errors import Rejected
from service.domain.faces import AnalysedFace
from service.domain.journal import JournalEntry
from service.domain.person import FaceImage, Library, Person
from service.service_layer.intake import IncomingRecord


class ImageFetcher(Protocol):
    async def fetch(self, url: str) -> bytes: ...


class FaceAnalyser(Protocol):
    async def analyse(self, data: bytes) -> AnalysedFace:
        """The one usable frontal face of a registration image; Rejected says why not."""
        ...

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        """Up to `max_faces` faces of any pose, largest first; Rejected when none."""
        ...


class PersonStore(Protocol):
    """Libraries, their persons and the persons' faces. Raises TransientError when the
    database fails in a way that may pass."""

    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None: ...

    async def get_library(self, owner: str, category_key: str) -> Library | None:
        """The library while it has a person with a face, else None."""
        ...

    async def persons_of_library(self, owner: str, category_key: str) -> list[Person]:
        """Its persons with a face, by person key."""
        ...

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage: ...

    async def restore(self, command: RegisterFace, image: FaceImage) -> bool: ...

    async def remove_faces(self, owner: str, category_key: str, face_ids: Collection[str]) -> None:
        """Removes the faces of the library with these ids, then the persons left without
        faces, then the library if it has no persons left. Harmless to repeat."""
        ...

    async def tag(self, command: TagPerson, create_person: bool = False) -> bool:
        """Sets the texts given, and keeps the command's text key id with the person when
        it sets person texts; False when the person has no face (unless `create_person`,
        for a rebuild, makes it without one)."""
        ...

    async def page_of_persons(
        self,
        owner: str,
        category_key: str | None,
        person_key: str | None,
        after: PageStart | None,
        limit: int,
    ) -> list[Person]:
        """Up to `limit` persons with a face by (category key, person key), after `after`;
        their images without embeddings."""
        ...

    async def libraries(self, owner: str, category_keys: Collection[str]) -> list[Library]: ...

    async def people(self, owner: str, refs: Collection[tuple[str, str]]) -> list[Person]:
        """The persons named by (category key, person key), without their images."""
        ...


class Journal(Protocol):
    """The answers of commands that must answer alike when processed again."""

    async def find(self, owner: str, action: str, request_id: str) -> JournalEntry | None: ...

    async def keep(self, entry: JournalEntry) -> JournalEntry:
        """Keeps the entry unless one of the same command is there; returns the one kept."""
        ...

    async def erased(self, owner: str, face_id: str) -> bool:
        """Whether an unregistration removed this face: it never comes back."""
        ...


class FaceKeys(Protocol):
    """The data key of each face, which seals its event on the log (crypto-shredding)."""

    async def key_for(self, owner: str, face_id: str) -> bytes:
        """The face's 32-byte key, made on the first call and the same on every later one."""
        ...

    async def find(self, owner: str, face_id: str) -> bytes | None:
        """The key, or None when there is none (never made, or destroyed)."""
        ...

    async def destroy(self, owner: str, face_ids: Collection[str]) -> None:
        """Erases the keys for good: the events they sealed can no longer be read."""
        ...


class MessagePublisher(Protocol):
    """Results and face events: raises TransientError when the broker does not take it."""

    async def publish(self, owner: str | None, message: BaseModel) -> None: ...


class DeadLetters(Protocol):
    """Where unreadable records are copied; raises TransientError like a publisher."""

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None: ...


@dataclass(frozen=True)
class Stores:
    """Where a library is kept: what the commands and a rebuild from the log write to."""

    persons: PersonStore
    journal: Journal
    keys: FaceKeys
