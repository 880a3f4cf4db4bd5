"""The service as a user runs it: `face-service run` on embedded defaults, and the client
commands from the README in a second process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from tests.conftest import free_port, mongodb_uri
from tests.support import reaper
from tests.support.image_server import IMAGE_HOST, ImageServer
from tests.support.images import fixture_bytes

FACE_SERVICE = str(Path(sys.executable).parent / "face-service")
START_TIMEOUT_S = 120


class RunningService:
    def __init__(self, process: asyncio.subprocess.Process, bootstrap: str) -> None:
        self.process = process
        self.bootstrap = bootstrap
        self.log_lines: list[dict[str, Any]] = []

    async def read_logs_until(self, message: str) -> dict[str, Any]:
        assert self.process.stderr is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while line := await self.process.stderr.readline():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # TensorFlow writes plain lines before logging is ours
                self.log_lines.append(entry)
                if entry.get("message") == message:
                    return entry
        raise AssertionError(f"the service exited before logging {message!r}")


@pytest_asyncio.fixture(scope="module")
async def running_service(
    tmp_path_factory: Any, image_server: ImageServer
) -> AsyncIterator[RunningService]:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")
    }
    env.update(
        EMBEDDED_KAFKA_PORT=str(port),
        HTTP_PORT="0",
        DEEPFACE_HOME=str(tmp_path_factory.mktemp("deepface-home-e2e")),
        **image_server.fetch_env(),
    )
    if mongodb_uri():
        env["MONGODB_URI"] = str(mongodb_uri())
    process = await asyncio.create_subprocess_exec(
        *reaper.dying_with_parent([FACE_SERVICE, "run"]),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    service = RunningService(process, f"127.0.0.1:{port}")
    try:
        await service.read_logs_until("service ready")
        yield service
    finally:
        started = reaper.descendants(process.pid)  # workers, and the embedded broker
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def face_service(*args: str, timeout_s: float = 90) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        FACE_SERVICE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout_s):
        stdout, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode()


async def register(bootstrap: str, user: str, person: str, url: str) -> tuple[int, str]:
    """What the README has a user type in a second terminal."""
    return await face_service(
        "register", "--bootstrap-servers", bootstrap, "--user", user,
        "--category-id", "Cat-1", "--person-id", person, "--image-url", url, "--wait",
    )  # fmt: skip


async def test_an_allowlist_is_warned_about_at_start_up(running_service: RunningService) -> None:
    warnings = [e for e in running_service.log_lines if e["level"] == "WARNING"]
    allowlist = [e for e in warnings if "IMAGE_FETCH_ALLOWLIST" in e["message"]]
    assert [e["allowlist"] for e in allowlist] == [[f"{IMAGE_HOST}/32"]]


async def test_register_from_a_second_terminal_prints_a_face_id(
    running_service: RunningService, image_server: ImageServer
) -> None:
    url = image_server.serve("/e2e/astronaut.png", fixture_bytes("astronaut.png"))

    code, out = await register(running_service.bootstrap, "demo", "p1", url)

    assert code == 0, out
    result = json.loads(out)
    assert len(result["FaceId"]) == 32
    assert (result["CategoryId"], result["PersonId"]) == ("Cat-1", "p1")


async def test_a_refused_registration_prints_the_error_and_exits_non_zero(
    running_service: RunningService, image_server: ImageServer
) -> None:
    url = image_server.serve("/e2e/coffee.png", fixture_bytes("coffee.png"))

    code, out = await register(running_service.bootstrap, "demo", "p2", url)

    assert code == 1
    assert json.loads(out)["Code"] == "InvalidImage.NoFace"


async def test_results_follows_the_results_topic(running_service: RunningService) -> None:
    process = await asyncio.create_subprocess_exec(
        FACE_SERVICE, "results", "--bootstrap-servers", running_service.bootstrap,
        "--from-beginning", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            lines = [json.loads(await process.stdout.readline()) for _ in range(2)]
    finally:
        process.terminate()
        await process.wait()

    assert {line["key"] for line in lines} == {"demo"}
    assert {"FaceId" in line["value"] or line["value"]["Code"] for line in lines} == {
        True,
        "InvalidImage.NoFace",
    }


async def test_each_command_outcome_is_one_json_log_line_without_secrets(
    running_service: RunningService, image_server: ImageServer
) -> None:
    url = image_server.serve("/e2e/signed.png", fixture_bytes("coffee.png")) + "?sig=SECRET"
    code, out = await register(running_service.bootstrap, "log-user", "p", url)
    assert code == 1
    request_id = json.loads(out)["RequestId"]

    entry = await running_service.read_logs_until("command done")
    while entry.get("request_id") != request_id:
        entry = await running_service.read_logs_until("command done")

    assert entry["user"] == "log-user" and entry["code"] == "InvalidImage.NoFace"
    assert set(entry["timings_ms"]) >= {"fetch", "inference", "total"}
    assert "SECRET" not in json.dumps(entry)


async def test_sigterm_stops_the_service_cleanly(running_service: RunningService) -> None:
    running_service.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert running_service.process.stderr is not None
        await running_service.process.stderr.read()
        code = await running_service.process.wait()
    assert code == 0
