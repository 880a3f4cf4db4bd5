"""Fetch the user's image over HTTP(S): only from public addresses, bounded in time and in
bytes, whatever the server claims or does."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpcore

from service.adapters.guarded_connect import GuardedBackend
from service.adapters.image_url import ImageTarget, parse_image_url
from service.adapters.public_address import AddressPolicy
from service.domain.errors import ErrorCode, Rejected

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "face-register-service/0.1"


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout_s: float
    first_byte_timeout_s: float
    read_timeout_s: float
    total_timeout_s: float
    max_bytes: int


class HttpImageFetcher:
    """One connection pool for the life of the service; every connection it opens goes
    through the address check."""

    def __init__(
        self, limits: FetchLimits, allowed_ports: Collection[int], policy: AddressPolicy
    ) -> None:
        self._limits = limits
        self._ports = frozenset(allowed_ports)
        self._pool = httpcore.AsyncConnectionPool(
            # Unbounded here: the register handler's semaphore bounds concurrent fetches, and
            # a bounded pool leaks slots when requests waiting for one are cancelled.
            max_connections=None,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )

    async def fetch(self, url: str) -> bytes:
        total = self._limits.total_timeout_s
        try:
            async with asyncio.timeout(total):
                return await self._follow(parse_image_url(url, self._ports))
        except TimeoutError:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"the image did not arrive within {total:g} s"
            ) from None
        except httpcore.TimeoutException as error:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"timed out fetching the image ({type(error).__name__})"
            ) from None
        except ValueError:
            # Whatever URL parsing httpcore or the standard library still rejects.
            raise Rejected(
                ErrorCode.INVALID_IMAGE_URL, "ImageUrl, or a redirect it led to, is not valid"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"could not fetch the image ({type(error).__name__})"
            ) from None

    async def _follow(self, target: ImageTarget) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            async with self._request(target) as response:
                if response.status in REDIRECT_STATUSES:
                    location = _header(response, b"location")
                    if location is None:
                        raise Rejected(
                            ErrorCode.IMAGE_DOWNLOAD,
                            f"the image server answered {response.status} without a Location",
                        )
                    target = target.follow(location, self._ports)
                    continue
                if response.status != 200:
                    raise Rejected(
                        ErrorCode.IMAGE_DOWNLOAD, f"the image server answered {response.status}"
                    )
                return await self._body(response)
        raise Rejected(ErrorCode.IMAGE_DOWNLOAD, f"more than {MAX_REDIRECTS} redirects")

    def _request(self, target: ImageTarget) -> _FirstByteBound:
        limits = self._limits
        stream = self._pool.stream(
            "GET",
            httpcore.URL(
                scheme=target.scheme, host=target.host, port=target.port, target=target.target
            ),
            headers=[
                (b"Host", target.authority.encode("ascii")),
                (b"User-Agent", USER_AGENT.encode("ascii")),
                (b"Accept", b"image/*"),
                (b"Accept-Encoding", b"identity"),
            ],
            extensions={
                "timeout": {
                    "connect": limits.connect_timeout_s,
                    "read": limits.read_timeout_s,
                    "write": limits.read_timeout_s,
                    "pool": limits.total_timeout_s,
                }
            },
        )
        return _FirstByteBound(stream, limits.first_byte_timeout_s)

    async def _body(self, response: httpcore.Response) -> bytes:
        cap = self._limits.max_bytes
        declared = _header(response, b"content-length") or ""
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large()
        decoder = _decoder(_header(response, b"content-encoding"))
        received = bytearray()
        raw_bytes = 0
        async for chunk in response.aiter_stream():
            raw_bytes += len(chunk)
            if raw_bytes > cap:
                raise self._too_large()
            received += decoder.take(chunk, cap + 1 - len(received))
            if len(received) > cap:
                # A compressed bomb stops here: no more than cap + 1 bytes are inflated.
                raise self._too_large()
        received += decoder.finish(cap + 1 - len(received))
        if len(received) > cap:
            raise self._too_large()
        return bytes(received)

    def _too_large(self) -> Rejected:
        return Rejected(
            ErrorCode.IMAGE_TOO_LARGE, f"the image is over {self._limits.max_bytes} bytes"
        )

    async def close(self) -> None:
        await self._pool.aclose()


class _FirstByteBound:
    """The response headers must arrive within the first-byte timeout."""

    def __init__(
        self, stream: AbstractAsyncContextManager[httpcore.Response], timeout_s: float
    ) -> None:
        self._stream = stream
        self._timeout_s = timeout_s

    async def __aenter__(self) -> httpcore.Response:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._stream.__aenter__()
        except TimeoutError:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD,
                f"the image server sent nothing within {self._timeout_s:g} s",
            ) from None

    async def __aexit__(self, *exc: object) -> None:
        await self._stream.__aexit__(*exc)  # type: ignore[arg-type]


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


class _Identity:
    def take(self, chunk: bytes, _room: int) -> bytes:
        return chunk

    def finish(self, _room: int) -> bytes:
        return b""


class _Inflate:
    """gzip or zlib, never inflating more than the room left under the cap."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)

    def take(self, chunk: bytes, room: int) -> bytes:
        try:
            return self._inflater.decompress(chunk, max(room, 1))
        except zlib.error:
            raise self._corrupt() from None

    def finish(self, room: int) -> bytes:
        rest = self.take(self._inflater.unconsumed_tail, room)
        if not self._inflater.eof and len(rest) < room:
            raise self._corrupt()
        return rest

    @staticmethod
    def _corrupt() -> Rejected:
        return Rejected(ErrorCode.IMAGE_DOWNLOAD, "the compressed response is corrupt or cut short")


def _decoder(encoding: str | None) -> _Identity | _Inflate:
    if encoding is None or encoding.lower() in ("", "identity"):
        return _Identity()
    if encoding.lower() in ("gzip", "x-gzip", "deflate"):
        return _Inflate()
    raise Rejected(
        ErrorCode.IMAGE_DOWNLOAD, f"the response is {encoding}-encoded; send it uncompressed"
    )
