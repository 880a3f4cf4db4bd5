"""Prometheus metrics: what an operator graphs and alerts on.

The counters are the process's; each service builds the registry it serves from them and
from its own live values, so two services in one process (as in tests) do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

COMMANDS = Counter(
    "face_register_commands",
    "Register commands answered, by result code (OK for a FaceId).",
    ["code"],
    registry=None,
)
STAGE_SECONDS = Histogram(
    "face_register_stage_seconds",
    "Time per stage of a command: fetch, decode, detect, embed, inference (queue and "
    "worker), store, event, publish, total.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=None,
)
LIMITER_DECISIONS = Counter(
    "face_register_limiter_decisions",
    "Per-user rate limiter decisions: admitted or throttled.",
    ["decision"],
    registry=None,
)
PARTITION_MISMATCHES = Counter(
    "face_register_partition_mismatches",
    "Command records refused for sitting on another partition than their key maps to: a "
    "producer with the wrong partitioner, or one that picks partitions itself.",
    registry=None,
)


def service_registry(live: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for collector in (COMMANDS, STAGE_SECONDS, LIMITER_DECISIONS, PARTITION_MISMATCHES, live):
        registry.register(collector)
    return registry


def observe_outcome(code: str, timings_ms: Mapping[str, float]) -> None:
    COMMANDS.labels(code=code).inc()
    for stage, milliseconds in timings_ms.items():
        STAGE_SECONDS.labels(stage=stage).observe(milliseconds / 1000)


def observe_limiter(admitted: bool) -> None:
    LIMITER_DECISIONS.labels(decision="admitted" if admitted else "throttled").inc()


def observe_partition_mismatch() -> None:
    PARTITION_MISMATCHES.inc()


class LiveCounts(Collector):
    """Values read from the running service at scrape time, not counted by hand."""

    def __init__(self, in_flight: Callable[[], int], worker_restarts: Callable[[], int]) -> None:
        self._in_flight = in_flight
        self._worker_restarts = worker_restarts

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "face_register_records_in_flight",
            "Command records taken from Kafka and not yet answered.",
            value=self._in_flight(),
        )
        yield CounterMetricFamily(
            "face_register_worker_restarts",
            "Inference worker processes replaced after they died.",
            value=self._worker_restarts(),
        )
