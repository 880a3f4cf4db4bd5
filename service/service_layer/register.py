"""The RegisterCustomFace use case for one admitted command."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from service.contracts.face_events import face_registered
from service.contracts.messages import RegisterSucceeded
from service.domain.commands import RegisterFace, TagPerson, Texts
from service.domain.errors import ErrorCode, Rejected
from service.domain.person import FaceImage, ModelProvenance, Person, face_limit_exceeded
from service.service_layer.journaled import expiry, journal_entry, now_ms
from service.service_layer.outcome import Outcome, failed, journaled, unexpected_failure
from service.service_layer.ports import FaceAnalyser, FaceKeys, ImageFetcher, Journal, PersonStore
from service.service_layer.retry import RetriesExhausted, RetryPolicy
from service.service_layer.vector_cache import VectorCache
from service.timings import timed

log = logging.getLogger("service.commands")

ACTION = "RegisterCustomFace"
_LIBRARY_DEPENDENT = frozenset(
    {ErrorCode.FACE_LIMIT_EXCEEDED, ErrorCode.FACE_MISMATCH, ErrorCode.DUPLICATE_PERSON}
)


@dataclass(frozen=True)
class MatchPolicy:
    enabled: bool
    max_distance: float


class RegisterFaceHandler:
    def __init__(
        self,
        store: PersonStore,
        journal: Journal,
        keys: FaceKeys,
        fetcher: ImageFetcher,
        analyser: FaceAnalyser,
        provenance: ModelProvenance,
        match: MatchPolicy,
        retry: RetryPolicy,
        slots: asyncio.Semaphore,
        vectors: VectorCache | None = None,
        answer_retention_s: float = 7 * 24 * 3600.0,
    ) -> None:
        self._store = store
        self._journal = journal
        self._keys = keys
        # A registration waits for a slot before it reads the journal or the store: the
        # slots bound the images in memory, and a backlog of hundreds queues here, not in
        # the store or on the event loop, where it would stand between a refusal and its
        # answer (500 journal lookups ahead of a throttled answer cost it 125 ms).
        self._slots = slots
        self._vectors = vectors
        self._answer_retention_s = answer_retention_s
        self._fetcher = fetcher
        self._analyser = analyser
        self._provenance = provenance
        self._match = match
        self._retry = retry

    async def handle(self, command: RegisterFace) -> Outcome:
        outcome = Outcome()
        try:
            async with self._slots:
                kept = await self._retry.run(
                    lambda: self._journal.find(command.owner, ACTION, command.request_id)
                )
                if kept is not None:
                    return journaled(kept)
                try:
                    face_id = await self._register(command, outcome)
                    outcome.face_id = face_id
                    outcome.result = RegisterSucceeded(
                        RequestId=command.request_id,
                        FaceId=face_id,
                        CategoryId=command.category.display,
                        PersonId=command.person.display,
                    )
                except Rejected as refusal:
                    outcome.code, outcome.message = refusal.code, refusal.message
            await self._journal_unless_derivable(command, outcome)
        except RetriesExhausted as error:
            outcome.result, outcome.code = None, ErrorCode.INTERNAL
            outcome.message = f"errorMsg:{error}"
        except Exception as error:
            # Not transient and not a refusal: a bug or an input nothing foresaw. Answered
            # and logged with its traceback, so the partition moves on.
            log.exception("register failed", extra={"request_id": command.request_id})
            failed = unexpected_failure(error)
            outcome.result, outcome.code, outcome.message = None, failed.code, failed.message
        return outcome

    async def _journal_unless_derivable(self, command: RegisterFace, outcome: Outcome) -> None:
        """A registration that stored its own face is answered again from the store (or
        from the erasure that removed it). Any other answer depends on what the library
        held then (the same image under another FaceId, a full person, another person's
        face, a server that did not answer): it is journaled, so the command processed
        again answers the same and stores nothing the first time did not."""
        if outcome.code is None and outcome.face_id == command.face_id:
            return
        result = outcome.result or failed(
            command.request_id, outcome.code or ErrorCode.INTERNAL, outcome.message
        )
        # Answers that a later change of the library would turn (a place freed, a person
        # removed, the same image removed) are kept for good; the others, the input's own
        # (no face, a bad format, a download), as long as a list's.
        lasting = outcome.code in _LIBRARY_DEPENDENT or outcome.code is None
        retention_s = None if lasting else self._answer_retention_s
        entry = journal_entry(command.owner, ACTION, result, expires_at=expiry(retention_s))
        await self._retry.run(lambda: self._journal.keep(entry))

    async def _register(self, command: RegisterFace, outcome: Outcome) -> str:
        """The FaceId the command answers with; the image stored and its event in `outcome`
        when this command is the one that stored it (now or on an earlier delivery)."""
        face_id, timings = command.face_id, outcome.timings_ms
        with timed(timings, "store"):
            person = await self._retry.run(lambda: self._store.get_person(*command.person_ref))
        if await self._retry.run(lambda: self._journal.erased(command.owner, face_id)):
            # Processed again after its face was unregistered: the same answer, and the
            # face stays gone.
            return face_id
        if person is not None and (done := person.image_with_face_id(face_id)) is not None:
            await self._redone(command, done, outcome)
            return face_id
        with timed(timings, "fetch"):
            data = await self._fetcher.fetch(command.image_url)
        sha256 = hashlib.sha256(data).hexdigest()
        if person is not None and (same := person.image_with_sha256(sha256)) is not None:
            return same.face_id
        if person is not None and person.is_full:
            raise face_limit_exceeded(command.person.display)
        with timed(timings, "inference"):
            face = await self._retry.run(lambda: self._analyser.analyse(data))
        timings.update(face.timings_ms)
        self._check_match(person, face.embedding)
        await self._check_not_another_person(command, face.embedding)
        image = FaceImage(
            face_id=face_id,
            request_id=command.request_id,
            image_url=command.image_url,
            image_sha256=sha256,
            embedding=face.embedding,
            box=face.box,
            provenance=self._provenance,
            # MongoDB keeps milliseconds: an event re-published from the store must match.
            created_at=now_ms(),
        )
        with timed(timings, "store"):
            # The keys before the image: a stored face always has the keys its event needs.
            key = await self._retry.run(lambda: self._keys.key_for(command.owner, face_id))
            text_key = None
            if command.person_name is not None:
                text_key = await self._retry.run(
                    lambda: self._keys.key_for(command.owner, command.text_key_id)
                )
            stored = await self._retry.run(lambda: self._store.add_image(command, image))
        outcome.stored = stored is image
        if stored.face_id == face_id:
            # Also when a write that landed was retried and found its image there.
            self._known(command, stored)
            self._publish(command, stored, outcome, key, text_key)
        return stored.face_id

    async def _redone(self, command: RegisterFace, image: FaceImage, outcome: Outcome) -> None:
        """A command whose face is stored already: its name set again (a later command
        processed before it again may have changed it), its event published again."""
        if command.person_name is not None:
            name = Texts(person_name=command.person_name)
            tag = TagPerson(
                command.owner, command.request_id, command.category, command.person, name
            )
            await self._retry.run(lambda: self._store.tag(tag))
        self._known(command, image)
        # The keys are found, never made: a key that is gone belongs to an erased face,
        # whose event must not be published again readable.
        owner = command.owner
        key = await self._retry.run(lambda: self._keys.find(owner, image.face_id))
        if key is None:
            return
        text_key = None
        if command.person_name is not None:
            text_key = await self._retry.run(lambda: self._keys.find(owner, command.text_key_id))
        self._publish(command, image, outcome, key, text_key)

    def _known(self, command: RegisterFace, image: FaceImage) -> None:
        if self._vectors is not None:
            self._vectors.added(
                command.owner,
                command.category.key,
                command.person.key,
                image.face_id,
                image.embedding,
            )

    @staticmethod
    def _publish(
        command: RegisterFace,
        image: FaceImage,
        outcome: Outcome,
        key: bytes,
        text_key: bytes | None,
    ) -> None:
        """The face's event, sealed with the keys made before it was stored."""
        outcome.image = image
        outcome.event = face_registered(command, image, key, text_key)

    async def _check_not_another_person(
        self, command: RegisterFace, embedding: tuple[float, ...]
    ) -> None:
        """A face near another person's face of the library is that person, not this one.

        Such a registration is exclusive for its user (see `Scope`), so the library cannot
        change under the check."""
        distance, vectors = command.duplicate_max_distance, self._vectors
        if distance is None or vectors is None:
            return
        owner, category = command.owner, command.category
        library = await self._retry.run(lambda: vectors.library(owner, category.key))
        nearest = library.matches(np.asarray(embedding, dtype=np.float32), 2, distance)
        others = [match for match in nearest if match.person_key != command.person.key]
        if not others:
            return
        ref = (others[0].category_key, others[0].person_key)
        [other] = await self._retry.run(lambda: self._store.people(owner, [ref]))
        raise Rejected(
            ErrorCode.DUPLICATE_PERSON,
            f"the face is {others[0].distance:.2f} from a face of person {other.person_id!r} "
            f"of library {command.category.display!r}, within DuplicatePersonMaxDistance "
            f"{distance:g}",
        )

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
