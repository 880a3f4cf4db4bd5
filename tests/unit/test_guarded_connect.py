"""The connection goes to the address that was checked: DNS is asked once per connection,
so a rebinding answer given to a second lookup is never used."""

import asyncio
import socket
from typing import Any

import pytest

from service.adapters.guarded_connect import GuardedBackend
from service.adapters.public_address import AddressPolicy
from service.domain.errors import ErrorCode, Rejected

PUBLIC, LOOPBACK = "93.184.216.34", "127.0.0.1"


class RebindingResolver:
    """Answers public first, loopback on every later lookup."""

    def __init__(self) -> None:
        self.lookups = 0

    async def __call__(self, host: str, port: int, **_: Any) -> list[Any]:
        self.lookups += 1
        address = PUBLIC if self.lookups == 1 else LOOPBACK
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


class RecordingInner:
    def __init__(self) -> None:
        self.connected_to: list[str] = []

    async def connect_tcp(self, host: str, port: int, *_: Any, **__: Any) -> str:
        self.connected_to.append(host)
        return "stream"


async def test_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = RebindingResolver()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    backend = GuardedBackend(AddressPolicy())
    inner = RecordingInner()
    backend._inner = inner  # type: ignore[assignment]

    await backend.connect_tcp("img.example", 80, timeout=1)

    assert inner.connected_to == [PUBLIC]
    assert resolver.lookups == 1
    with pytest.raises(Rejected) as refused:  # the next connection sees the new answer
        await backend.connect_tcp("img.example", 80, timeout=1)
    assert refused.value.code is ErrorCode.INVALID_IMAGE_URL
    assert inner.connected_to == [PUBLIC]
