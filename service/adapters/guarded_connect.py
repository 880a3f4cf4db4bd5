"""Connections only to checked addresses: resolve once, refuse what is not public, and
connect to the very address that was checked, so DNS rebinding has no second answer to
change. TLS still verifies the certificate against the host name in the URL."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from service.adapters.public_address import AddressPolicy, IPAddress, parse_numeric_host
from service.domain.errors import ErrorCode, Rejected

log = logging.getLogger(__name__)

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class GuardedBackend(AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        async with asyncio.timeout(timeout):
            addresses = await checked_addresses(host, port, self._policy)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        raise Rejected(ErrorCode.INVALID_IMAGE_URL, "unix sockets are never fetched from")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def checked_addresses(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """Every address `host` stands for, all of them allowed; else the refusal says why."""
    try:
        numeric = parse_numeric_host(host)
    except ValueError:
        raise Rejected(ErrorCode.INVALID_IMAGE_URL, "the host is not a valid address") from None
    if numeric is not None:
        addresses = [numeric]
    else:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise Rejected(
                ErrorCode.IMAGE_DOWNLOAD, f"the host {host} could not be resolved"
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(f[4][0])) for f in found))
    # Any one bad address refuses the host: a name that also points inside is not public.
    for address in addresses:
        kind = policy.refused_kind(address)
        if kind is None:
            continue
        if numeric is not None:
            raise Rejected(
                ErrorCode.INVALID_IMAGE_URL,
                f"{address} is a {kind} address; only public addresses are fetched from",
            )
        # What an internal name resolves to stays in our log: the caller learns only that
        # the host is not public, not the layout of the network behind it.
        log.warning(
            "image host refused",
            extra={"host": host, "address": str(address), "kind": kind},
        )
        raise Rejected(
            ErrorCode.INVALID_IMAGE_URL,
            f"{host} does not resolve to public addresses only; only those are fetched from",
        )
    return addresses
