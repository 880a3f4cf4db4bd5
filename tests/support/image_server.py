"""A local HTTP server that serves test images, or misbehaves where a test asks it to."""

from __future__ import annotations

import threading
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


class ImageServer:
    def __init__(self) -> None:
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
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.location is not None:
                    self.send_header("Location", route.location)
                if route.send_length:
                    self.send_header("Content-Length", str(len(route.body)))
                # Without a length, HTTP/1.0 ends the body when the connection closes.
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *_: object) -> None:
                return None

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
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(
        self,
        path: str,
        body: bytes,
        status: int = 200,
        content_type: str = "",
        send_length: bool = True,
    ) -> str:
        route = Route(body, status, content_type or "application/octet-stream", send_length)
        self.routes[path] = route
        return self.base_url + path

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = Route(b"", 302, "text/plain", True, location)
        return self.base_url + path
