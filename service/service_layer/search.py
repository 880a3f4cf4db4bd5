"""The SearchCustomFace use case: the persons nearest to each face of an image (1:N)."""

from __future__ import annotations

import asyncio

import numpy as np

from service.contracts.messages import (
    FaceBox,
    SearchedFace,
    SearchMatch,
    SearchSucceeded,
)
from service.contracts.record_size import MAX_MESSAGE_BYTES, message_bytes
from service.domain.commands import SearchFaces
from service.domain.errors import ErrorCode, Rejected
from service.domain.face_vectors import Match, nearest_persons
from service.domain.faces import AnalysedFace
from service.domain.journal import JournalEntry
from service.domain.person import Library, Person
from service.service_layer.journaled import (
    JournaledAnswers,
    JournaledHandler,
    expiry,
    journal_entry,
)
from service.service_layer.lookups import category_not_found
from service.service_layer.ports import FaceAnalyser, ImageFetcher, PersonStore
from service.service_layer.retry import RetryPolicy
from service.service_layer.vector_cache import VectorCache

ACTION = "SearchCustomFace"


class SearchFacesHandler(JournaledHandler[SearchFaces]):
    action = ACTION

    def __init__(
        self,
        store: PersonStore,
        fetcher: ImageFetcher,
        analyser: FaceAnalyser,
        vectors: VectorCache,
        answers: JournaledAnswers,
        retry: RetryPolicy,
        slots: asyncio.Semaphore,
        match_distance: float,
        answer_retention_s: float,
    ) -> None:
        super().__init__(answers)
        self._store = store
        self._fetcher = fetcher
        self._analyser = analyser
        self._vectors = vectors
        self._retry = retry
        self._slots = slots  # shared with registrations: they bound the images in memory
        self._match_distance = match_distance
        # An answer holds persons' names, a refusal may be a fetch that would pass now:
        # kept no longer than a list's.
        self.retention_s = answer_retention_s

    async def decide(self, command: SearchFaces) -> JournalEntry:
        owner = command.owner
        libraries = {}
        for category in command.categories:  # all of them, before any image is fetched
            library = await self._store.get_library(owner, category.key)
            if library is None:
                raise category_not_found(category.display)
            libraries[category.key] = library
        async with self._slots:
            data = await self._fetcher.fetch(command.image_url)
            faces = await self._retry.run(
                lambda: self._analyser.find_faces(data, command.max_faces)
            )
        vectors = [await self._vectors.library(owner, key) for key in libraries]
        distance = command.max_distance or self._match_distance
        found = [
            nearest_persons(
                vectors, np.asarray(face.embedding, np.float32), command.limit, distance
            )
            for face in faces
        ]
        refs = {(m.category_key, m.person_key) for matches in found for m in matches}
        persons = {(p.category_key, p.person_key): p for p in await self._store.people(owner, refs)}
        result = SearchSucceeded(
            RequestId=command.request_id,
            Faces=tuple(
                _face(face, matches, libraries, persons)
                for face, matches in zip(faces, found, strict=True)
            ),
        )
        if (size := message_bytes(result)) > MAX_MESSAGE_BYTES:
            # Long names, many faces, many matches each: an answer that could never be sent.
            raise Rejected(
                ErrorCode.INVALID_LIMIT,
                f"the answer ({len(faces)} faces, {sum(map(len, found))} matches) would take "
                f"{size} bytes, over the {MAX_MESSAGE_BYTES} of one Kafka record: ask for "
                "fewer matches (Limit) or faces (MaxFaces)",
            )
        return journal_entry(owner, ACTION, result, expires_at=expiry(self.retention_s))


def _face(
    face: AnalysedFace,
    matches: list[Match],
    libraries: dict[str, Library],
    persons: dict[tuple[str, str], Person],
) -> SearchedFace:
    box = face.box
    return SearchedFace(
        Box=FaceBox(X=box.x, Y=box.y, W=box.w, H=box.h),
        Matches=tuple(
            _match(
                match,
                libraries[match.category_key],
                persons.get((match.category_key, match.person_key)),
            )
            for match in matches
        ),
    )


def _match(match: Match, library: Library, person: Person | None) -> SearchMatch:
    return SearchMatch(
        CategoryId=library.category_id,
        PersonId=person.person_id if person else match.person_key,
        PersonName=person.person_name if person else None,
        FaceId=match.face_id,
        Distance=round(match.distance, 6),
    )
