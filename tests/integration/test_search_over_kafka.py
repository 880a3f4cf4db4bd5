"""SearchCustomFace as a client sees it: real broker, real inference, real images."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.commands import unregister
from tests.support.image_server import ImageServer
from tests.support.images import astronaut_variants, fixture_bytes
from tests.support.kafka_client import CommandClient

# Where t1_face_other.png was cropped from in t1.jpg (tests/fixtures/SOURCES.md).
OTHER_IN_GROUP = (54, 266, 110, 129)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def register(url: str, person: str, category: str, **more: Any) -> dict[str, Any]:
    return {"CategoryId": category, "PersonId": person, "ImageUrl": url, **more}


def search(url: str, *categories: str, **more: Any) -> dict[str, Any]:
    return {"Action": "SearchCustomFace", "CategoryIds": list(categories), "ImageUrl": url, **more}


async def answers(client: CommandClient, user: str, *bodies: dict[str, Any]) -> list[Any]:
    ids = [await client.send(user, body) for body in bodies]
    results = await client.results_for(ids)
    return [results[request_id] for request_id in ids]


def persons(face: dict[str, Any]) -> list[str]:
    return [match["PersonId"] for match in face["Matches"]]


def overlap(box: dict[str, int], other: tuple[int, int, int, int]) -> float:
    x, y, w, h = other
    width = min(box["X"] + box["W"], x + w) - max(box["X"], x)
    height = min(box["Y"] + box["H"], y + h) - max(box["Y"], y)
    return max(0, width) * max(0, height) / (w * h)


class Images:
    def __init__(self, server: ImageServer) -> None:
        tag = uuid.uuid4().hex[:6]
        variants = astronaut_variants(6)
        self.astronaut = server.serve(f"/{tag}/astronaut.png", variants[0])
        self.astronaut_again = server.serve(f"/{tag}/astronaut-5.png", variants[5])
        self.tom = server.serve(f"/{tag}/tom.png", fixture_bytes("Tom_Hanks_54745.png"))
        self.other = server.serve(f"/{tag}/other.png", fixture_bytes("t1_face_other.png"))
        self.group = server.serve(f"/{tag}/group.jpg", fixture_bytes("t1.jpg"))
        self.cup = server.serve(f"/{tag}/cup.png", fixture_bytes("coffee.png"))


async def test_a_registered_person_is_found_first_in_one_library_and_across_two(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    await answers(
        client,
        user,
        register(images.astronaut, "Eileen", "Crew", PersonName="Eileen Collins"),
        register(images.tom, "Tom", "Crew"),
        register(images.other, "Other", "Guests"),
    )

    one, two, same = await answers(
        client,
        user,
        search(images.astronaut_again, "crew"),
        search(images.other, "Crew", "GUESTS", MaxDistance=10, Limit=3),
        search(images.astronaut, "Crew", MaxDistance=0.01),
    )

    [face] = one["Faces"]
    assert persons(face)[0] == "Eileen"
    assert face["Matches"][0]["PersonName"] == "Eileen Collins"
    assert face["Matches"][0]["Distance"] < 0.6
    [face] = two["Faces"]
    assert persons(face)[0] == "Other" and face["Matches"][0]["CategoryId"] == "Guests"
    assert len(persons(face)) == 3
    distances = [m["Distance"] for m in face["Matches"]]
    assert distances == sorted(distances)
    # The registered image itself, searched again: the same embedding.
    assert persons(same["Faces"][0]) == ["Eileen"]
    assert same["Faces"][0]["Matches"][0]["Distance"] < 1e-3


async def test_a_group_photo_gives_every_face_and_the_registered_crop_matches_its_face(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    await answers(client, user, register(images.other, "Other", "Guests"))

    [group] = await answers(client, user, search(images.group, "Guests", MaxFaces=10))
    [largest] = await answers(client, user, search(images.group, "Guests"))

    faces = group["Faces"]
    assert len(faces) >= 6
    areas = [face["Box"]["W"] * face["Box"]["H"] for face in faces]
    assert areas == sorted(areas, reverse=True)
    [theirs] = [face for face in faces if overlap(face["Box"], OTHER_IN_GROUP) > 0.5]
    assert persons(theirs) == ["Other"]
    # Dlib may put another face of the photo within 0.6 too, but farther than the one.
    others = [m["Distance"] for face in faces if face is not theirs for m in face["Matches"]]
    assert all(theirs["Matches"][0]["Distance"] < distance for distance in others)
    assert largest["Faces"] == faces[:1]


async def test_limit_and_max_distance_cut_the_answer(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    await answers(
        client,
        user,
        register(images.astronaut, "Eileen", "Crew"),
        register(images.tom, "Tom", "Crew"),
        register(images.other, "Other", "Crew"),
    )

    wide, limited, near = await answers(
        client,
        user,
        search(images.astronaut_again, "Crew", MaxDistance=10, Limit=100),
        search(images.astronaut_again, "Crew", MaxDistance=10, Limit=2),
        search(images.astronaut_again, "Crew", MaxDistance=0.5),
    )

    assert persons(wide["Faces"][0])[0] == "Eileen" and len(persons(wide["Faces"][0])) == 3
    assert persons(limited["Faces"][0]) == persons(wide["Faces"][0])[:2]
    assert persons(near["Faces"][0]) == ["Eileen"]


async def test_a_removed_face_and_a_removed_person_are_no_longer_found(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    first, second, _ = await answers(
        client,
        user,
        register(images.astronaut, "Eileen", "Crew"),
        register(images.astronaut_again, "Eileen", "Crew"),
        register(images.tom, "Tom", "Crew"),
    )

    before, _, after_face, _, after_person = await answers(
        client,
        user,
        search(images.astronaut, "Crew", MaxDistance=10),
        unregister("Eileen", first["FaceId"], category="Crew"),
        search(images.astronaut, "Crew", MaxDistance=10),
        unregister("Eileen", "ALL", category="Crew"),
        search(images.astronaut, "Crew", MaxDistance=10),
    )

    assert before["Faces"][0]["Matches"][0]["FaceId"] == first["FaceId"]
    assert after_face["Faces"][0]["Matches"][0]["FaceId"] == second["FaceId"]
    assert persons(after_person["Faces"][0]) == ["Tom"]


async def test_another_users_libraries_and_every_new_code(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    await answers(client, user, register(images.astronaut, "Eileen", "Crew"))

    [stranger] = await answers(client, new_user(), search(images.astronaut, "Crew"))
    refused = await answers(
        client,
        user,
        search(images.astronaut, *(f"lib-{i}" for i in range(11))),
        search(images.astronaut, "Crew", MaxFaces=11),
        search(images.astronaut, "Crew", Limit=101),
        search(images.astronaut, "Crew", MaxDistance=-1),
        search(images.astronaut, "Crew", "Nowhere"),
        search(images.cup, "Crew"),
    )

    assert (stranger["Code"], stranger["HttpStatusCode"]) == ("NotFound.Category", 404)
    assert [(r["Code"], r["HttpStatusCode"]) for r in refused] == [
        ("InvalidParameter.CategoryIds", 400),
        ("InvalidParameter.MaxFaces", 400),
        ("InvalidParameter.Limit", 400),
        ("InvalidParameter.MaxDistance", 400),
        ("NotFound.Category", 404),
        ("InvalidImage.NoFace", 400),
    ]
    assert "'Nowhere'" in refused[4]["Message"]


async def test_the_duplicate_guard_refuses_a_persons_face_under_another_id(
    client: CommandClient, image_server: ImageServer
) -> None:
    user, images = new_user(), Images(image_server)
    await answers(client, user, register(images.astronaut, "Eileen", "Crew"))

    guarded, unguarded, own, invalid = await answers(
        client,
        user,
        register(images.astronaut_again, "Someone", "Crew", DuplicatePersonMaxDistance=0.6),
        register(images.astronaut_again, "Someone else", "Crew"),
        register(images.other, "Other", "Crew", DuplicatePersonMaxDistance=0.6),
        register(images.other, "Other", "Crew", DuplicatePersonMaxDistance=-0.5),
    )

    assert (guarded["Code"], guarded["HttpStatusCode"]) == ("InvalidImage.DuplicatePerson", 400)
    assert "'Eileen'" in guarded["Message"]
    assert "FaceId" in unguarded and "FaceId" in own
    assert (invalid["Code"], invalid["HttpStatusCode"]) == (
        "InvalidParameter.DuplicatePersonMaxDistance",
        400,
    )
