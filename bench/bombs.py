"""How fast, and in how little memory, image bombs are refused.

Each case runs the service's own fetch and decode (the code an inference worker runs) in a
fresh process, against a local server on 127.0.0.2, and reports the time to the refusal
and how much the process's peak RSS grew. The baseline is a normal 512x512 portrait
measured the same way in the same run; the ratios compare against it.

    .venv/bin/python -m bench.bombs            # the table
    .venv/bin/python -m bench.bombs --json     # one JSON object per case
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from service.adapters.image_decoder import decode_image
from service.adapters.image_fetcher import FetchLimits, HttpImageFetcher
from service.adapters.public_address import AddressPolicy
from service.domain.errors import Rejected
from tests.support.image_server import IMAGE_HOST, ImageServer, Route
from tests.support.images import fixture_bytes, gzip_bomb, png_pixel_bomb

MAX_BYTES = 10 * 1024 * 1024  # the service's defaults
MAX_PIXELS = 50_000_000


ROUTES: dict[str, Callable[[], Route]] = {
    "baseline-portrait": lambda: Route(fixture_bytes("astronaut.png")),
    "pixel-bomb-png-20000x20000": lambda: Route(png_pixel_bomb(20_000, 20_000)),
    "gzip-bomb-1GiB": lambda: Route(gzip_bomb(1 << 30), headers=(("Content-Encoding", "gzip"),)),
    "no-length-200MB": lambda: Route(b"\0" * 200_000_000, send_length=False),
    # Not a bomb: the largest picture the pixel cap lets through, for sizing workers.
    "accepted-7000x7000": lambda: Route(png_pixel_bomb(7_000, 7_000)),
}
CASES = tuple(ROUTES)


@dataclass(frozen=True)
class Measurement:
    case: str
    outcome: str
    wire_bytes: int
    seconds: float
    peak_rss_growth_mb: float


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _measure(case: str) -> Measurement:
    server = ImageServer()
    route = ROUTES[case]()
    url = server.route(f"/{case}", route)
    server.start()
    fetcher = HttpImageFetcher(
        FetchLimits(3, 5, 5, 60, MAX_BYTES),
        allowed_ports=[server.port],
        policy=AddressPolicy.from_cidrs([f"{IMAGE_HOST}/32"]),
    )
    before = _peak_rss_mb()
    started = time.perf_counter()
    try:
        pixels = decode_image(await fetcher.fetch(url), MAX_PIXELS)
        outcome = f"decoded {pixels.shape[1]}x{pixels.shape[0]}"
    except Rejected as refusal:
        outcome = refusal.code.value
    seconds = time.perf_counter() - started
    growth = _peak_rss_mb() - before
    await fetcher.close()
    server.stop()
    return Measurement(case, outcome, len(route.body), seconds, growth)


def measure_in_fresh_process(case: str) -> Measurement:
    run = subprocess.run(
        [sys.executable, "-m", "bench.bombs", "--one", case],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        text=True,
    )
    return Measurement(**json.loads(run.stdout))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", choices=CASES, help="measure one case in this process")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args()
    if args.one:
        _say(json.dumps(asdict(asyncio.run(_measure(args.one)))))
        return
    results = [measure_in_fresh_process(case) for case in CASES]
    base = results[0]
    if args.json:
        for result in results:
            _say(json.dumps(asdict(result)))
        return
    _say(
        f"{'case':<28} {'outcome':<22} {'wire KB':>8} {'ms':>8} {'x base':>7} "
        f"{'RSS+ MB':>8} {'x base':>7}"
    )
    for r in results:
        _say(
            f"{r.case:<28} {r.outcome:<22} {r.wire_bytes / 1024:>8.0f} {r.seconds * 1000:>8.1f} "
            f"{r.seconds / base.seconds:>7.2f} {r.peak_rss_growth_mb:>8.1f} "
            f"{r.peak_rss_growth_mb / max(base.peak_rss_growth_mb, 0.1):>7.2f}"
        )


if __name__ == "__main__":
    main()
