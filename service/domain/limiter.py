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

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: defaultdict[str, list[int]] = defaultdict(list)

    def admit(self, user: str, timestamp_ms: int) -> bool:
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

    @staticmethod
    def _forget_before(times: list[int], cutoff_ms: int) -> None:
        stale = bisect.bisect_left(times, cutoff_ms)
        if stale:
            del times[:stale]
