"""Embedded defaults only: after `kill -9` of the service, its broker lives on, and the
restarted service finds its faces again in the face events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import free_port
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes
from tests.support.kafka_client import CommandClient
from tests.support.service_process import ServiceProcess


async def test_a_hard_killed_service_restarts_with_its_faces(
    image_server: ImageServer, deepface_home: Path
) -> None:
    port = free_port()
    env = ServiceProcess.environment(
        EMBEDDED_KAFKA_PORT=str(port),
        DEEPFACE_HOME=str(deepface_home),
        INFERENCE_WORKERS="1",
        **image_server.fetch_env(),
    )
    url = image_server.serve("/embedded-restart.png", fixture_bytes("astronaut.png"))
    body = {"CategoryId": "Cat-1", "PersonId": "p1", "ImageUrl": url}
    first, second = ServiceProcess(env), ServiceProcess(env)
    try:
        await first.start()
        client = CommandClient(
            f"127.0.0.1:{port}", "face.register.commands", "face.register.results"
        )
        await client.start()
        registered = await client.register("demo", body)
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
        client = CommandClient(
            f"127.0.0.1:{port}", "face.register.commands", "face.register.results"
        )
        await client.start()
        again = await client.register("demo", body)  # same bytes, new RequestId
        await client.stop()
    finally:
        # The first one's stop ends the embedded broker it started, which the second used.
        await asyncio.gather(first.stop(), second.stop())

    assert any(e.get("message", "").startswith("a broker already listens") for e in second.logs)
    assert rebuilt["events"]["stored"] == 1
    assert again["FaceId"] == registered["FaceId"]
