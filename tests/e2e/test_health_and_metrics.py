"""What Kubernetes and Prometheus see of `face-service run`: probes that tell the truth and
counters that move."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from service.entrypoints.http_endpoints import LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from tests.conftest import free_port
from tests.support import reaper
from tests.support.image_server import ImageServer
from tests.support.images import fixture_bytes
from tests.support.kafka_client import CommandClient
from tests.support.service_process import ServiceProcess


class Probe:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(timeout=10)

    async def status(self, path: str) -> tuple[int, Any]:
        response = await self.http.get(self.base + path)
        body = response.json() if path == READINESS_PATH else response.text
        return response.status_code, body

    async def metric(self, name: str, **labels: str) -> float:
        """A sample's value; a labelled series not yet seen counts 0, as Prometheus reads it."""
        _, text = await self.status(METRICS_PATH)
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = "^" + re.escape(f"{name}{{{wanted}}}" if labels else name) + r" (\S+)$"
        found = re.search(pattern, text, flags=re.MULTILINE)
        if found is None:
            assert labels and f"# TYPE {name.removesuffix('_total').removesuffix('_count')}" in (
                text
            ), f"{name} is not exported"
            return 0.0
        return float(found.group(1))

    async def until_unready(self, timeout_s: float) -> tuple[int, Any]:
        """The first readiness answer that is not 200, polled as Kubernetes polls it."""
        async with asyncio.timeout(timeout_s):
            status, body = await self.status(READINESS_PATH)
            while status == 200:
                await asyncio.sleep(0.2)  # a probe polls; there is nothing to wait on
                status, body = await self.status(READINESS_PATH)
        return status, body

    async def until_ready(self, timeout_s: float) -> list[tuple[int, int, Any]]:
        """Every (liveness, readiness, checks) seen from the first answer until ready."""
        seen: list[tuple[int, int, Any]] = []
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    live, _ = await self.status(LIVENESS_PATH)
                    ready, checks = await self.status(READINESS_PATH)
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)  # not listening yet
                    continue
                seen.append((live, ready, checks))
                if ready == 200:
                    return seen
                await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def started(
    tmp_path: Path, image_server: ImageServer
) -> AsyncIterator[tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str]]:
    kafka_port, http_port = free_port(), free_port()
    service = ServiceProcess(
        ServiceProcess.environment(
            EMBEDDED_KAFKA_PORT=str(kafka_port),
            HTTP_PORT=str(http_port),
            DEEPFACE_HOME=str(tmp_path / "deepface"),
            INFERENCE_WORKERS="1",
            **image_server.fetch_env(),
        )
    )
    probe = Probe(http_port)
    starting = asyncio.create_task(service.start())
    try:
        seen = await probe.until_ready(timeout_s=180)
        await starting
        yield service, probe, seen, f"127.0.0.1:{kafka_port}"
    finally:
        starting.cancel()
        await probe.http.aclose()
        await service.stop()


async def test_ready_only_once_models_are_warm_and_the_consumer_has_joined(
    started: tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str],
) -> None:
    _, _, seen, _ = started

    assert all(live == 200 for live, _, _ in seen)
    before_warm = [checks for _, ready, checks in seen if ready == 503]
    assert any(not checks["checks"]["models"] for checks in before_warm), seen[:3]
    assert seen[-1][2] == {
        "ready": True,
        "checks": {"models": True, "consumer": True, "kafka": True, "store": True},
    }


async def test_metrics_count_commands_stages_and_limiter_decisions(
    started: tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str],
    image_server: ImageServer,
) -> None:
    _, probe, _, bootstrap = started
    client = CommandClient(
        bootstrap, "face.register.commands", "face.register.results", "face.register.events"
    )
    await client.start()
    ok_before = await probe.metric("face_register_commands_total", code="OK")
    missing_before = await probe.metric(
        "face_register_commands_total", code="InvalidParameter.ImageUrl"
    )
    detect_before = await probe.metric("face_register_stage_seconds_count", stage="detect")
    admitted_before = await probe.metric(
        "face_register_limiter_decisions_total", decision="admitted"
    )
    url = image_server.serve("/health/astronaut.png", fixture_bytes("astronaut.png"))
    try:
        ok = await client.register(
            "metrics-user", {"CategoryId": "c", "PersonId": "p", "ImageUrl": url}
        )
        bad = await client.register(
            "metrics-user", {"CategoryId": "c", "PersonId": "p", "ImageUrl": "not a url"}
        )
    finally:
        await client.stop()

    assert "FaceId" in ok, ok
    assert bad["Code"] == "InvalidParameter.ImageUrl", bad
    assert await probe.metric("face_register_commands_total", code="OK") == ok_before + 1
    assert (
        await probe.metric("face_register_commands_total", code="InvalidParameter.ImageUrl")
        == missing_before + 1
    )
    assert (
        await probe.metric("face_register_stage_seconds_count", stage="detect") == detect_before + 1
    )
    assert (
        await probe.metric("face_register_limiter_decisions_total", decision="admitted")
        == admitted_before + 2
    )
    assert await probe.metric("face_register_records_in_flight") == 0
    assert await probe.metric("face_register_worker_restarts_total") == 0


async def test_metrics_carry_faststreams_broker_metrics_next_to_ours(
    started: tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str],
) -> None:
    _, probe, _, bootstrap = started
    client = CommandClient(
        bootstrap, "face.register.commands", "face.register.results", "face.register.events"
    )
    service = {"app_name": "face-register-service", "broker": "kafka"}
    received = {**service, "handler": "face.register.commands"}
    published = {**service, "destination": "face.register.results", "status": "success"}
    await client.start()
    received_before = await probe.metric("faststream_received_messages_total", **received)
    published_before = await probe.metric("faststream_published_messages_total", **published)
    try:
        bad = await client.register(
            "broker-metrics-user", {"CategoryId": "c", "PersonId": "p", "ImageUrl": "not a url"}
        )
    finally:
        await client.stop()

    assert bad["Code"] == "InvalidParameter.ImageUrl", bad
    assert (
        await probe.metric("faststream_received_messages_total", **received) == received_before + 1
    )
    # The result can reach the client before the service has its producer's acknowledgement.
    async with asyncio.timeout(10):
        while True:
            now = await probe.metric("faststream_published_messages_total", **published)
            if now != published_before:
                break
            await asyncio.sleep(0.1)  # a probe polls; there is nothing to wait on
    assert now == published_before + 1


async def test_readiness_turns_false_when_the_broker_goes_away(
    started: tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str],
) -> None:
    service, probe, _, _ = started
    assert service.process is not None
    descendants = reaper.descendants(service.process.pid)
    [broker] = [pid for pid in descendants if "tansu" in reaper.command_line(pid)]

    os.kill(broker, signal.SIGKILL)

    status, body = await probe.until_unready(timeout_s=30)
    assert status == 503
    assert body["checks"]["kafka"] is False
    assert (await probe.status(LIVENESS_PATH))[0] == 200  # alive: a restart would not help


async def test_readiness_turns_false_when_no_inference_worker_can_run(
    started: tuple[ServiceProcess, Probe, list[tuple[int, int, Any]], str], tmp_path: Path
) -> None:
    service, probe, _, _ = started
    assert service.process is not None
    descendants = reaper.descendants(service.process.pid)
    [worker] = [pid for pid in descendants if "spawn_main" in reaper.command_line(pid)]
    # What a new worker would load, damaged: it cannot start again.
    graphs = list((tmp_path / "deepface").rglob("*.onnx"))
    assert graphs
    for graph in graphs:
        graph.write_bytes(b"damaged")

    os.kill(worker, signal.SIGKILL)

    status, body = await probe.until_unready(timeout_s=30)
    assert status == 503
    assert body["checks"]["models"] is False
    failed = await service.wait_for_log(
        lambda entry: entry.get("message") == "an inference worker failed to start; trying again",
        timeout_s=120,
    )
    assert failed.get("retry_in_s") == 1.0
    status, body = await probe.status(READINESS_PATH)
    assert (status, body["checks"]["models"]) == (503, False)
