"""What every side of the benchmark is measured with: one sample per image, the closed loop
of clients that sends them, and a run's totals."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.workload import BenchImage


@dataclass(frozen=True)
class Sample:
    kind: str
    name: str
    latency_s: float
    ok: bool  # one face, embedded (a registration that succeeded)
    code: str
    embeddings: tuple[tuple[float, ...], ...] = ()  # of every face embedded, largest first
    faces: int | None = None  # faces found; None when the answer does not say
    stages_ms: dict[str, float] = field(default_factory=dict)

    @property
    def embedding(self) -> tuple[float, ...]:
        """The largest face's: the one a registration would keep."""
        return self.embeddings[0] if self.embeddings else ()


@dataclass(frozen=True)
class Run:
    label: str
    samples: list[Sample]
    seconds: float
    peak_rss_mb_per_worker: list[float]
    # Core-ms per image of each process role during the closed loop.
    cpu_ms_per_item: dict[str, float] = field(default_factory=dict)
    # The service's worker core-ms per image, one image at a time, by image kind.
    worker_cpu_ms_by_kind: dict[str, float] = field(default_factory=dict)
    # What embedded the faces, as the service's face events record it: proof of the path.
    runtimes: tuple[str, ...] = ()

    @property
    def per_second(self) -> float:
        return len(self.samples) / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile([s.latency_s * 1000 for s in self.samples], q)


Call = Callable[[int, BenchImage], Awaitable[Sample]]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def closed_loop(
    items: Sequence[BenchImage], concurrency: int, call: Call
) -> tuple[list[Sample], float]:
    """`concurrency` clients, each sending its next request when its last one is answered."""
    queue = list(enumerate(items))
    samples: list[Sample] = []

    async def client() -> None:
        while queue:
            index, image = queue.pop(0)
            samples.append(await call(index, image))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples, time.perf_counter() - started
