"""Unregister, tag and list through the real wiring (`bootstrap`), with fakes of the ports."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

import pytest_asyncio

from service.contracts.face_events import opened, opened_texts
from service.contracts.messages import FaceEvent, FaceRegistered
from service.domain.errors import TransientError
from service.service_layer.ports import Stores
from service.service_layer.restore import apply_face_events
from service.service_layer.retry import RetryPolicy
from tests.fakes import (
    MemoryJournal,
    MemoryStore,
    memory_stores,
)
from tests.support.commands import listing, tag, unregister
from tests.support.wired_library import WiredLibrary as Library

Make = Callable[..., Library]


@pytest_asyncio.fixture
async def libraries() -> AsyncIterator[Make]:
    made: list[Library] = []

    def make(stores: Stores | None = None, **settings: Any) -> Library:
        made.append(Library(stores, **settings))
        return made[-1]

    yield make
    for library in made:
        await library.close()


def register(person: str, image: str, category: str = "Cat-1", **more: Any) -> dict[str, Any]:
    url = f"https://img.example/{image}.jpg"
    return {"CategoryId": category, "PersonId": person, "ImageUrl": url, **more}


def faces_of(library: Library, person_key: str, category_key: str = "cat-1") -> list[str]:
    person = library.persons.persons.get(("user-1", category_key, person_key))
    return [image.face_id for image in person.images] if person else []


async def test_unregistering_a_face_removes_it_its_key_and_then_its_empty_person(
    libraries: Make,
) -> None:
    library = libraries()
    first, second = await library.send(register("P1", "a"), register("P1", "b"))

    removed = await library.one(unregister("P1", first["FaceId"].upper(), RequestId="U1"))

    assert removed == {
        "RequestId": "U1",
        "CategoryId": "Cat-1",
        "PersonId": "P1",
        "FaceId": first["FaceId"].upper(),
        "UnregisteredFaceCount": 1,
    }
    assert faces_of(library, "p1") == [second["FaceId"]]
    assert await library.stores.keys.find("user-1", first["FaceId"]) is None
    assert await library.stores.keys.find("user-1", second["FaceId"]) is not None
    last = await library.one(unregister("p1", second["FaceId"]))
    assert last["UnregisteredFaceCount"] == 1
    assert library.persons.persons == {}
    assert await library.stores.persons.get_library("user-1", "cat-1") is None


async def test_all_faces_of_a_person_and_all_persons_of_a_library(
    libraries: Make,
) -> None:
    library = libraries()
    await library.send(
        register("P1", "a"),
        register("P1", "b"),
        register("P2", "c"),
        register("P3", "d", category="Other"),
    )

    person = await library.one(unregister("P1", "all"))
    whole = await library.one(unregister("ALL", "ALL", category="cat-1"))

    assert person["UnregisteredFaceCount"] == 2 and person["FaceId"] == "all"
    assert whole["UnregisteredFaceCount"] == 1 and whole["PersonId"] == "ALL"
    assert [key for _, key, _ in library.persons.persons] == ["other"]
    unregistered = [e for e in library.published_events() if e.Type == "FacesUnregistered"]
    assert [len(e.FaceIds) for e in unregistered] == [2, 1]
    assert all("Embedding" not in e.model_dump_json() for e in unregistered)


async def test_a_library_too_large_for_one_event_is_refused_before_anything_is_erased(
    libraries: Make,
) -> None:
    library = libraries()
    [first] = await library.send(register("P1", "a"))
    [person] = library.persons.persons.values()
    # 2,900 persons of 10 faces: 29,000 FaceIds do not fit one Kafka record.
    for n in range(2, 2902):
        images = tuple(
            dataclasses.replace(person.images[0], face_id=f"{n:016x}{i:016x}") for i in range(10)
        )
        key = ("user-1", "cat-1", f"p{n}")
        library.persons.persons[key] = dataclasses.replace(
            person, person_id=f"P{n}", person_key=f"p{n}", images=images
        )
    events_before = len(library.events.published)

    refused = await library.one(unregister("ALL", "ALL"))
    one = await library.one(unregister("P2", "ALL"))

    assert refused["Code"] == "LibraryTooLarge", refused
    assert "library 'Cat-1' has 29001 faces and 0 person-text keys" in refused["Message"]
    assert "new RequestId" in refused["Message"]
    assert one["UnregisteredFaceCount"] == 10  # the partition went on
    assert len(library.persons.persons) == 2900
    assert faces_of(library, "p1") == [first["FaceId"]]
    assert await library.stores.keys.find("user-1", first["FaceId"]) is not None
    [event] = library.published_events()[events_before:]
    assert event.Type == "FacesUnregistered" and len(event.FaceIds) == 10


def padded(library: Library, persons: int, url_chars: int) -> None:
    """`persons` more persons of 10 faces each, copied from the first one, whose image URLs
    have `url_chars` characters."""
    [person] = library.persons.persons.values()
    for n in range(2, persons + 2):
        images = tuple(
            dataclasses.replace(
                person.images[0],
                face_id=f"{n:016x}{i:016x}",
                image_url=f"https://img.example/{n}/{i}?" + "q" * url_chars,
            )
            for i in range(10)
        )
        key = ("user-1", "cat-1", f"p{n:04}")
        library.persons.persons[key] = dataclasses.replace(
            person, person_id=f"P{n:04}", person_key=f"p{n:04}", images=images
        )


async def test_a_page_too_large_for_one_record_ends_early_and_the_next_goes_on(
    libraries: Make,
) -> None:
    library = libraries()
    await library.send(register("P0001", "a"))
    padded(library, persons=120, url_chars=1_100)  # 100 persons: 1.2 MB

    pages = [await library.one(listing(MaxResults=100))]
    while token := pages[-1].get("NextToken"):
        pages.append(await library.one(listing(MaxResults=100, NextToken=token)))

    sizes = [len(json.dumps(page, separators=(",", ":")).encode()) for page in pages]
    counts = [sum(len(c["Persons"]) for c in page["Categories"]) for page in pages]
    assert 80 <= counts[0] < 100 and max(sizes) <= 1_000_000, (counts, sizes)
    listed = [p["PersonId"] for page in pages for c in page["Categories"] for p in c["Persons"]]
    assert listed == sorted(listed) and len(listed) == len(set(listed)) == 121


async def test_paging_goes_past_an_id_that_grows_under_nfkc(libraries: Make) -> None:
    library = libraries()
    grows = "\ufdfa" * 120  # one character, eighteen once normalized
    await library.send(register(grows, "a"), register("\U0001f600", "b"))  # sorts after

    first = await library.one(listing(MaxResults=1))
    second = await library.one(listing(MaxResults=1, NextToken=first["NextToken"]))

    assert len(first["NextToken"]) > 1024
    assert first["Categories"][0]["Persons"][0]["PersonId"] == grows
    assert second["Categories"][0]["Persons"][0]["PersonId"] == "\U0001f600"


async def test_a_result_kafka_cannot_take_is_answered_with_what_went_wrong(
    libraries: Make,
) -> None:
    library = libraries()
    await library.send(register("P0001", "a"))
    padded(library, persons=1, url_chars=300)
    library.results.max_bytes = 2_000  # as if Kafka took no more: no page can be cut to fit

    refused = await library.one(listing(PersonId="P0002", CategoryId="Cat-1"))
    after = await library.one(listing(PersonId="P0001", CategoryId="Cat-1"))

    assert refused["Code"] == "InternalError"
    assert "too large for one Kafka record" in refused["Message"]
    assert after["Categories"][0]["Persons"][0]["PersonId"] == "P0001"  # it went on


async def test_a_freed_place_counts_at_once_against_the_cap(
    libraries: Make,
) -> None:
    library = libraries()
    results = await library.send(*(register("P1", f"img-{n}") for n in range(10)))
    refused = await library.one(register("P1", "img-10"))
    await library.one(unregister("P1", results[3]["FaceId"]))
    again = await library.one(register("P1", "img-10"))

    assert refused["Code"] == "FaceLimitExceeded"
    assert "FaceId" in again and len(faces_of(library, "p1")) == 10


async def test_an_unregister_processed_again_answers_and_publishes_as_the_first_time(
    libraries: Make,
) -> None:
    library = libraries()
    face = (await library.one(register("P1", "a")))["FaceId"]
    body = unregister("P1", face, RequestId="U1")

    first = await library.one(body)
    events_before = len(library.events.published)
    again = await library.one(body)  # the face is gone by now

    assert json.dumps(again) == json.dumps(first)
    [event, repeated] = library.events.dumps()[events_before - 1 :]
    assert repeated == event


async def test_a_registration_processed_again_after_its_face_was_removed_stays_removed(
    libraries: Make,
) -> None:
    library = libraries()
    body = register("P1", "a", RequestId="R1")
    first = await library.one(body)
    await library.one(unregister("P1", first["FaceId"]))
    fetched = library.fetcher.calls

    again = await library.one(body)
    renewed = await library.one(register("P1", "a", RequestId="R2"))  # the same bytes

    assert again == first
    assert library.fetcher.calls == fetched + 1  # only the new registration fetched
    assert renewed["FaceId"] != first["FaceId"]
    assert faces_of(library, "p1") == [renewed["FaceId"]]


async def test_not_found_codes_name_what_is_missing(libraries: Make) -> None:
    library = libraries()
    face = (await library.one(register("P1", "a")))["FaceId"]

    answers = await library.send(
        unregister("P1", face, category="nope"),
        unregister("P2", face),
        unregister("P1", "0" * 32),
        unregister("ALL", "ALL", category="nope"),
        {"Action": "TagCustomPerson", "CategoryId": "Cat-1", "PersonId": "P9", "PersonName": "x"},
    )

    assert [(a["Code"], a["HttpStatusCode"]) for a in answers] == [
        ("NotFound.Category", 404),
        ("NotFound.Person", 404),
        ("NotFound.Face", 404),
        ("NotFound.Category", 404),
        ("NotFound.Person", 404),
    ]
    assert "'P2'" in answers[1]["Message"] and "'Cat-1'" in answers[1]["Message"]


async def test_tag_then_list_pages_of_one_through_two_libraries(
    libraries: Make,
) -> None:
    library = libraries()
    await library.send(
        register("b-person", "b1", PersonName="Bee"),
        register("A-person", "a1"),
        register("A-person", "a2"),
        register("c", "c1", category="Zoo"),
    )
    tagged = await library.one(
        {
            "Action": "TagCustomPerson",
            "CategoryId": "CAT-1",
            "PersonId": "a-PERSON",
            "CategoryName": "Staff",
            "PersonName": "Ann",
            "PersonDescription": "",
        }
    )
    pages, token = [], None
    while True:
        page = await library.one(listing(MaxResults=1, **({"NextToken": token} if token else {})))
        pages.append(page)
        token = page["NextToken"]
        if token is None:
            break

    assert tagged == {
        "RequestId": tagged["RequestId"],
        "CategoryId": "CAT-1",
        "PersonId": "a-PERSON",
    }
    listed = [
        (c["CategoryId"], c["CategoryName"], p["PersonId"], p["PersonName"], len(p["Faces"]))
        for page in pages
        for c in page["Categories"]
        for p in c["Persons"]
    ]
    assert listed == [
        ("Cat-1", "Staff", "A-person", "Ann", 2),
        ("Cat-1", "Staff", "b-person", "Bee", 1),
        ("Zoo", None, "c", None, 1),
    ]
    assert all(len(page["Categories"]) == 1 for page in pages)
    assert "Embedding" not in json.dumps(pages) and "embedding" not in json.dumps(pages)


async def test_list_of_one_library_or_person_and_of_nothing(
    libraries: Make,
) -> None:
    library = libraries()
    await library.send(register("P1", "a"), register("P2", "b"), register("P1", "c", category="X"))

    one_library = await library.one(listing(CategoryId="cat-1"))
    one_person = await library.one(listing(CategoryId="x", PersonId="p1"))
    nothing = await library.one(listing(CategoryId="missing"))
    stranger = await library.one(listing(), user=b"user-2")

    assert [p["PersonId"] for p in one_library["Categories"][0]["Persons"]] == ["P1", "P2"]
    assert [c["CategoryId"] for c in one_person["Categories"]] == ["X"]
    assert nothing["Categories"] == [] and nothing["NextToken"] is None
    assert stranger["Categories"] == []


async def test_a_list_processed_again_answers_as_the_first_time_after_changes(
    libraries: Make,
) -> None:
    library = libraries()
    await library.one(register("P1", "a"))
    body = listing(RequestId="L1")
    first = await library.one(body)
    await library.one(register("P2", "b"))

    again = await library.one(body)

    assert json.dumps(again) == json.dumps(first)


async def test_invalid_list_and_tag_fields_get_their_codes(
    libraries: Make,
) -> None:
    library = libraries()
    answers = await library.send(
        listing(MaxResults=0),
        listing(MaxResults=101),
        listing(NextToken="not-a-token"),
        listing(PersonId="p1"),
        {"Action": "TagCustomPerson", "CategoryId": "c", "PersonId": "p"},
        {
            "Action": "TagCustomPerson",
            "CategoryId": "c",
            "PersonId": "p",
            "CategoryName": "n" * 513,
        },
        unregister("ALL", "some-face"),
        unregister("P1", "f" * 121),
        {"Action": "UnregisterCustomFace", "CategoryId": "c", "PersonId": "p"},
        {"Action": "DeleteCustomFace", "CategoryId": "c"},
    )

    assert [a["Code"] for a in answers] == [
        "InvalidParameter.MaxResults",
        "InvalidParameter.MaxResults",
        "InvalidParameter.NextToken",
        "InvalidParameter.PersonId",
        "InvalidParameter.Message",
        "InvalidParameter.CategoryName",
        "InvalidParameter.FaceId",
        "InvalidParameter.FaceId",
        "InvalidParameter.FaceId",
        "InvalidParameter.Message",
    ]


async def test_each_action_has_its_own_rate_budget(libraries: Make) -> None:
    library = libraries(rate_limit_per_second=1, list_rate_limit_per_second=2)
    answers = await library.send(
        register("P1", "a"), listing(), listing(), listing(), register("P1", "b")
    )

    assert ["Code" in a for a in answers] == [False, False, False, True, True]
    assert answers[3]["Code"] == "Throttling.User" and "ListCustomPersons" in answers[3]["Message"]


async def _events(events: Sequence[FaceEvent]) -> AsyncIterator[FaceEvent]:
    for event in events:
        yield event


async def test_a_store_rebuilt_from_the_events_equals_the_live_one(
    libraries: Make,
) -> None:
    library = libraries()
    # P1's name came with the face that is removed later: it stays with P1.
    removed, kept = await library.send(
        register("P1", "a", PersonName="Ann"), register("p1", "b", category="CAT-1")
    )
    await library.send(
        register("P2", "c", PersonName="Bo"),
        tag("P2", CategoryName="L", PersonDescription="tall"),
        unregister("P1", removed["FaceId"], RequestId="U1"),
        register("P3", "d", category="Gone", PersonName="Gone soon"),
        tag("P3", category="Gone", PersonName="Gone too"),
        unregister("ALL", "ALL", category="Gone"),
    )
    # Q1 and its library are spelled as the face removed later spelled them.
    first_q = await library.one(register("Q1", "e", category="Quiet"))
    kept_q, _ = await library.send(
        register("q1", "f", category="QUIET"), unregister("Q1", first_q["FaceId"], category="Quiet")
    )
    events = library.published_events()
    # An empty store and journal, with the keys the service has: a rebuild after a restart.
    rebuilt = Stores(MemoryStore(), MemoryJournal(), library.stores.keys)

    counts = await apply_face_events(_events(events), rebuilt, RetryPolicy(1, 0))

    assert isinstance(rebuilt.persons, MemoryStore)
    assert library.persons.persons[("user-1", "cat-1", "p1")].person_name == "Ann"
    assert rebuilt.persons.persons == library.persons.persons
    assert rebuilt.persons.libraries_made == library.persons.libraries_made
    assert counts["erased"] == 3 and counts["stored"] == 3
    assert library.persons.persons[("user-1", "quiet", "q1")].person_id == "Q1"
    assert await rebuilt.journal.erased("user-1", removed["FaceId"])
    assert await rebuilt.journal.find("user-1", "UnregisterCustomFace", "U1") == (
        await library.stores.journal.find("user-1", "UnregisterCustomFace", "U1")
    )
    sealed = [e for e in events if isinstance(e, FaceRegistered)]
    readable = [
        e.FaceId for e in sealed if (key := await library.stores.keys.find(e.Owner, e.FaceId))
    ]
    p2 = next(e.FaceId for e in sealed if e.PersonId == "P2")
    assert readable == [kept["FaceId"], p2, kept_q["FaceId"]]
    for event in sealed:
        key = await library.stores.keys.find(event.Owner, event.FaceId)
        if key is not None:
            _, image = opened(event, key, None)
            assert len(image.embedding) == 128


async def test_names_travel_sealed_and_go_with_their_person(libraries: Make) -> None:
    library = libraries()
    await library.send(register("P1", "a", PersonName="Ann Lee"), register("P2", "b"))
    await library.send(
        tag("P1", PersonName="Ann Lee-Smith", PersonDescription="pilot"),
        tag("P2", PersonName="Bob Stone"),
    )
    await library.one(unregister("P1", "ALL"))

    on_the_log = json.dumps(library.events.dumps())
    assert all(text not in on_the_log for text in ("Ann Lee", "pilot", "Bob Stone"))
    readable = []
    for event in library.published_events():
        texts = getattr(event, "PersonTexts", None)
        if texts is not None and (key := await library.stores.keys.find("user-1", texts.KeyId)):
            readable.append(opened_texts("user-1", texts, key).PersonName)
    assert readable == ["Bob Stone"]  # P1's texts went with P1


class FlakyRemovals(MemoryStore):
    """Removing faces fails `failures` times in a row, as a MongoDB failover would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.removal_failures = failures

    async def remove_faces(self, owner: str, category_key: str, face_ids: Collection[str]) -> None:
        if self.removal_failures > 0:
            self.removal_failures -= 1
            raise TransientError("MongoDB failed removing faces: AutoReconnect")
        await super().remove_faces(owner, category_key, face_ids)


async def test_a_decided_unregister_is_applied_before_it_is_answered(libraries: Make) -> None:
    flaky = FlakyRemovals(failures=5)  # more than the retry budget of 2
    rewired = libraries(stores=memory_stores(flaky))
    face = (await rewired.one(register("P1", "a")))["FaceId"]

    removed = await rewired.one(unregister("P1", face))

    assert removed["UnregisteredFaceCount"] == 1  # not InternalError
    assert flaky.persons == {} and flaky.removal_failures == 0


async def test_commands_processed_again_leave_the_name_the_last_one_gave(libraries: Make) -> None:
    library = libraries()
    await library.one(register("P1", "a", PersonName="A"))
    retag = tag("P1", PersonName="B", RequestId="T1")
    rename = register("P1", "c", PersonName="C", RequestId="R-C")
    await library.send(retag, rename)

    await library.send(retag, rename)  # both again, in order, as after a crash

    assert library.persons.persons[("user-1", "cat-1", "p1")].person_name == "C"


async def test_a_tag_processed_again_does_not_name_a_person_registered_anew(
    libraries: Make,
) -> None:
    library = libraries()
    await library.one(register("P1", "a"))
    old_tag = tag("P1", PersonName="Old", RequestId="T-old")
    await library.one(old_tag)
    await library.one(unregister("P1", "ALL"))
    await library.one(register("P1", "b"))

    again = await library.one(old_tag)

    assert "Code" not in again  # answered as the first time
    assert library.persons.persons[("user-1", "cat-1", "p1")].person_name is None


async def test_registrations_processed_again_answer_as_before_whatever_changed_since(
    libraries: Make,
) -> None:
    library = libraries()
    first = await library.one(register("P1", "a", RequestId="R-a"))
    same_bytes = register("P1", "a", RequestId="R-a-again")
    deduped = await library.one(same_bytes)
    ten = await library.send(*(register("P2", f"img-{n}") for n in range(10)))
    eleventh = register("P2", "img-10", RequestId="R-11th")
    refused = await library.one(eleventh)
    await library.send(unregister("P1", first["FaceId"]), unregister("P2", ten[0]["FaceId"]))

    again = await library.send(same_bytes, eleventh)

    assert deduped["FaceId"] == first["FaceId"] and refused["Code"] == "FaceLimitExceeded"
    assert again == [deduped, refused]
    assert faces_of(library, "p1") == [] and len(faces_of(library, "p2")) == 9
