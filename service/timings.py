"""Where a command's time goes, stage by stage, for its log line and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the block's duration to `timings[stage]`, in milliseconds."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        timings[stage] = timings.get(stage, 0.0) + elapsed
