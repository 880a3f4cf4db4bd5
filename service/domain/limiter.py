"""Per-user rate limit decided from the records' own timestamps."""

from __future__ import annotations

import bisect
from collections import defaultdict

WINDOW_MS = 1000


class UserRateLimiter:
    """At most `limit` admitted calls per user in any one-second window.

    Time is the record's timestamp, not the clock: a backlog read late, or a replay of the
    log, is judged exactly as the calls were made. Only admitted calls fill the window, so a
    user who keeps calling over the limit still gets `limit` calls through each second.
    """

    SWEEP_EVERY = 4096

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: defaultdict[str, list[int]] = defaultdict(list)
        self._calls = 0

    def admit(self, user: str, timestamp_ms: int) -> bool:
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._forget_idle_users(timestamp_ms - 2 * WINDOW_MS)
        times = self._admitted[user]
        self._forget_before(times, timestamp_ms - 2 * WINDOW_MS)
        start = bisect.bisect_right(times, timestamp_ms - WINDOW_MS)
        end = bisect.bisect_right(times, timestamp_ms)
        if end - start >= self._limit:
            return False
        # Timestamps of one user may arrive slightly out of order (several producers).
        times.insert(end, timestamp_ms)
        return True

    def forget_user(self, user: str) -> None:
        self._admitted.pop(user, None)

    @property
    def tracked_users(self) -> int:
        return len(self._admitted)

    def _forget_idle_users(self, cutoff_ms: int) -> None:
        idle = [
            user for user, times in self._admitted.items() if not times or times[-1] < cutoff_ms
        ]
        for user in idle:
            del self._admitted[user]

    @staticmethod
    def _forget_before(times: list[int], cutoff_ms: int) -> None:
        stale = bisect.bisect_left(times, cutoff_ms)
        if stale:
            del times[:stale]
