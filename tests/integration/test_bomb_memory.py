"""Image bombs are refused without allocating what they promise: measured in a fresh
process each (peak RSS only grows), with the same code the service runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 200


@pytest.mark.parametrize(
    "case", ["pixel-bomb-png-20000x20000", "gzip-bomb-1GiB", "no-length-200MB"]
)
def test_a_bomb_is_refused_within_a_bounded_memory_growth(case: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.bombs", "--one", case],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(run.stdout)

    assert measured["outcome"] == "InvalidImage.TooLarge"
    assert measured["peak_rss_growth_mb"] < LIMIT_MB, measured
