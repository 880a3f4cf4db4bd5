"""A library's face embeddings in one float32 matrix, searched exactly for nearest persons.

Sized for large libraries: a face costs its 128 float32 (512 bytes), its squared norm, a
32-byte FaceId and the index of its person, about 1.08 times its raw size; rows are
appended and removed in place (the last row fills a hole), and the matrix grows by a
quarter when full, so the spare room stays under a quarter of it.

The search is exact. It asks for one match per person (the person's nearest face), and a
person has at most `MAX_IMAGES_PER_PERSON` faces, so the nearest `limit` persons all have
their nearest face among the `limit * MAX_IMAGES_PER_PERSON` nearest faces: every face
nearer than that one belongs to one of the at most `limit - 1` persons ranked before it.
Those faces are picked from float32 distances, then measured again in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from service.domain.person import MAX_IMAGES_PER_PERSON

Floats = NDArray[np.float32]

_FIRST_ROWS = 64
_GROWTH = 1.25


@dataclass(frozen=True)
class Match:
    category_key: str
    person_key: str
    face_id: str
    distance: float


class LibraryVectors:
    """The faces of one library of one user."""

    def __init__(self, category_key: str, dimensions: int = 128) -> None:
        self.category_key = category_key
        self._dimensions = dimensions
        self._vectors: Floats = np.empty((0, dimensions), dtype=np.float32)
        self._norms: Floats = np.empty(0, dtype=np.float32)
        self._face_ids: NDArray[np.bytes_] = np.empty(0, dtype="S32")
        self._persons: NDArray[np.int32] = np.empty(0, dtype=np.int32)
        self._size = 0
        self._rows: dict[str, int] = {}  # FaceId -> row
        self._person_keys: list[str] = []
        self._person_index: dict[str, int] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the dictionaries of ids come on top)."""
        arrays = (self._vectors, self._norms, self._face_ids, self._persons)
        return sum(a.nbytes for a in arrays)

    def add(self, person_key: str, face_id: str, embedding: tuple[float, ...] | Floats) -> None:
        if face_id in self._rows:
            return
        if self._size == len(self._vectors):
            self._grow()
        row = self._size
        vector = np.asarray(embedding, dtype=np.float32)
        self._vectors[row] = vector
        self._norms[row] = np.dot(vector, vector)
        self._face_ids[row] = face_id.encode("ascii")
        self._persons[row] = self._person(person_key)
        self._rows[face_id] = row
        self._size += 1

    def add_many(self, person_keys: list[str], face_ids: list[str], vectors: Floats) -> None:
        """Faces in bulk (a load): one copy, not one per face."""
        fresh = [i for i, face_id in enumerate(face_ids) if face_id not in self._rows]
        needed = self._size + len(fresh)
        if needed > len(self._vectors):
            self._grow(needed)
        rows = np.arange(self._size, needed)
        chosen = vectors[fresh].astype(np.float32, copy=False)
        self._vectors[rows] = chosen
        self._norms[rows] = np.einsum("ij,ij->i", chosen, chosen)
        self._face_ids[rows] = [face_ids[i].encode("ascii") for i in fresh]
        self._persons[rows] = [self._person(person_keys[i]) for i in fresh]
        for row, i in zip(rows.tolist(), fresh, strict=True):
            self._rows[face_ids[i]] = row
        self._size = needed

    def remove(self, face_ids: list[str] | tuple[str, ...]) -> None:
        for face_id in face_ids:
            row = self._rows.pop(face_id, None)
            if row is None:
                continue
            last = self._size - 1
            if row != last:
                moved = self._face_ids[last].decode("ascii")
                for array in (self._vectors, self._norms, self._face_ids, self._persons):
                    array[row] = array[last]
                self._rows[moved] = row
            self._size = last

    def nearest_faces(self, query: Floats, count: int) -> tuple[NDArray[np.intp], Floats]:
        """Rows of the `count` nearest faces (in no order) and their squared distances."""
        size = self._size
        if size == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        # |x - q|^2 = |x|^2 - 2 x.q + |q|^2; the last term is the same for every row.
        scores = self._norms[:size] - 2 * (self._vectors[:size] @ query)
        rows = np.argpartition(scores, count - 1)[:count] if count < size else np.arange(size)
        return rows, scores[rows] + np.float32(np.dot(query, query))

    def matches(self, query: Floats, limit: int, max_distance: float) -> list[Match]:
        """The nearest `limit` persons within `max_distance`, each by its nearest face."""
        rows, _ = self.nearest_faces(query, limit * MAX_IMAGES_PER_PERSON)
        if not len(rows):
            return []
        exact = np.linalg.norm(
            self._vectors[rows].astype(np.float64) - query.astype(np.float64), axis=1
        )
        best: dict[int, tuple[float, int]] = {}
        for row, distance in zip(rows.tolist(), exact.tolist(), strict=True):
            person = int(self._persons[row])
            if distance <= max_distance and (person not in best or distance < best[person][0]):
                best[person] = (distance, row)
        ranked = sorted(best.items(), key=lambda item: (item[1][0], self._person_keys[item[0]]))
        return [
            Match(
                category_key=self.category_key,
                person_key=self._person_keys[person],
                face_id=self._face_ids[row].decode("ascii"),
                distance=distance,
            )
            for person, (distance, row) in ranked[:limit]
        ]

    def _person(self, person_key: str) -> int:
        index = self._person_index.get(person_key)
        if index is None:
            index = self._person_index[person_key] = len(self._person_keys)
            self._person_keys.append(person_key)
        return index

    def _grow(self, at_least: int = 0) -> None:
        rows = max(at_least, _FIRST_ROWS, int(len(self._vectors) * _GROWTH))
        self._vectors = _resized(self._vectors, rows)
        self._norms = _resized(self._norms, rows)
        self._face_ids = _resized(self._face_ids, rows)
        self._persons = _resized(self._persons, rows)


A = TypeVar("A", bound=np.generic)


def _resized(array: NDArray[A], rows: int) -> NDArray[A]:
    grown = np.empty((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def nearest_persons(
    libraries: list[LibraryVectors], query: Floats, limit: int, max_distance: float
) -> list[Match]:
    """Across libraries: each library's nearest persons, merged (a person is one of a
    library), nearest first."""
    found = [
        match for library in libraries for match in library.matches(query, limit, max_distance)
    ]
    return sorted(found, key=lambda m: (m.distance, m.category_key, m.person_key))[:limit]
