"""The probe and metrics server on its own: status codes a kubelet and Prometheus rely on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from prometheus_client import generate_latest

from service.contracts.documents import SCHEMAS_DIR
from service.entrypoints.http_endpoints import HttpEndpoints
from service.entrypoints.service_app import Service
from service.metrics import LiveCounts, observe_outcome, service_registry
from service.settings import Settings
from tests.conftest import free_port


class Checks:
    def __init__(self) -> None:
        self.values = {"models": False, "kafka": True}

    async def __call__(self) -> dict[str, bool]:
        return dict(self.values)


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[str, Checks]]:
    checks, port = Checks(), free_port()
    registry = service_registry(LiveCounts(lambda: 3, lambda: 1))
    endpoints = HttpEndpoints("127.0.0.1", port, checks, registry)
    await endpoints.start()
    try:
        yield f"http://127.0.0.1:{port}", checks
    finally:
        await endpoints.close()


async def test_liveness_is_up_while_readiness_names_the_failing_check(
    served: tuple[str, Checks],
) -> None:
    base, checks = served
    async with httpx.AsyncClient() as http:
        assert (await http.get(base + "/healthz")).status_code == 200
        unready = await http.get(base + "/readyz")
        checks.values["models"] = True
        ready = await http.get(base + "/readyz")
    assert unready.status_code == 503
    assert unready.json() == {"ready": False, "checks": {"models": False, "kafka": True}}
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


async def test_metrics_are_prometheus_text_with_live_values(served: tuple[str, Checks]) -> None:
    base, _ = served
    observe_outcome("Throttling.User", {"total": 4.0})
    async with httpx.AsyncClient() as http:
        response = await http.get(base + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'face_register_commands_total{code="Throttling.User"}' in text
    assert 'face_register_stage_seconds_bucket{le="0.005",stage="total"} ' in text
    assert "face_register_records_in_flight 3.0" in text
    assert "face_register_worker_restarts_total 1.0" in text


async def test_other_paths_methods_and_garbage_get_errors_not_a_crash(
    served: tuple[str, Checks],
) -> None:
    base, _ = served
    async with httpx.AsyncClient() as http:
        assert (await http.get(base + "/nope")).status_code == 404
        assert (await http.post(base + "/readyz")).status_code == 405
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x00\x01garbage\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    async with httpx.AsyncClient() as http:
        assert (await http.get(base + "/healthz")).status_code == 200


async def test_the_asyncapi_page_shows_the_contract_with_its_channels(
    served: tuple[str, Checks],
) -> None:
    base, _ = served
    async with httpx.AsyncClient() as http:
        page = await http.get(base + "/asyncapi")
        document = await http.get(base + "/asyncapi.json")
    contract = json.loads((SCHEMAS_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    assert document.status_code == 200
    assert document.json() == contract
    assert {channel["address"] for channel in contract["channels"].values()} == {
        "face.register.commands",
        "face.register.results",
        "face.register.events",
    }
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert all(channel in page.text for channel in contract["channels"])


def test_each_service_registry_holds_our_metrics_and_faststreams_broker_metrics() -> None:
    first, second = Service(Settings(http_port=0)), Service(Settings(http_port=0))
    for service in (first, second):
        text = generate_latest(service.metrics).decode()
        assert "face_register_records_in_flight 0.0" in text
        assert "# TYPE faststream_received_messages_total counter" in text
        assert "# TYPE faststream_published_messages_total counter" in text
