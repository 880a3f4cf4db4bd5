"""The libraries' face vectors that searches use, held by the consumer that owns their
users' partitions.

A library is loaded from the store the first time it is searched, then kept current by
this consumer's own registrations and unregistrations: its user's commands all come
through this consumer, in partition order, and a search waits for the user's earlier
commands (its scope is exclusive), so what it sees is what the store holds. When
partitions move, everything is dropped and loaded again on demand by whichever consumer
owns them now.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from service.domain.face_vectors import LibraryVectors
from service.service_layer.ports import PersonStore


class VectorCache:
    def __init__(self, store: PersonStore) -> None:
        self._store = store
        self._libraries: dict[tuple[str, str], LibraryVectors] = {}

    async def library(self, owner: str, category_key: str) -> LibraryVectors:
        loaded = self._libraries.get((owner, category_key))
        if loaded is not None:
            return loaded
        persons = await self._store.persons_of_library(owner, category_key)
        library = LibraryVectors(category_key)
        images = [(person.person_key, image) for person in persons for image in person.images]
        if images:
            library.add_many(
                [person_key for person_key, _ in images],
                [image.face_id for _, image in images],
                np.asarray([image.embedding for _, image in images], dtype=np.float32),
            )
        # Loaded by the time the await returns: a concurrent load of the same library
        # (there is none while a search holds its user) would find this one.
        return self._libraries.setdefault((owner, category_key), library)

    def added(
        self,
        owner: str,
        category_key: str,
        person_key: str,
        face_id: str,
        embedding: tuple[float, ...],
    ) -> None:
        library = self._libraries.get((owner, category_key))
        if library is not None:
            library.add(person_key, face_id, embedding)

    def removed(self, owner: str, category_key: str, face_ids: Collection[str]) -> None:
        library = self._libraries.get((owner, category_key))
        if library is not None:
            library.remove(tuple(face_ids))

    def forget(self) -> None:
        self._libraries.clear()
