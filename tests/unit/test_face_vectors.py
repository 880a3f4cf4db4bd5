"""The library index against a plain brute force over every face: the same persons, in the
same order, at the same distances."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from service.domain.face_vectors import LibraryVectors, Match, nearest_persons


def reference(
    faces: dict[str, tuple[str, str, list[float]]],
    query: list[float],
    limit: int,
    max_distance: float,
) -> list[tuple[str, str, str]]:
    """(category, person, face) of the nearest persons, the slow and obvious way."""
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for face_id, (category, person, vector) in faces.items():
        distance = math.dist(vector, query)
        if distance <= max_distance and distance < best.get((category, person), (math.inf, ""))[0]:
            best[(category, person)] = (distance, face_id)
    ranked = sorted(best.items(), key=lambda item: (item[1][0], item[0]))
    return [(c, p, f) for (c, p), (_, f) in ranked[:limit]]


def library_of(
    rng: random.Random, category: str, persons: int, faces: dict[str, tuple[str, str, list[float]]]
) -> LibraryVectors:
    library = LibraryVectors(category)
    for p in range(persons):
        centre = [rng.gauss(0, 0.1) for _ in range(128)]
        for f in range(rng.randint(1, 10)):
            vector = [c + rng.gauss(0, 0.03) for c in centre]
            face_id = f"{category}{p:04d}{f:02d}".ljust(32, "0")[:32]
            library.add(f"person-{p}", face_id, tuple(vector))
            faces[face_id] = (category, f"person-{p}", vector)
    return library


def found(matches: list[Match]) -> list[tuple[str, str, str]]:
    return [(m.category_key, m.person_key, m.face_id) for m in matches]


@pytest.mark.parametrize("seed", range(5))
def test_the_nearest_persons_are_exactly_the_brute_forces(seed: int) -> None:
    rng = random.Random(seed)
    faces: dict[str, tuple[str, str, list[float]]] = {}
    libraries = [library_of(rng, "a", 60, faces), library_of(rng, "b", 40, faces)]
    for _ in range(10):
        _, _, near = faces[rng.choice(sorted(faces))]
        query = [v + rng.gauss(0, 0.02) for v in near]
        limit, max_distance = rng.choice([1, 5, 30]), rng.choice([0.3, 0.6, 10.0])

        matches = nearest_persons(libraries, np.asarray(query, np.float32), limit, max_distance)

        assert found(matches) == reference(faces, query, limit, max_distance)
        for match in matches:
            assert match.distance == pytest.approx(math.dist(faces[match.face_id][2], query))


def test_removed_faces_are_not_found_and_the_rest_still_are() -> None:
    rng = random.Random(7)
    faces: dict[str, tuple[str, str, list[float]]] = {}
    library = library_of(rng, "a", 30, faces)
    removed = sorted(faces)[::3]
    library.remove(removed)
    library.remove(removed)  # again: nothing
    for face_id in removed:
        del faces[face_id]

    for face_id in sorted(faces)[:20]:
        query = faces[face_id][2]
        matches = library.matches(np.asarray(query, np.float32), 3, 10.0)
        assert found(matches) == reference(faces, query, 3, 10.0)
    assert len(library) == len(faces)


def test_a_bulk_load_equals_faces_added_one_by_one() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 128)).astype(np.float32)
    persons = [f"p{i // 5}" for i in range(500)]
    face_ids = [f"{i:032x}" for i in range(500)]
    bulk, single = LibraryVectors("a"), LibraryVectors("a")
    bulk.add_many(persons, face_ids, vectors)
    bulk.add_many(persons[:10], face_ids[:10], vectors[:10])  # already there
    for person, face_id, vector in zip(persons, face_ids, vectors, strict=True):
        single.add(person, face_id, vector)

    for query in rng.normal(size=(5, 128)).astype(np.float32):
        assert bulk.matches(query, 7, 100.0) == single.matches(query, 7, 100.0)
    assert len(bulk) == 500


def test_an_empty_library_and_a_far_face_find_nothing() -> None:
    library = LibraryVectors("a")
    query = np.zeros(128, np.float32)
    assert library.matches(query, 5, 1.0) == []
    library.add("p", "f" * 32, tuple([1.0] * 128))
    assert library.matches(query, 5, 1.0) == []
    assert [m.person_key for m in library.matches(query, 5, 12.0)] == ["p"]


def test_memory_per_face_is_close_to_its_raw_size() -> None:
    library = LibraryVectors("a")
    count = 100_000
    rng = np.random.default_rng(1)
    library.add_many(
        [f"p{i // 10}" for i in range(count)],
        [f"{i:032x}" for i in range(count)],
        rng.normal(size=(count, 128)).astype(np.float32),
    )
    assert library.nbytes / (count * 512) < 1.1
