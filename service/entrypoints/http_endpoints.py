"""Liveness, readiness and metrics over plain HTTP for Kubernetes and Prometheus.

Three GET routes do not justify a web framework: asyncio's server reads one request line
and headers, answers, and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"

Readiness = Callable[[], Awaitable[dict[str, bool]]]

log = logging.getLogger("service.http")

_REQUEST_TIMEOUT_S = 5.0
_MAX_HEADER_LINES = 100


class HttpEndpoints:
    def __init__(
        self, host: str, port: int, readiness: Readiness, registry: CollectorRegistry
    ) -> None:
        self._host, self._port = host, port
        self._readiness = readiness
        self._registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("http endpoints listening", extra={"host": self._host, "port": self._port})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = await asyncio.wait_for(_request_path(reader), _REQUEST_TIMEOUT_S)
            status, content_type, body = await self._answer(path)
        except (TimeoutError, ValueError, ConnectionError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, path: str | None) -> tuple[int, str, bytes]:
        if path == LIVENESS_PATH:
            # The event loop answered: the process is alive. Dependencies are readiness's.
            return 200, "text/plain", b"ok\n"
        if path == READINESS_PATH:
            checks = await self._readiness()
            ready = all(checks.values())
            body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
            return (200 if ready else 503), "application/json", body
        if path == METRICS_PATH:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path is None:
            return 405, "text/plain", b"only GET\n"
        return 404, "text/plain", b"not found\n"


async def _request_path(reader: asyncio.StreamReader) -> str | None:
    """The path of a GET request (query dropped), or None for another method."""
    method, target, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    for _ in range(_MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    return target.split("?", 1)[0] if method in ("GET", "HEAD") else None


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
