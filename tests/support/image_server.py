"""A local HTTP server that serves test images, or misbehaves where a test asks it to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Loopback, but not 127.0.0.1: the service under test allows exactly this address, so a
# URL naming localhost or 127.0.0.1 must still be refused.
IMAGE_HOST = "127.0.0.2"


@dataclass(frozen=True)
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    send_length: bool = True
    location: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    declared_length: int | None = None  # a Content-Length that may lie
    stall_s: float = 0.0  # silence before the status line
    drip_s: float = 0.0  # pause after each byte of the body


class ImageServer:
    def __init__(self, keep_alive: bool = False) -> None:
        """`keep_alive`: HTTP/1.1 connections kept open between requests, as an image host
        keeps them; off, HTTP/1.0, a connection per image (which the routes without a
        length rely on to end their body)."""
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                hits[path] = hits.get(path, 0) + 1
                route = routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                time.sleep(route.stall_s)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.location is not None:
                    self.send_header("Location", route.location)
                for name, value in route.headers:
                    self.send_header(name, value)
                if route.declared_length is not None:
                    self.send_header("Content-Length", str(route.declared_length))
                elif route.send_length:
                    self.send_header("Content-Length", str(len(route.body)))
                # Without a length, HTTP/1.0 ends the body when the connection closes.
                self.end_headers()
                try:
                    self._write(route)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up, as it should

            def _write(self, route: Route) -> None:
                if not route.drip_s:
                    self.wfile.write(route.body)
                    return
                for index in range(len(route.body)):
                    self.wfile.write(route.body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(route.drip_s)

            def log_message(self, *_: object) -> None:
                return None

        if keep_alive:
            Handler.protocol_version = "HTTP/1.1"
            # The headers and the body are two writes: with Nagle's algorithm the body
            # waits for the client's delayed acknowledgement, 40 ms.
            Handler.disable_nagle_algorithm = True

        self._server = ThreadingHTTPServer((IMAGE_HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def fetch_settings(self) -> dict[str, Any]:
        """What a service under test needs to fetch from this server, and nothing more."""
        return {
            "image_fetch_allowlist": (f"{IMAGE_HOST}/32",),
            "image_fetch_ports": (80, 443, self.port),
        }

    def fetch_env(self) -> dict[str, str]:
        return {
            "IMAGE_FETCH_ALLOWLIST": f"{IMAGE_HOST}/32",
            "IMAGE_FETCH_PORTS": f"80,443,{self.port}",
        }

    @property
    def base_url(self) -> str:
        return f"http://{IMAGE_HOST}:{self.port}"

    def route(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.base_url + path

    def serve(
        self,
        path: str,
        body: bytes,
        status: int = 200,
        content_type: str = "",
        send_length: bool = True,
    ) -> str:
        return self.route(
            path, Route(body, status, content_type or "application/octet-stream", send_length)
        )

    def redirect(self, path: str, location: str) -> str:
        return self.route(path, Route(b"", 302, "text/plain", True, location))
