"""RegisterCustomFace as a client sees it: commands produced to a real broker, the service
running real DeepFace inference, results read back from the results topic."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from importlib.metadata import version
from typing import Any

import pytest

from service.adapters.sealing import associated_data, open_sealed
from service.entrypoints.service_app import Service
from tests.integration.conftest import IMAGE_MAX_BYTES
from tests.support.image_server import IMAGE_HOST, ImageServer
from tests.support.images import (
    astronaut_16bit_gray_png,
    astronaut_mpo,
    astronaut_variants,
    downscaled_astronaut,
    fixture_bytes,
    png_header_only,
    tilted_astronaut,
)
from tests.support.kafka_client import CommandClient, new_request_id


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def command(url: str, category: str = "Cat-1", person: str = "P1", **extra: Any) -> dict[str, Any]:
    return {"CategoryId": category, "PersonId": person, "ImageUrl": url, **extra}


async def stored_person(service: Service, user: str, category_key: str, person_key: str) -> Any:
    return await service.database["persons"].find_one(
        {"owner": user, "category_key": category_key, "person_key": person_key}
    )


async def test_a_registered_face_gets_a_face_id_and_is_stored(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    url = image_server.serve(
        "/astronaut.png", fixture_bytes("astronaut.png"), content_type="image/png"
    )
    request_id = await client.send(user, command(url, PersonName="Eileen Collins"))

    result = await client.result(request_id)

    assert set(result) == {"RequestId", "FaceId", "CategoryId", "PersonId"}
    assert result["RequestId"] == request_id
    assert re.fullmatch(r"[0-9a-f]{32}", result["FaceId"])
    assert (result["CategoryId"], result["PersonId"]) == ("Cat-1", "P1")
    assert client.result_keys[request_id] == user.encode()
    person = await stored_person(service, user, "cat-1", "p1")
    assert person["person_name"] == "Eileen Collins"
    [image] = person["images"]
    assert image["face_id"] == result["FaceId"]
    assert len(image["embedding"]) == 128
    assert image["box"]["w"] >= 64 and image["box"]["h"] >= 64
    assert (image["model"], image["detector"]) == ("Dlib", "mtcnn")
    assert re.fullmatch(r"[0-9a-f]{64}", image["weights_sha256"])


@pytest.mark.parametrize(
    ("name", "make"),
    [("16-bit-gray.png", astronaut_16bit_gray_png), ("phone.mpo.jpg", astronaut_mpo)],
)
async def test_less_common_image_encodings_register(
    name: str, make: Any, client: CommandClient, image_server: ImageServer
) -> None:
    url = image_server.serve(f"/{name}", make())
    result = await client.register(new_user(), command(url))
    assert "FaceId" in result, result


async def test_a_registered_face_is_published_as_a_face_event(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    url = image_server.serve("/event.jpg", astronaut_variants(12)[6])
    result = await client.register(user, command(url, category="Lib", PersonName="Ann"))

    [event] = client.events[result["FaceId"]]
    person = await stored_person(service, user, "lib", "p1")
    [image] = person["images"]
    assert (event["Owner"], event["CategoryId"], event["PersonId"]) == (user, "Lib", "P1")
    assert event["RequestId"] == result["RequestId"]
    assert (event["Model"], event["Detector"]) == ("Dlib", "mtcnn")
    assert event["WeightsSha256"] == image["weights_sha256"]
    # What computed the embedding, the default fast runtime with its version.
    assert event["Runtime"] == image["runtime"] == f"onnxruntime {version('onnxruntime')}"
    # The biometric and personal part is sealed with the face's key.
    assert not {"Embedding", "ImageUrl", "ImageSha256", "PersonName"} & set(event)
    assert service.stores is not None
    key = await service.stores.keys.find(user, result["FaceId"])
    assert key is not None
    plain = json.loads(open_sealed(key, associated_data(user, result["FaceId"]), event["Sealed"]))
    assert plain["Embedding"] == image["embedding"]
    assert plain["ImageSha256"] == image["image_sha256"]
    assert plain["Box"] == {k.upper(): v for k, v in image["box"].items()}
    # The name apart, with a key that goes with the person rather than with this face.
    texts = event["PersonTexts"]
    text_key = await service.stores.keys.find(user, texts["KeyId"])
    assert text_key is not None
    named = json.loads(
        open_sealed(text_key, associated_data(user, texts["KeyId"]), texts["Sealed"])
    )
    assert named["PersonName"] == "Ann"
    assert "Embedding" not in result


async def test_a_command_answered_from_an_existing_face_publishes_no_new_event(
    client: CommandClient, image_server: ImageServer
) -> None:
    user = new_user()
    url = image_server.serve("/event-dup.jpg", astronaut_variants(12)[7])
    first = await client.register(user, command(url))
    again = await client.register(user, command(url))
    await client.register(user, command(url, person="other-person"))

    assert again["FaceId"] == first["FaceId"]
    assert len(client.events[first["FaceId"]]) == 1


async def test_a_command_without_request_id_gets_a_derived_one(
    client: CommandClient, image_server: ImageServer
) -> None:
    url = image_server.serve("/coffee.png", fixture_bytes("coffee.png"))
    partition, offset = await client.send_raw(
        new_user().encode(), f'{{"CategoryId":"c","PersonId":"p","ImageUrl":"{url}"}}'.encode()
    )
    from service.domain.ids import derive_request_id

    expected = derive_request_id(client.commands_topic, partition, offset)
    result = await client.result(expected)
    assert result["Code"] == "InvalidImage.NoFace"


IMAGE_CASES = {
    "no-face-coffee": (lambda: fixture_bytes("coffee.png"), "InvalidImage.NoFace"),
    "no-face-cat": (lambda: fixture_bytes("chelsea.png"), "InvalidImage.NoFace"),
    "group-photo": (lambda: fixture_bytes("t1.jpg"), "InvalidImage.MultipleFaces"),
    "turned-head": (lambda: fixture_bytes("t1_face_turned.png"), "InvalidImage.FaceNotFrontal"),
    "tilted-head": (lambda: tilted_astronaut(42), "InvalidImage.FaceNotFrontal"),
    "small-face": (lambda: downscaled_astronaut(160), "InvalidImage.FaceTooSmall"),
    "html-page": (lambda: b"<html><body>hello</body></html>", "InvalidImage.Format"),
    "truncated-png": (lambda: fixture_bytes("astronaut.png")[:5000], "InvalidImage.Format"),
    "over-byte-cap": (lambda: b"\0" * (IMAGE_MAX_BYTES + 1), "InvalidImage.TooLarge"),
    "over-pixel-cap": (lambda: png_header_only(20000, 20000), "InvalidImage.TooLarge"),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
async def test_an_unusable_image_gets_its_error_code(
    case: str, client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    make, code = IMAGE_CASES[case]
    user = new_user()
    url = image_server.serve(f"/{case}", make())

    result = await client.register(user, command(url))

    assert result["Code"] == code, result
    assert result["HttpStatusCode"] == 400
    assert result["Message"]
    assert await stored_person(service, user, "cat-1", "p1") is None


async def test_the_byte_cap_holds_when_the_server_sends_no_length(
    client: CommandClient, image_server: ImageServer
) -> None:
    url = image_server.serve("/no-length", b"\0" * (IMAGE_MAX_BYTES + 1), send_length=False)
    result = await client.register(new_user(), command(url))
    assert result["Code"] == "InvalidImage.TooLarge"


async def test_urls_that_break_url_parsers_are_refused_and_the_partition_moves_on(
    client: CommandClient, image_server: ImageServer
) -> None:
    user = new_user()
    bad_redirect = image_server.redirect("/to-bad-host", "http://xn--/x.png")
    good = image_server.serve("/after-poison.png", fixture_bytes("astronaut.png"))
    urls = ["http://[::1/a.png", "http://xn--/a.png", bad_redirect, good]
    ids = [await client.send(user, command(url, person=f"p{i}")) for i, url in enumerate(urls)]

    results = await client.results_for(ids)

    codes = [results[i].get("Code", "OK") for i in ids]
    assert codes == ["InvalidParameter.ImageUrl"] * 3 + ["OK"]
    await asyncio.sleep(1)  # a rewound batch would publish these again
    assert all(len(client.results[i]) == 1 for i in ids)


async def test_an_image_that_cannot_be_fetched_is_a_download_error(
    client: CommandClient, image_server: ImageServer
) -> None:
    user = new_user()
    missing = image_server.base_url + "/no-such-image.png"
    failing = image_server.serve("/server-error", b"oops", status=500)
    refused = f"http://{IMAGE_HOST}/a.png"  # an allowed host and port, nobody listening
    unresolvable = "http://no-such-host.invalid/a.png"
    ids = [await client.send(user, command(u)) for u in (missing, failing, refused, unresolvable)]

    results = await client.results_for(ids)

    assert [results[i]["Code"] for i in ids] == ["InvalidImage.Download"] * 4
    assert "404" in results[ids[0]]["Message"] and "500" in results[ids[1]]["Message"]


RECORD_CASES = {
    "no-key": (
        None,
        b'{"CategoryId":"c","PersonId":"p","ImageUrl":"http://x/a"}',
        "InvalidParameter.UserId",
        400,
    ),
    "not-json": (b"u", b"{not json", "InvalidParameter.Message", 400),
    "json-array": (b"u", b"[]", "InvalidParameter.Message", 400),
    "unknown-action": (
        b"u",
        b'{"Action":"DeleteFace","CategoryId":"c","PersonId":"p","ImageUrl":"http://x/a"}',
        "InvalidParameter.Message",
        400,
    ),
    "system-library": (
        b"u",
        b'{"CategoryId":"Celebrity","PersonId":"p","ImageUrl":"http://x/a"}',
        "Forbidden.SystemCategory",
        403,
    ),
    "empty-category": (
        b"u",
        b'{"CategoryId":"","PersonId":"p","ImageUrl":"http://x/a"}',
        "InvalidParameter.CategoryId",
        400,
    ),
    "person-all": (
        b"u",
        b'{"CategoryId":"c","PersonId":"All","ImageUrl":"http://x/a"}',
        "InvalidParameter.PersonId",
        400,
    ),
    "long-name": (
        b"u",
        b'{"CategoryId":"c","PersonId":"p","ImageUrl":"http://x/a","PersonName":"'
        + b"n" * 513
        + b'"}',
        "InvalidParameter.PersonName",
        400,
    ),
    "ftp-url": (
        b"u",
        b'{"CategoryId":"c","PersonId":"p","ImageUrl":"ftp://x/a"}',
        "InvalidParameter.ImageUrl",
        400,
    ),
}


@pytest.mark.parametrize("case", list(RECORD_CASES))
async def test_an_invalid_record_gets_its_error_code(case: str, client: CommandClient) -> None:
    key, value, code, status = RECORD_CASES[case]
    key = key + uuid.uuid4().hex.encode() if key else None
    partition, offset = await client.send_raw(key, value)
    from service.domain.ids import derive_request_id

    result = await client.result(derive_request_id(client.commands_topic, partition, offset))

    assert (result["Code"], result["HttpStatusCode"]) == (code, status)
    assert result["Message"]


async def test_a_face_of_someone_else_is_refused_for_an_existing_person(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    first = image_server.serve("/mismatch-first.png", fixture_bytes("astronaut.png"))
    other = image_server.serve("/mismatch-other.png", fixture_bytes("t1_face_other.png"))
    assert "FaceId" in await client.register(user, command(first))

    result = await client.register(user, command(other))

    assert result["Code"] == "InvalidImage.FaceMismatch"
    assert len((await stored_person(service, user, "cat-1", "p1"))["images"]) == 1
    # The same face is fine as a person of its own.
    assert "FaceId" in await client.register(user, command(other, person="P2"))


async def test_a_person_holds_at_most_ten_images(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    urls = [
        image_server.serve(f"/variant-{i}.jpg", data)
        for i, data in enumerate(astronaut_variants(12))
    ]
    ids = [await client.send(user, command(url)) for url in urls]

    results = await client.results_for(ids, timeout_s=180)

    codes = [results[i].get("Code", "OK") for i in ids]
    assert codes == ["OK"] * 10 + ["FaceLimitExceeded"] * 2
    person = await stored_person(service, user, "cat-1", "p1")
    assert len(person["images"]) == 10
    assert len({image["face_id"] for image in person["images"]}) == 10


async def test_ids_differing_in_case_are_one_library_and_one_person(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    first, second = astronaut_variants(12)[:2]
    one = await client.register(
        user, command(image_server.serve("/case-1.jpg", first), category="Cat-1", person="Ann")
    )
    two = await client.register(
        user, command(image_server.serve("/case-2.jpg", second), category="cat-1", person="ANN")
    )

    assert (one["CategoryId"], two["CategoryId"]) == ("Cat-1", "cat-1")
    persons = await service.database["persons"].count_documents({"owner": user})
    assert persons == 1
    assert len((await stored_person(service, user, "cat-1", "ann"))["images"]) == 2


async def test_the_same_request_id_twice_stores_one_image_and_answers_the_same_face_id(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    request_id = new_request_id()
    first_url = image_server.serve("/same-request-1.jpg", astronaut_variants(12)[3])
    # A retry of a call is the same call, even if the URL now serves other bytes.
    second_url = image_server.serve("/same-request-2.jpg", astronaut_variants(12)[5])

    await client.send(user, command(first_url, RequestId=request_id))
    await client.send(user, command(second_url, RequestId=request_id))
    first, second = await client.all_results(request_id, count=2)

    assert first["FaceId"] == second["FaceId"]
    [image] = (await stored_person(service, user, "cat-1", "p1"))["images"]
    assert image["image_url"] == first_url
    assert image_server.hits.get("/same-request-2.jpg", 0) == 0


async def test_the_same_image_under_new_request_ids_answers_the_existing_face_id(
    client: CommandClient, service: Service, image_server: ImageServer
) -> None:
    user = new_user()
    url = image_server.serve("/same-image.jpg", astronaut_variants(12)[4])

    first = await client.register(user, command(url))
    second = await client.register(user, command(url))

    assert first["RequestId"] != second["RequestId"]
    assert first["FaceId"] == second["FaceId"]
    assert len((await stored_person(service, user, "cat-1", "p1"))["images"]) == 1


@pytest.mark.apache_kafka  # Tansu ignores message.timestamp.type=LogAppendTime
async def test_150_commands_in_one_second_admit_100_and_throttle_50_for_that_user_only(
    client: CommandClient, image_server: ImageServer
) -> None:
    busy, quiet = new_user(), new_user()
    url = image_server.serve("/throttle.png", fixture_bytes("astronaut.png"))
    # Timestamps claiming one call a second: the commands topic is stamped by the broker
    # (LogAppendTime), so a producer cannot spread its calls on paper.
    forged = [int(time.time() * 1000) - 86_400_000 + i * 1000 for i in range(170)]
    burst = [(busy, command(url))] * 150 + [(quiet, command(url))] * 20
    sent = await client.send_burst(burst, timestamps_ms=forged)
    busy_ids, quiet_ids = sent[:150], sent[150:]

    results = await client.results_for(busy_ids + quiet_ids, timeout_s=180)

    busy_codes = [results[i].get("Code", "OK") for i in busy_ids]
    assert busy_codes == ["OK"] * 100 + ["Throttling.User"] * 50
    assert {results[i]["HttpStatusCode"] for i in busy_ids[100:]} == {429}
    assert [results[i].get("Code", "OK") for i in quiet_ids] == ["OK"] * 20
