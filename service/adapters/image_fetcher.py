"""Fetch the user's image over HTTP(S), bounded in time and in bytes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from service.domain.errors import ErrorCode, Rejected

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout_s: float
    read_timeout_s: float
    total_timeout_s: float
    max_bytes: int


class HttpImageFetcher:
    """One pooled HTTP client for the life of the service."""

    def __init__(self, limits: FetchLimits) -> None:
        self._limits = limits
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=limits.connect_timeout_s,
                read=limits.read_timeout_s,
                write=limits.read_timeout_s,
                pool=limits.total_timeout_s,
            ),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,
            headers={"User-Agent": "face-register-service/0.1", "Accept": "image/*"},
        )

    async def fetch(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(self._limits.total_timeout_s):
                return await self._stream(url)
        except TimeoutError:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD,
                f"the image did not arrive within {self._limits.total_timeout_s:g} s",
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as error:
            # ValueError covers what httpx leaves raw, such as an IDNA error in a host name
            # (UnicodeError), whether in ImageUrl or in a redirect it leads to.
            raise Rejected(
                ErrorCode.INVALID_IMAGE_URL,
                f"ImageUrl, or a redirect it led to, is not a valid URL ({type(error).__name__})",
            ) from None
        except httpx.TooManyRedirects:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"more than {MAX_REDIRECTS} redirects"
            ) from None
        except httpx.TimeoutException as error:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"timed out fetching the image ({type(error).__name__})"
            ) from None
        except httpx.HTTPError as error:
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"could not fetch the image ({type(error).__name__})"
            ) from None

    async def _stream(self, url: str) -> bytes:
        async with self._client.stream("GET", url) as response:
            if response.status_code != httpx.codes.OK:
                raise Rejected(
                    ErrorCode.IMAGE_DOWNLOAD, f"the image server answered {response.status_code}"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._limits.max_bytes:
                raise self._too_large()
            received = bytearray()
            # aiter_bytes yields decoded bytes, so a compressed bomb is cut at the cap too.
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > self._limits.max_bytes:
                    raise self._too_large()
            return bytes(received)

    def _too_large(self) -> Rejected:
        return Rejected(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image is over {self._limits.max_bytes} bytes",
        )

    async def close(self) -> None:
        await self._client.aclose()
