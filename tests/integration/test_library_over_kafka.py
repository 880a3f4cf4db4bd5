"""Unregister, tag and list as a client sees them: commands produced to a real broker, the
service running real DeepFace inference, results read back from the results topic."""

from __future__ import annotations

import uuid
from typing import Any

from service.entrypoints.service_app import Service
from tests.support.commands import listing, tag, unregister
from tests.support.image_server import ImageServer
from tests.support.images import tom_variants
from tests.support.kafka_client import CommandClient


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def register(url: str, person: str = "P1", category: str = "Cat-1", **more: Any) -> dict[str, Any]:
    return {"CategoryId": category, "PersonId": person, "ImageUrl": url, **more}


def faces(image_server: ImageServer, count: int = 12) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [
        image_server.serve(f"/{tag}/tom-{i}.jpg", data)
        for i, data in enumerate(tom_variants(count))
    ]


async def answers(client: CommandClient, user: str, *bodies: dict[str, Any]) -> list[Any]:
    """The commands produced in order, and their results in that order."""
    ids = [await client.send(user, body) for body in bodies]
    results = await client.results_for(ids)
    return [results[request_id] for request_id in ids]


def listed_faces(page: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    return {
        (category["CategoryId"], person["PersonId"]): [f["FaceId"] for f in person["Faces"]]
        for category in page["Categories"]
        for person in category["Persons"]
    }


async def test_each_unregister_form_and_the_place_it_frees(
    client: CommandClient, image_server: ImageServer, service: Service
) -> None:
    user, urls = new_user(), faces(image_server)
    registered = await answers(client, user, *(register(url) for url in urls[:11]))
    ten = [r["FaceId"] for r in registered[:10]]

    one, refilled, whole_person = await answers(
        client,
        user,
        unregister("p1", ten[0].upper()),
        register(urls[10]),  # the 11th, refused before, now has a place
        unregister("P1", "ALL"),
    )
    library = await answers(
        client,
        user,
        register(urls[0], person="P2", category="Other"),
        register(urls[1], person="P3", category="other"),
        unregister("all", "all", category="OTHER"),
        listing(),
    )

    assert registered[10]["Code"] == "FaceLimitExceeded"
    assert one == {
        "RequestId": one["RequestId"],
        "CategoryId": "Cat-1",
        "PersonId": "p1",
        "FaceId": ten[0].upper(),
        "UnregisteredFaceCount": 1,
    }
    assert "FaceId" in refilled
    assert whole_person["UnregisteredFaceCount"] == 10
    assert library[2]["UnregisteredFaceCount"] == 2 and library[2]["PersonId"] == "all"
    assert library[3]["Categories"] == []
    assert await service.database["persons"].count_documents({"owner": user}) == 0
    assert await service.database["libraries"].count_documents({"owner": user}) == 0
    assert service.stores is not None
    for face_id in [*ten, refilled["FaceId"]]:
        assert await service.stores.keys.find(user, face_id) is None


async def test_the_same_image_registered_again_after_its_removal_gets_a_new_face_id(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, [url, *_] = new_user(), faces(image_server, 1)
    [first] = await answers(client, user, register(url))
    removed, again, page = await answers(
        client, user, unregister("P1", first["FaceId"]), register(url), listing()
    )

    assert removed["UnregisteredFaceCount"] == 1
    assert again["FaceId"] != first["FaceId"]
    assert listed_faces(page) == {("Cat-1", "P1"): [again["FaceId"]]}


async def test_tag_then_list_page_by_page(client: CommandClient, image_server: ImageServer) -> None:
    user, urls = new_user(), faces(image_server, 4)
    registered = await answers(
        client,
        user,
        register(urls[0], person="bob"),
        register(urls[1], person="Ann", PersonName="A."),
        register(urls[2], person="ann"),
        register(urls[3], person="Zed", category="Archive"),
    )
    tagged = await answers(
        client,
        user,
        tag("ANN", CategoryName="Staff", CategoryDescription="everyone", PersonName="Ann Lee"),
        tag("bob", PersonDescription="the tall one"),
        tag("bob", PersonDescription=""),
    )
    pages, token = [], None
    while True:
        [page] = await answers(
            client, user, listing(MaxResults=1, **({"NextToken": token} if token else {}))
        )
        pages.append(page)
        token = page["NextToken"]
        if token is None:
            break

    assert all(set(t) == {"RequestId", "CategoryId", "PersonId"} for t in tagged)
    assert [len(p["Categories"]) for p in pages] == [1, 1, 1]
    archive, staff_ann, staff_bob = (p["Categories"][0] for p in pages)
    assert (archive["CategoryId"], archive["CategoryName"]) == ("Archive", None)
    assert (staff_ann["CategoryId"], staff_ann["CategoryName"]) == ("Cat-1", "Staff")
    assert staff_ann["CategoryDescription"] == "everyone"
    [ann] = staff_ann["Persons"]
    assert (ann["PersonId"], ann["PersonName"]) == ("Ann", "Ann Lee")
    assert [f["FaceId"] for f in ann["Faces"]] == [r["FaceId"] for r in registered[1:3]]
    assert [f["ImageUrl"] for f in ann["Faces"]] == urls[1:3]
    [bob] = staff_bob["Persons"]
    assert (bob["PersonName"], bob["PersonDescription"]) == (None, None)
    assert "mbedding" not in str(pages)


async def test_every_new_error_code(client: CommandClient, image_server: ImageServer) -> None:
    user, [url] = new_user(), faces(image_server, 1)
    [face] = await answers(client, user, register(url))
    refused = await answers(
        client,
        user,
        unregister("P1", face["FaceId"], category="nowhere"),
        unregister("P2", face["FaceId"]),
        unregister("P1", "f" * 32),
        unregister("ALL", face["FaceId"]),
        unregister("P1", "x" * 121),
        {"Action": "UnregisterCustomFace", "CategoryId": "Cat-1", "PersonId": "P1"},
        tag("P1", CategoryName="n" * 513),
        tag("P1", CategoryDescription="d" * 513),
        tag("P1", PersonName="n" * 513),
        tag("P1", PersonDescription="d" * 513),
        tag("nobody", PersonName="x"),
        listing(MaxResults=101),
        listing(NextToken="bm90LWEtdG9rZW4"),
        {"Action": "ForgetCustomFace"},
    )

    assert [(r["Code"], r["HttpStatusCode"]) for r in refused] == [
        ("NotFound.Category", 404),
        ("NotFound.Person", 404),
        ("NotFound.Face", 404),
        ("InvalidParameter.FaceId", 400),
        ("InvalidParameter.FaceId", 400),
        ("InvalidParameter.FaceId", 400),
        ("InvalidParameter.CategoryName", 400),
        ("InvalidParameter.CategoryDescription", 400),
        ("InvalidParameter.PersonName", 400),
        ("InvalidParameter.PersonDescription", 400),
        ("NotFound.Person", 404),
        ("InvalidParameter.MaxResults", 400),
        ("InvalidParameter.NextToken", 400),
        ("InvalidParameter.Message", 400),
    ]
    assert all(r["Message"] for r in refused)


async def test_two_users_with_the_same_ids_never_touch_each_other(
    client: CommandClient, image_server: ImageServer
) -> None:
    alice, bob, urls = new_user(), new_user(), faces(image_server, 2)
    [alices] = await answers(client, alice, register(urls[0]))
    [bobs] = await answers(client, bob, register(urls[1]))

    bob_tries = await answers(
        client,
        bob,
        unregister("P1", alices["FaceId"]),
        tag("P1", PersonName="Bob"),
        unregister("ALL", "ALL"),
        listing(),
    )
    [alice_sees] = await answers(client, alice, listing(CategoryId="cat-1"))

    assert bob_tries[0]["Code"] == "NotFound.Face"
    assert bob_tries[2]["UnregisteredFaceCount"] == 1
    assert bob_tries[3]["Categories"] == []
    assert listed_faces(alice_sees) == {("Cat-1", "P1"): [alices["FaceId"]]}
    assert alice_sees["Categories"][0]["Persons"][0]["PersonName"] is None
    assert bobs["FaceId"] != alices["FaceId"]


async def test_an_unregister_and_a_list_processed_again_answer_byte_for_byte(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, urls = new_user(), faces(image_server, 2)
    first, _ = await answers(client, user, register(urls[0]), register(urls[1], person="P2"))
    removal = unregister("P1", first["FaceId"], RequestId=f"U-{uuid.uuid4()}")
    page = listing(RequestId=f"L-{uuid.uuid4()}")
    await answers(client, user, removal, page)

    # The same commands again (a producer's retry): P1 is gone and the library changed.
    await answers(client, user, register(urls[0], person="P3"))
    await client.send(user, removal)
    await client.send(user, page)
    for request_id in (removal["RequestId"], page["RequestId"]):
        await client.all_results(request_id, 2)

    for request_id in (removal["RequestId"], page["RequestId"]):
        once, again = client.raw_results[request_id]
        assert again == once
    assert b"UnregisteredFaceCount" in client.raw_results[removal["RequestId"]][0]
