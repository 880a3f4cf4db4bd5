"""Start-up waits for what the service needs within one time budget, and when it cannot
start it says why and what to change, instead of failing later with a traceback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class StartupFailed(Exception):
    """The service cannot start: `cause` says what is wrong, `fix` what to change."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; {fix}")
        self.cause = cause
        self.fix = fix


class OutOfTime(Exception):
    """The time budget ran out before an attempt succeeded; `last` is the last failure."""

    def __init__(self, within_s: float, last: Exception | None) -> None:
        super().__init__(f"no success within {within_s:g} s; last failure: {last!r}")
        self.last = last


@dataclass(frozen=True)
class Backoff:
    """Pauses between attempts: `first_s`, then doubling, never over `max_s`."""

    first_s: float = 0.25
    max_s: float = 5.0

    def pauses(self) -> Iterator[float]:
        pause = self.first_s
        while True:
            yield pause
            pause = min(pause * 2, self.max_s)


def _no_report(_error: Exception, _pause_s: float) -> None:
    return None


async def retry_until(
    attempt: Callable[[float], Awaitable[T]],
    *,
    within_s: float,
    retry_on: tuple[type[Exception], ...],
    backoff: Backoff = Backoff(),
    on_retry: Callable[[Exception, float], None] = _no_report,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`attempt(seconds_left)` until it succeeds. A failure in `retry_on` is tried again
    after a pause; any other is raised at once. No later than `within_s`, it gives up
    with OutOfTime: the last pause is cut short, and an attempt still running then is
    cancelled."""
    deadline = clock() + within_s
    pauses = backoff.pauses()
    last: Exception | None = None
    while (left := deadline - clock()) > 0:
        limit = asyncio.timeout(left)
        try:
            async with limit:
                return await attempt(left)
        except Exception as error:
            if limit.expired():
                break
            if not isinstance(error, retry_on):
                raise
            last = error
        pause = min(next(pauses), deadline - clock())
        if pause <= 0:
            break
        on_retry(last, pause)
        await sleep(pause)
    raise OutOfTime(within_s, last)
