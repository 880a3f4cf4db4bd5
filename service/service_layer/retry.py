"""Retries of transient failures with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service.domain.errors import TransientError

T = TypeVar("T")


class RetriesExhausted(Exception):
    """The retry budget is spent; the last transient failure is the cause."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    base_delay_s: float

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return await operation()
            except TransientError as error:
                if attempt == self.attempts:
                    raise RetriesExhausted(str(error)) from error
                await asyncio.sleep(random.uniform(0, self.base_delay_s * 2 ** (attempt - 1)))
        raise AssertionError("unreachable: attempts >= 1")
