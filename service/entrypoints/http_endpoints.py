"""Liveness, readiness, metrics and the AsyncAPI contract over HTTP, for Kubernetes,
Prometheus and the teams that talk to the service.

FastStream's ASGI app routes (given no broker: the service starts and stops its own),
prometheus_client renders the metrics, and uvicorn serves them in the service's event
loop, from before the models load until after the broker has drained.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, AsyncAPIRoute, get
from faststream.asgi.types import ASGIApp, Scope
from prometheus_client import CollectorRegistry, make_asgi_app

from service.contracts.documents import contract_asyncapi

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
ASYNCAPI_PATH = "/asyncapi"
ASYNCAPI_JSON_PATH = "/asyncapi.json"

Readiness = Callable[[], Awaitable[dict[str, bool]]]

log = logging.getLogger("service.http")

_SHUTDOWN_TIMEOUT_S = 5


def edge_app(readiness: Readiness, registry: CollectorRegistry) -> AsgiFastStream:
    prometheus = make_asgi_app(registry)

    @get(include_in_schema=False)
    async def liveness(scope: Scope) -> AsgiResponse:
        # The event loop answered: the process is alive. Dependencies are readiness's.
        return AsgiResponse(b"ok\n", 200, {"Content-Type": "text/plain"})

    @get(include_in_schema=False)
    async def ready(scope: Scope) -> AsgiResponse:
        checks = await readiness()
        verdict = all(checks.values())
        body = json.dumps({"ready": verdict, "checks": checks}).encode() + b"\n"
        return AsgiResponse(body, 200 if verdict else 503, {"Content-Type": "application/json"})

    @get(include_in_schema=False)
    async def metrics(scope: Scope) -> ASGIApp:
        return prometheus  # behind GET like the others, and text or OpenMetrics as asked

    return AsgiFastStream(
        asgi_routes=[
            (LIVENESS_PATH, liveness),
            (READINESS_PATH, ready),
            (METRICS_PATH, metrics),
        ],
        # The live broker's own schema is empty (its consumer decodes raw records and is
        # left out of the schema): the page shows the contract other teams code against.
        specification=contract_asyncapi(),
        asyncapi_path=AsyncAPIRoute(
            ASYNCAPI_PATH, asyncapi_json_path=ASYNCAPI_JSON_PATH, try_it_out_path=None
        ),
        logger=log,
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn as a guest of the service's event loop: SIGTERM stays the service's, whose
    drain must come before the endpoints close."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpEndpoints:
    def __init__(
        self, host: str, port: int, readiness: Readiness, registry: CollectorRegistry
    ) -> None:
        self._host, self._port = host, port
        self._server = _EmbeddedServer(
            uvicorn.Config(
                edge_app(readiness, registry),
                host=host,
                port=port,
                lifespan="off",  # the service's lifespan starts and stops the broker
                interface="asgi3",
                http="h11",
                ws="none",
                proxy_headers=False,
                log_config=None,  # through the service's JSON logging
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=_SHUTDOWN_TIMEOUT_S,
            )
        )
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server.config.load()
        # Bound here, so a port in use fails start() rather than uvicorn exiting a task.
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.create_server((self._host, self._port), family=family)
        self._serving = asyncio.create_task(self._server.serve(sockets=[listener]))
        log.info("http endpoints listening", extra={"host": self._host, "port": self._port})

    async def close(self) -> None:
        if self._serving is not None:
            self._server.should_exit = True
            await self._serving
