"""SearchCustomFace through the real wiring (`bootstrap`), with fakes of the ports whose
embeddings say who is in an image: `https://img.example/<who>/<n>.jpg`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest_asyncio

from service.domain.faces import AnalysedFace
from tests.fakes import (
    CountingAnalyser,
    MemoryStore,
)
from tests.support.commands import tag, unregister
from tests.support.wired_library import WiredLibrary as Library


def embedding(data: bytes) -> tuple[float, ...]:
    """Images of one person lie within 0.1 of each other; persons lie about 1.4 apart."""
    who, _, which = data.decode().rpartition("/")
    person = np.random.default_rng(int(hashlib.sha256(who.encode()).hexdigest()[:8], 16))
    image = np.random.default_rng(int(hashlib.sha256(which.encode()).hexdigest()[:8], 16))
    centre = person.normal(size=128)
    centre /= np.linalg.norm(centre)
    return tuple(float(v) for v in centre + image.normal(scale=0.005, size=128))


@pytest_asyncio.fixture
async def library() -> AsyncIterator[Library]:
    made = Library(analyser=CountingAnalyser(embed=embedding))
    yield made
    await made.close()


def register(
    who: str, n: int, person: str | None = None, category: str = "Cat-1"
) -> dict[str, Any]:
    url = f"https://img.example/{who}/{n}.jpg"
    return {"CategoryId": category, "PersonId": person or who, "ImageUrl": url}


def search(who: str, n: int, *categories: str, **more: Any) -> dict[str, Any]:
    return {
        "Action": "SearchCustomFace",
        "CategoryIds": list(categories or ("Cat-1",)),
        "ImageUrl": f"https://img.example/{who}/{n}.jpg",
        **more,
    }


class TenFaces(CountingAnalyser):
    """Every image shows the same face ten times: a crowd of one."""

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        return [await self.analyse(data)] * max_faces


def matched(answer: dict[str, Any]) -> list[list[str]]:
    return [[m["PersonId"] for m in face["Matches"]] for face in answer["Faces"]]


async def test_a_registered_person_is_found_first_in_one_library_and_across_two(
    library: Library,
) -> None:
    await library.send(
        register("ann", 1), register("ann", 2), register("bob", 1), register("cy", 1, category="B")
    )
    await library.one(tag("ann", PersonName="Ann Lee"))

    one = await library.one(search("ann", 9))
    two = await library.one(search("cy", 9, "cat-1", "b", "CAT-1"))

    [face] = one["Faces"]
    [best] = face["Matches"]  # bob is far: beyond the default 0.6
    assert (best["CategoryId"], best["PersonId"], best["PersonName"]) == ("Cat-1", "ann", "Ann Lee")
    assert best["Distance"] < 0.2 and set(face["Box"]) == {"X", "Y", "W", "H"}
    assert matched(two) == [["cy"]] and two["Faces"][0]["Matches"][0]["CategoryId"] == "B"


async def test_limit_and_max_distance_cut_the_answer(library: Library) -> None:
    await library.send(*(register(who, 1) for who in ("ann", "bob", "cy", "dee")))

    everyone = await library.one(search("ann", 9, MaxDistance=10, Limit=100))
    two = await library.one(search("ann", 9, MaxDistance=10, Limit=2))
    near = await library.one(search("ann", 9, MaxDistance=0.3))

    distances = [m["Distance"] for m in everyone["Faces"][0]["Matches"]]
    assert matched(everyone)[0][0] == "ann" and len(distances) == 4
    assert distances == sorted(distances)
    assert matched(two) == [matched(everyone)[0][:2]]
    assert matched(near) == [["ann"]]


async def test_a_removed_face_and_a_removed_person_are_no_longer_found(
    library: Library,
) -> None:
    first, _, _ = await library.send(register("ann", 1), register("ann", 2), register("bob", 1))
    before = await library.one(search("ann", 1))  # loads the library into memory

    await library.one(unregister("ann", first["FaceId"]))
    after_face = await library.one(search("ann", 1))
    await library.one(unregister("bob", "ALL"))
    after_person = await library.one(search("bob", 5, MaxDistance=10))

    assert before["Faces"][0]["Matches"][0]["FaceId"] == first["FaceId"]
    assert after_face["Faces"][0]["Matches"][0]["FaceId"] != first["FaceId"]
    assert "bob" not in matched(after_person)[0]


async def test_a_face_registered_after_the_library_was_loaded_is_found(
    library: Library,
) -> None:
    await library.one(register("ann", 1))
    await library.one(search("ann", 1))
    await library.one(register("bob", 1))

    assert matched(await library.one(search("bob", 2))) == [["bob"]]


async def test_another_users_libraries_are_never_searched(library: Library) -> None:
    await library.one(register("ann", 1))

    stranger = await library.one(search("ann", 1), user=b"user-2")

    assert (stranger["Code"], stranger["HttpStatusCode"]) == ("NotFound.Category", 404)
    assert "'Cat-1'" in stranger["Message"]


async def test_a_search_processed_again_answers_as_the_first_time(library: Library) -> None:
    await library.one(register("ann", 1))
    body = search("ann", 3, RequestId="S1")
    first = await library.one(body)
    await library.one(register("ann", 3))  # the very image searched, now registered
    fetched = library.fetcher.calls

    again = await library.one(body)

    assert json.dumps(again) == json.dumps(first)
    assert library.fetcher.calls == fetched  # answered from the journal


async def test_invalid_search_fields_get_their_codes(library: Library) -> None:
    await library.one(register("ann", 1))
    answers = await library.send(
        search("ann", 1, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"),
        {**search("ann", 1), "CategoryIds": []},
        {**search("ann", 1), "CategoryIds": ["x" * 121]},
        search("ann", 1, MaxFaces=11),
        search("ann", 1, Limit=0),
        search("ann", 1, MaxDistance=0),
        search("ann", 1, "Cat-1", "missing"),
        {**search("ann", 1), "ImageUrl": "ftp://img.example/a.jpg"},
    )

    assert [a["Code"] for a in answers] == [
        "InvalidParameter.CategoryIds",
        "InvalidParameter.CategoryIds",
        "InvalidParameter.CategoryIds",
        "InvalidParameter.MaxFaces",
        "InvalidParameter.Limit",
        "InvalidParameter.MaxDistance",
        "NotFound.Category",
        "InvalidParameter.ImageUrl",
    ]
    assert "'missing'" in answers[6]["Message"]
    assert isinstance(library.stores.persons, MemoryStore)


async def test_a_searchs_journaled_answer_expires_a_refusal_too(library: Library) -> None:
    await library.one(register("ann", 1))
    await library.send(search("ann", 1, RequestId="S-ok"), search("ann", 1, "no", RequestId="S-no"))

    journal = library.stores.journal
    found = [await journal.find("user-1", "SearchCustomFace", r) for r in ("S-ok", "S-no")]
    assert all(entry is not None and entry.expires_at is not None for entry in found)


async def test_the_duplicate_guard_refuses_another_persons_face_only_when_asked(
    library: Library,
) -> None:
    await library.one(register("ann", 1, person="Ann"))
    guarded = {"DuplicatePersonMaxDistance": 0.6}

    refused, same_person, other_face, unguarded, invalid = await library.send(
        {**register("ann", 2, person="Bob"), **guarded},
        {**register("ann", 3, person="ann"), **guarded},
        {**register("cy", 1, person="Bob"), **guarded},
        register("ann", 4, person="Eve"),  # the same face, unguarded: taken
        {**register("ann", 5, person="Dee"), "DuplicatePersonMaxDistance": 0},
    )

    assert (refused["Code"], refused["HttpStatusCode"]) == ("InvalidImage.DuplicatePerson", 400)
    assert "'Ann'" in refused["Message"] and "0.6" in refused["Message"]
    assert "FaceId" in same_person and "FaceId" in other_face and "FaceId" in unguarded
    assert invalid["Code"] == "InvalidParameter.DuplicatePersonMaxDistance"


async def test_an_answer_too_large_for_one_record_says_to_ask_for_less() -> None:
    library = Library(analyser=TenFaces(embed=embedding))
    try:
        await library.send(register("ann", 1))
        [ann] = library.persons.persons.values()
        for n in range(100):  # persons with long names, all near ann
            library.persons.persons[("user-1", "cat-1", f"p{n}")] = dataclasses.replace(
                ann,
                person_id=f"P{n}",
                person_key=f"p{n}",
                person_name="名" * 512,
                images=(dataclasses.replace(ann.images[0], face_id=f"{n:032x}"),),
            )

        refused = await library.one(search("ann", 9, MaxDistance=10, Limit=100, MaxFaces=10))
        smaller = await library.one(search("ann", 9, MaxDistance=10, Limit=20, MaxFaces=10))

        assert refused["Code"] == "InvalidParameter.Limit", refused
        assert "(10 faces, 1000 matches)" in refused["Message"]
        assert "fewer matches (Limit) or faces (MaxFaces)" in refused["Message"]
        assert [len(face["Matches"]) for face in smaller["Faces"]] == [20] * 10
    finally:
        await library.close()
