"""Image bombs are refused without allocating what they promise: measured in a fresh
process each (peak RSS only grows), with the same code the service runs."""

from __future__ import annotations

import pytest

from bench.bombs import measure_in_fresh_process

LIMIT_MB = 200


@pytest.mark.parametrize(
    "case", ["pixel-bomb-png-20000x20000", "gzip-bomb-1GiB", "no-length-200MB"]
)
def test_a_bomb_is_refused_within_a_bounded_memory_growth(case: str) -> None:
    measured = measure_in_fresh_process(case)

    assert measured.outcome == "InvalidImage.TooLarge"
    assert measured.peak_rss_growth_mb < LIMIT_MB, measured
