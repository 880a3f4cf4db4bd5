import asyncio
from itertools import islice

import pytest

from service.service_layer.startup import Backoff, OutOfTime, retry_until


class FakeTime:
    """A clock that moves only when the code under test pauses."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class Refused:
    """An attempt that is refused `times` times, then succeeds."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.attempts = 0

    async def __call__(self, _left_s: float) -> str:
        self.attempts += 1
        if self.attempts <= self.times:
            raise ConnectionRefusedError(f"refused #{self.attempts}")
        return "connected"


def test_pauses_double_from_the_first_up_to_the_cap() -> None:
    pauses = list(islice(Backoff(first_s=0.25, max_s=5.0).pauses(), 8))
    assert pauses == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


async def test_a_refused_attempt_is_tried_again_after_growing_pauses_until_it_succeeds() -> None:
    time = FakeTime()
    attempt = Refused(times=3)
    result = await retry_until(
        attempt,
        within_s=60,
        retry_on=(ConnectionRefusedError,),
        clock=time.clock,
        sleep=time.sleep,
    )
    assert result == "connected"
    assert attempt.attempts == 4
    assert time.pauses == [0.25, 0.5, 1.0]


async def test_it_gives_up_at_the_deadline_with_the_last_failure_and_no_later() -> None:
    time = FakeTime()
    attempt = Refused(times=1000)
    reported: list[float] = []
    with pytest.raises(OutOfTime) as gave_up:
        await retry_until(
            attempt,
            within_s=10,
            retry_on=(ConnectionRefusedError,),
            on_retry=lambda _error, pause: reported.append(pause),
            clock=time.clock,
            sleep=time.sleep,
        )
    # 0.25 + 0.5 + 1 + 2 + 4 = 7.75: the next pause of 5 s is cut to the 2.25 s left.
    assert time.pauses == [0.25, 0.5, 1.0, 2.0, 4.0, 2.25]
    assert time.now == 10
    assert reported == time.pauses
    assert attempt.attempts == 6
    assert str(gave_up.value.last) == "refused #6"


async def test_a_failure_that_is_not_retried_is_raised_at_once() -> None:
    time = FakeTime()

    async def misconfigured(_left_s: float) -> None:
        raise ValueError("not a host:port")

    with pytest.raises(ValueError, match="not a host:port"):
        await retry_until(
            misconfigured,
            within_s=60,
            retry_on=(ConnectionRefusedError,),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.pauses == []


async def test_an_attempt_still_running_at_the_deadline_is_cancelled() -> None:
    cancelled = asyncio.Event()
    lefts: list[float] = []

    async def hangs(left_s: float) -> None:
        lefts.append(left_s)
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(OutOfTime) as gave_up:
        await retry_until(hangs, within_s=0.05, retry_on=(ConnectionRefusedError,))
    assert cancelled.is_set()
    assert gave_up.value.last is None
    assert len(lefts) == 1 and 0 < lefts[0] <= 0.05
