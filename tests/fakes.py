"""Fakes of the ports, for unit tests. Each satisfies its Protocol under mypy --strict, so
the composition root (`service.bootstrap.bootstrap`) takes them as it takes the adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pydantic import BaseModel

from service.domain.commands import RegisterFace
from service.domain.errors import Rejected, TransientError
from service.domain.faces import AnalysedFace, Box
from service.domain.person import FaceImage, Person
from service.service_layer.intake import IncomingRecord
from service.service_layer.ports import (
    DeadLetters,
    FaceAnalyser,
    ImageFetcher,
    MessagePublisher,
    PersonStore,
)


class MemoryStore:
    """Persons by (owner, category key, person key), with the cap and idempotency rules of
    the real store: an image already there by FaceId or bytes is not added again."""

    def __init__(self, failures: int = 0) -> None:
        self.persons: dict[tuple[str, str, str], Person] = {}
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

    def _put(self, command: RegisterFace, image: FaceImage) -> None:
        person = self.persons.get(command.person_ref)
        self.persons[command.person_ref] = Person(
            owner=command.owner,
            category_id=command.category.display,
            category_key=command.category.key,
            person_id=command.person.display,
            person_key=command.person.key,
            person_name=command.person_name or (person.person_name if person else None),
            images=(*(person.images if person else ()), image),
        )


class CountingFetcher:
    def __init__(self, data: bytes = b"image bytes") -> None:
        self.data = data
        self.calls = 0

    async def fetch(self, url: str) -> bytes:
        self.calls += 1
        return self.data


class CountingAnalyser:
    """One face, the same embedding for every image (all of one person)."""

    def __init__(self, refusal: Rejected | None = None) -> None:
        self.calls = 0
        self.refusal = refusal  # when given, every image is refused with it

    async def analyse(self, data: bytes) -> AnalysedFace:
        self.calls += 1
        if self.refusal is not None:
            raise self.refusal
        return AnalysedFace(box=Box(0, 0, 100, 100), confidence=0.99, embedding=(0.0,) * 128)


class RecordingPublisher:
    """Takes messages, but refuses while `refusing` is set, as a broker that is away."""

    def __init__(self) -> None:
        self.published: list[tuple[str | None, BaseModel]] = []
        self.refusing = False
        self.refused = 0
        self.changed = asyncio.Condition()  # notified on every attempt

    async def publish(self, owner: str | None, message: BaseModel) -> None:
        async with self.changed:
            self.changed.notify_all()
            if self.refusing:
                self.refused += 1
                raise TransientError("publishing failed: KafkaConnectionError")
            self.published.append((owner, message))

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(condition)

    def dumps(self) -> list[dict[str, object]]:
        return [message.model_dump() for _, message in self.published]


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[IncomingRecord, Rejected]] = []

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None:
        self.sent.append((record, refusal))


def _satisfies_ports() -> None:
    """Checked by mypy: each fake is the port it stands in for."""
    _store: PersonStore = MemoryStore()
    _fetcher: ImageFetcher = CountingFetcher()
    _analyser: FaceAnalyser = CountingAnalyser()
    _publisher: MessagePublisher = RecordingPublisher()
    _letters: DeadLetters = RecordingDeadLetters()
