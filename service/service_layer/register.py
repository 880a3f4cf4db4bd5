"""The RegisterCustomFace use case for one admitted command."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from service.domain.commands import RegisterFace
from service.domain.errors import ErrorCode, Rejected
from service.domain.person import FaceImage, ModelProvenance, Person, face_limit_exceeded
from service.service_layer.ports import FaceAnalyser, ImageFetcher, PersonStore
from service.service_layer.retry import RetriesExhausted, RetryPolicy
from service.timings import timed

log = logging.getLogger("service.commands")


@dataclass(frozen=True)
class MatchPolicy:
    enabled: bool
    max_distance: float


@dataclass
class Outcome:
    """What became of one command: a FaceId, or a code with its message."""

    face_id: str | None = None
    code: ErrorCode | None = None
    message: str = ""
    stored: bool = False
    # The image this command stored (now or on an earlier delivery): it makes the event.
    image: FaceImage | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class RegisterFaceHandler:
    def __init__(
        self,
        store: PersonStore,
        fetcher: ImageFetcher,
        analyser: FaceAnalyser,
        provenance: ModelProvenance,
        match: MatchPolicy,
        retry: RetryPolicy,
        max_images_in_memory: int = 8,
    ) -> None:
        self._store = store
        # A registration waits for a slot before it reads the store: the slots bound the
        # images in memory, and a backlog of hundreds queues here, not in the store or on
        # the event loop, where it would stand between a refusal and its answer.
        self._slots = asyncio.Semaphore(max_images_in_memory)
        self._fetcher = fetcher
        self._analyser = analyser
        self._provenance = provenance
        self._match = match
        self._retry = retry

    async def handle(self, command: RegisterFace) -> Outcome:
        outcome = Outcome()
        try:
            async with self._slots:
                image, outcome.stored = await self._register(command, outcome.timings_ms)
            outcome.face_id = image.face_id
            if image.request_id == command.request_id:
                outcome.image = image
        except Rejected as refusal:
            outcome.code, outcome.message = refusal.code, refusal.message
        except RetriesExhausted as error:
            outcome.code, outcome.message = ErrorCode.INTERNAL, f"errorMsg:{error}"
        except Exception as error:
            # Not transient and not a refusal: a bug or an input nothing foresaw. Answered
            # and logged with its traceback, so the partition moves on.
            log.exception("register failed", extra={"request_id": command.request_id})
            failed = unexpected_failure(error)
            outcome.code, outcome.message = failed.code, failed.message
        return outcome

    async def _register(
        self, command: RegisterFace, timings: dict[str, float]
    ) -> tuple[FaceImage, bool]:
        face_id = command.face_id
        with timed(timings, "store"):
            person = await self._retry.run(lambda: self._store.get_person(*command.person_ref))
        if person is not None and (done := person.image_with_face_id(face_id)) is not None:
            return done, False
        with timed(timings, "fetch"):
            data = await self._fetcher.fetch(command.image_url)
        sha256 = hashlib.sha256(data).hexdigest()
        if person is not None and (same := person.image_with_sha256(sha256)) is not None:
            return same, False
        if person is not None and person.is_full:
            raise face_limit_exceeded(command.person.display)
        with timed(timings, "inference"):
            face = await self._retry.run(lambda: self._analyser.analyse(data))
        timings.update(face.timings_ms)
        self._check_match(person, face.embedding)
        image = FaceImage(
            face_id=face_id,
            request_id=command.request_id,
            image_url=command.image_url,
            image_sha256=sha256,
            embedding=face.embedding,
            box=face.box,
            provenance=self._provenance,
            # MongoDB keeps milliseconds: an event re-published from the store must match.
            created_at=_now_ms(),
        )
        with timed(timings, "store"):
            stored = await self._retry.run(lambda: self._store.add_image(command, image))
        return stored, stored is image

    def _check_match(self, person: Person | None, embedding: tuple[float, ...]) -> None:
        if not self._match.enabled or person is None:
            return
        distance = person.closest_distance(embedding)
        if distance is not None and distance > self._match.max_distance:
            raise Rejected(
                ErrorCode.FACE_MISMATCH,
                f"the face matches none of person {person.person_id!r}'s faces "
                f"(nearest distance {distance:.2f}, at most {self._match.max_distance:g})",
            )


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def unexpected_failure(error: Exception) -> Outcome:
    return Outcome(code=ErrorCode.INTERNAL, message=f"errorMsg:unexpected {type(error).__name__}")
