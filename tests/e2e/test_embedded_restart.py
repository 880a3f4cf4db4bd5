"""Embedded defaults only: after `kill -9` of the service, its broker lives on, and the
restarted service finds its library again in the face events: what was unregistered stays
gone, everything else comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.support.image_server import ImageServer
from tests.support.images import astronaut_variants
from tests.support.kafka_client import CommandClient
from tests.support.service_process import ServiceProcess


def listing(request_id: str) -> dict[str, Any]:
    return {"RequestId": request_id, "Action": "ListCustomPersons"}


async def test_a_hard_killed_service_restarts_with_its_library(
    image_server: ImageServer, deepface_home: Path
) -> None:
    port = free_port()
    env = ServiceProcess.environment(
        EMBEDDED_KAFKA_PORT=str(port),
        DEEPFACE_HOME=str(deepface_home),
        INFERENCE_WORKERS="1",
        **image_server.fetch_env(),
    )
    kept_url, removed_url = (
        image_server.serve(f"/embedded-restart-{i}.png", data)
        for i, data in enumerate(astronaut_variants(2))
    )
    kept_body = {"CategoryId": "Cat-1", "PersonId": "p1", "ImageUrl": kept_url}
    removed_body = {"CategoryId": "Cat-1", "PersonId": "p1", "ImageUrl": removed_url}
    bootstrap = f"127.0.0.1:{port}"
    first, second = ServiceProcess(env), ServiceProcess(env)
    try:
        await first.start()
        client = CommandClient(
            bootstrap, "face.register.commands", "face.register.results", "face.register.events"
        )
        await client.start()
        kept = await client.register("demo", kept_body)
        removed = await client.register("demo", removed_body)
        unregister = {
            "RequestId": "U-1",
            "Action": "UnregisterCustomFace",
            "CategoryId": "cat-1",
            "PersonId": "P1",
            "FaceId": removed["FaceId"],
        }
        unregistered = await client.register("demo", unregister)
        await client.register(
            "demo",
            {
                "Action": "TagCustomPerson",
                "CategoryId": "Cat-1",
                "PersonId": "p1",
                "PersonName": "Eileen",
            },
        )
        before = await client.register("demo", listing("L-1"))
        await client.stop()
        await first.kill_service_only()

        await second.start()
        rebuilt = await second.wait_for_log(
            lambda e: (
                e.get("message") == "store rebuilt from face events"
                and e["events"].get("stored", 0) > 0
            ),
            timeout_s=60,
        )
        client = CommandClient(bootstrap, "face.register.commands", "face.register.results")
        await client.start()
        after = await client.register("demo", listing("L-2"))
        again = await client.register("demo", kept_body)  # same bytes, new RequestId
        # Processed again after the restart; this client reads the results topic from its
        # beginning, so the first answer is there too.
        await client.send("demo", unregister)
        await client.all_results("U-1", 2, timeout_s=60)
        raw_first, raw_again = client.raw_results["U-1"]
        renewed = await client.register("demo", removed_body)  # the removed bytes, anew
        await client.stop()
    finally:
        # The first one's stop ends the embedded broker it started, which the second used.
        await asyncio.gather(first.stop(), second.stop())

    assert any(e.get("message", "").startswith("a broker already listens") for e in second.logs)
    assert rebuilt["events"] == {"stored": 1, "erased": 1, "unregistered": 1, "tagged": 1}
    assert unregistered["UnregisteredFaceCount"] == 1
    assert {**after, "RequestId": "L-1"} == before
    [person] = after["Categories"][0]["Persons"]
    assert person["PersonName"] == "Eileen"
    assert [f["FaceId"] for f in person["Faces"]] == [kept["FaceId"]]
    assert again["FaceId"] == kept["FaceId"]
    assert raw_again == raw_first  # answered from the journal the events rebuilt
    assert renewed["FaceId"] not in (removed["FaceId"], kept["FaceId"])
