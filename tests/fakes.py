"""Fakes of the ports, for unit tests. Each satisfies its Protocol under mypy --strict, so
the composition root (`service.bootstrap.bootstrap`) takes them as it takes the adapters."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Collection
from dataclasses import replace

from pydantic import BaseModel

from service.contracts.record_size import MAX_MESSAGE_BYTES, message_bytes
from service.domain.commands import PageStart, RegisterFace, TagPerson
from service.domain.errors import MessageTooLarge, Rejected, TransientError
from service.domain.faces import AnalysedFace, Box
from service.domain.ids import LibraryId
from service.domain.journal import JournalEntry
from service.domain.person import FaceImage, Library, Person
from service.service_layer.intake import IncomingRecord
from service.service_layer.ports import (
    DeadLetters,
    FaceAnalyser,
    FaceKeys,
    ImageFetcher,
    Journal,
    MessagePublisher,
    PersonStore,
    Stores,
)


class MemoryStore:
    """Persons by (owner, category key, person key), with the cap and idempotency rules of
    the real store: an image already there by FaceId or bytes is not added again."""

    def __init__(self, failures: int = 0) -> None:
        self.persons: dict[tuple[str, str, str], Person] = {}
        # One per library while it has persons, spelled as first made, as in MongoDB.
        self.libraries_made: dict[tuple[str, str], Library] = {}
        self.failures = failures  # the first calls fail as a MongoDB outage would
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientError("MongoDB failed: AutoReconnect")

    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None:
        self._maybe_fail()
        return self.persons.get((owner, category_key, person_key))

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage:
        self._maybe_fail()
        person = self.persons.get(command.person_ref)
        if person is not None:
            existing = person.image_with_face_id(image.face_id) or person.image_with_sha256(
                image.image_sha256
            )
            if existing is not None:
                return existing
        self._put(command, image)
        return image

    async def restore(self, command: RegisterFace, image: FaceImage) -> bool:
        self._maybe_fail()
        person = self.persons.get(command.person_ref)
        if person is not None and person.image_with_face_id(image.face_id) is not None:
            return False
        self._put(command, image)
        return True

    async def get_library(self, owner: str, category_key: str) -> Library | None:
        self._maybe_fail()
        persons = [p for p in self._of_library(owner, category_key) if p.images]
        if not persons:
            return None
        return self.libraries_made[(owner, category_key)]

    async def persons_of_library(self, owner: str, category_key: str) -> list[Person]:
        self._maybe_fail()
        return [p for p in self._of_library(owner, category_key) if p.images]

    async def remove_faces(self, owner: str, category_key: str, face_ids: Collection[str]) -> None:
        self._maybe_fail()
        for person in self._of_library(owner, category_key):
            kept = tuple(i for i in person.images if i.face_id not in face_ids)
            ref = (owner, category_key, person.person_key)
            if kept:
                self.persons[ref] = replace(person, images=kept)
            else:
                del self.persons[ref]
        if not self._of_library(owner, category_key):
            self.libraries_made.pop((owner, category_key), None)

    async def tag(self, command: TagPerson, create_person: bool = False) -> bool:
        self._maybe_fail()
        person = self.persons.get(command.person_ref)
        if person is None and create_person:
            person = self._made(command.owner, command.category, command.person)
        if person is None or not (person.images or create_person):
            return False
        texts = command.texts
        if texts.person_name is not None:
            person = replace(person, person_name=texts.person_name or None)
        if texts.person_description is not None:
            person = replace(person, person_description=texts.person_description or None)
        if texts.touches_person and command.text_key_id not in person.text_key_ids:
            person = replace(person, text_key_ids=(*person.text_key_ids, command.text_key_id))
        self.persons[command.person_ref] = person
        key = (command.owner, command.category.key)
        library = self.libraries_made[key]
        if texts.category_name is not None:
            library = replace(library, name=texts.category_name or None)
        if texts.category_description is not None:
            library = replace(library, description=texts.category_description or None)
        self.libraries_made[key] = library
        return True

    async def page_of_persons(
        self,
        owner: str,
        category_key: str | None,
        person_key: str | None,
        after: PageStart | None,
        limit: int,
    ) -> list[Person]:
        self._maybe_fail()
        chosen = [
            person
            for (who, category, key), person in sorted(self.persons.items())
            if who == owner
            and person.images
            and category_key in (None, category)
            and person_key in (None, key)
            and (after is None or (category, key) > (after.category_key, after.person_key))
        ]
        return chosen[:limit]

    async def libraries(self, owner: str, category_keys: Collection[str]) -> list[Library]:
        self._maybe_fail()
        found = [await self.get_library(owner, key) for key in category_keys]
        return [library for library in found if library is not None]

    async def people(self, owner: str, refs: Collection[tuple[str, str]]) -> list[Person]:
        self._maybe_fail()
        found = [self.persons.get((owner, category, person)) for category, person in refs]
        return [replace(person, images=()) for person in found if person is not None]

    def _of_library(self, owner: str, category_key: str) -> list[Person]:
        return [
            person
            for (who, category, _), person in sorted(self.persons.items())
            if (who, category) == (owner, category_key)
        ]

    def _made(self, owner: str, category: LibraryId, person: LibraryId) -> Person:
        """The person (and its library) as the first command that names them makes them."""
        self.libraries_made.setdefault(
            (owner, category.key), Library(owner, category.display, category.key)
        )
        made = self.persons.setdefault(
            (owner, category.key, person.key),
            Person(owner, category.display, category.key, person.display, person.key, None),
        )
        return made

    def _put(self, command: RegisterFace, image: FaceImage) -> None:
        person = self._made(command.owner, command.category, command.person)
        self.persons[command.person_ref] = replace(
            person,
            person_name=(
                (command.person_name or None)
                if command.person_name is not None
                else person.person_name
            ),
            images=(*person.images, image),
            text_key_ids=tuple(
                dict.fromkeys(
                    (
                        *person.text_key_ids,
                        *((command.text_key_id,) if command.person_name is not None else ()),
                    )
                )
            ),
        )


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], JournalEntry] = {}

    async def find(self, owner: str, action: str, request_id: str) -> JournalEntry | None:
        return self.entries.get((owner, action, request_id))

    async def keep(self, entry: JournalEntry) -> JournalEntry:
        return self.entries.setdefault((entry.owner, entry.action, entry.request_id), entry)

    async def erased(self, owner: str, face_id: str) -> bool:
        return any(
            who == owner and face_id in entry.erased_face_ids
            for (who, _, _), entry in self.entries.items()
        )


class MemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], bytes] = {}

    async def key_for(self, owner: str, face_id: str) -> bytes:
        return self.keys.setdefault((owner, face_id), os.urandom(32))

    async def find(self, owner: str, face_id: str) -> bytes | None:
        return self.keys.get((owner, face_id))

    async def destroy(self, owner: str, face_ids: Collection[str]) -> None:
        for face_id in face_ids:
            self.keys.pop((owner, face_id), None)


def memory_stores(persons: MemoryStore | None = None) -> Stores:
    return Stores(persons=persons or MemoryStore(), journal=MemoryJournal(), keys=MemoryKeys())


class CountingFetcher:
    def __init__(self, data: bytes = b"image bytes") -> None:
        self.data = data
        self.calls = 0

    async def fetch(self, url: str) -> bytes:
        self.calls += 1
        return self.data


Embed = Callable[[bytes], tuple[float, ...]]


def same_face(_data: bytes) -> tuple[float, ...]:
    return (0.0,) * 128


class CountingAnalyser:
    """One face per image; by default the same embedding for every image (all of one
    person), else `embed` of the image's bytes."""

    def __init__(self, refusal: Rejected | None = None, embed: Embed = same_face) -> None:
        self.calls = 0
        self.refusal = refusal  # when given, every image is refused with it
        self.embed = embed

    async def analyse(self, data: bytes) -> AnalysedFace:
        self.calls += 1
        if self.refusal is not None:
            raise self.refusal
        return AnalysedFace(box=Box(0, 0, 100, 100), confidence=0.99, embedding=self.embed(data))

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        return [await self.analyse(data)]


class RecordingPublisher:
    """Takes messages, but refuses while `refusing` is set, as a broker that is away."""

    def __init__(self) -> None:
        self.published: list[tuple[str | None, BaseModel]] = []
        self.refusing = False
        self.refused = 0
        self.max_bytes = MAX_MESSAGE_BYTES  # larger messages refused, as Kafka refuses them
        self.changed = asyncio.Condition()  # notified on every attempt

    async def publish(self, owner: str | None, message: BaseModel) -> None:
        async with self.changed:
            self.changed.notify_all()
            if self.refusing:
                self.refused += 1
                raise TransientError("publishing failed: KafkaConnectionError")
            if (size := message_bytes(message)) > self.max_bytes:
                raise MessageTooLarge(f"{type(message).__name__}: {size} bytes")
            self.published.append((owner, message))

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(condition)

    def dumps(self) -> list[dict[str, object]]:
        return [message.model_dump(mode="json") for _, message in self.published]


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[IncomingRecord, Rejected]] = []

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        self.sent.append((record, refusal))


def _satisfies_ports() -> None:
    """Checked by mypy: each fake is the port it stands in for."""
    _store: PersonStore = MemoryStore()
    _journal: Journal = MemoryJournal()
    _keys: FaceKeys = MemoryKeys()
    _fetcher: ImageFetcher = CountingFetcher()
    _analyser: FaceAnalyser = CountingAnalyser()
    _publisher: MessagePublisher = RecordingPublisher()
    _letters: DeadLetters = RecordingDeadLetters()
