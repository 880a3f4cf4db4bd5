"""`make bench`: the service against DeepFace's own REST API, same images, same machine,
same client concurrency, in one run. Prints a table of ratios (ours / theirs) and writes
bench/results/latest.json, a timestamped copy, and a chart.

    .venv/bin/python -m bench.run [--count 300] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.baseline import DeepFaceApi
from bench.processes import children, peak_rss_mb
from bench.workload import BenchImage, bench_images, workload
from service.adapters.model_weights import place_weights
from service.settings import Settings
from tests.support.image_server import ImageServer
from tests.support.kafka_client import CommandClient
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess

RESULTS = Path(__file__).resolve().parent / "results"
LARGE = ("photo-1080", "photo-12mp")


@dataclass(frozen=True)
class Sample:
    kind: str
    name: str
    latency_s: float
    ok: bool
    code: str
    embedding: tuple[float, ...] = ()
    stages_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    label: str
    samples: list[Sample]
    seconds: float
    peak_rss_mb_per_worker: list[float]

    @property
    def per_second(self) -> float:
        return len(self.samples) / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile([s.latency_s * 1000 for s in self.samples], q)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def closed_loop(
    items: Sequence[BenchImage],
    concurrency: int,
    call: Callable[[int, BenchImage], Awaitable[Sample]],
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


class Ours:
    """The service as a process on embedded Kafka, driven by a client over the wire."""

    def __init__(
        self, workers: int, server: ImageServer, deepface_home: Path, detect_max_side: int | None
    ) -> None:
        self.port = free_port()
        overrides = {}
        if detect_max_side is not None:
            overrides["FACE_DETECT_MAX_SIDE_PX"] = str(detect_max_side)
        self.service = ServiceProcess(
            ServiceProcess.environment(
                EMBEDDED_KAFKA_PORT=str(self.port),
                DEEPFACE_HOME=str(deepface_home),
                INFERENCE_WORKERS=str(workers),
                **overrides,
                **server.fetch_env(),
            )
        )
        self.server = server
        self.client = CommandClient(
            f"127.0.0.1:{self.port}",
            "face.register.commands",
            "face.register.results",
            "face.register.events",
        )
        self._run = f"{time.time_ns()}"
        self._persons = itertools.count()  # a new person per command: no cap, no match

    async def __aenter__(self) -> Ours:
        await self.service.start()
        await self.client.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.stop()
        try:
            # SIGTERM: the service stops its embedded broker, which lives in its own session.
            await self.service.terminate(timeout_s=60)
        finally:
            await self.service.stop()

    async def register(self, index: int, image: BenchImage, user: str = "") -> Sample:
        body = {
            "CategoryId": "bench",
            "PersonId": f"{self._run}-{next(self._persons)}",
            "ImageUrl": self.server.base_url + image.path,
        }
        started = time.perf_counter()
        request_id = await self.client.send(user or f"bench-{index % 8}", body)
        result = await self.client.result(request_id, timeout_s=900)
        latency = time.perf_counter() - started
        face_id = result.get("FaceId")
        embedding: tuple[float, ...] = ()
        if face_id:
            embedding = tuple((await self.client.event(face_id))["Embedding"])
        done = await self.service.wait_for_log(
            lambda e: e.get("message") == "command done" and e.get("request_id") == request_id,
            60,
        )
        return Sample(
            image.kind,
            image.name,
            latency,
            bool(face_id),
            result.get("Code", "OK"),
            embedding,
            done.get("timings_ms", {}),
        )

    def worker_peak_rss_mb(self) -> list[float]:
        assert self.service.process is not None
        return [peak_rss_mb(pid) for pid in children(self.service.process.pid)]

    async def throttled_latencies_ms(self, backlog: int, throttled: int) -> list[float]:
        """`backlog` admitted commands, then `throttled` over the limit: how soon the
        throttled ones are answered while the backlog waits for inference."""
        portrait = next(i for i in bench_images() if i.kind == "portrait")
        url = self.server.base_url + portrait.path
        users = [f"backlog-{self._run}-{u}" for u in range(max(1, backlog // 100))]

        async def send(user: str, person: str) -> tuple[str, float]:
            body = {"CategoryId": "bench", "PersonId": person, "ImageUrl": url}
            started = time.perf_counter()
            return await self.client.send(user, body), started

        # Concurrent sends: all within the limiter's second, so the backlog is exactly at
        # the users' limit and every command after it is over.
        await asyncio.gather(*(send(users[i % len(users)], f"b{i}") for i in range(backlog)))
        sent = await asyncio.gather(*(send(users[0], f"t{i}") for i in range(throttled)))
        results = await self.client.results_for([r for r, _ in sent], timeout_s=900)
        codes = {r.get("Code", "OK") for r in results.values()}
        assert codes == {"Throttling.User"}, codes
        return [(self.client.arrived_at[r] - t) * 1000 for r, t in sent]


async def run_ours(
    label: str,
    workers: int,
    items: Sequence[BenchImage],
    concurrency: int,
    server: ImageServer,
    args: argparse.Namespace,
    extras: dict[str, Any] | None = None,
) -> Run:
    deepface_home = Path(args.deepface_home)
    async with Ours(workers, server, deepface_home, args.detect_max_side) as ours:
        warm = [i for i in bench_images() if i.kind == "portrait"][: 2 * workers]
        await closed_loop(warm, concurrency, ours.register)
        samples, seconds = await closed_loop(items, concurrency, ours.register)
        if extras is not None:
            sequential = [i for i in items if i.kind in ("portrait", *LARGE)][:20]
            extras["sequential"], _ = await closed_loop(sequential, 1, ours.register)
            extras["throttled_ms"] = await ours.throttled_latencies_ms(500, 50)
        return Run(label, samples, seconds, ours.worker_peak_rss_mb())


async def run_theirs(
    workers: int,
    items: Sequence[BenchImage],
    concurrency: int,
    server: ImageServer,
    deepface_home: Path,
) -> Run:
    api = DeepFaceApi(workers, free_port(), deepface_home)
    await api.start()
    try:
        async with httpx.AsyncClient() as client:

            async def call(_index: int, image: BenchImage) -> Sample:
                started = time.perf_counter()
                body = await api.represent(client, server.base_url + image.path)
                latency = time.perf_counter() - started
                found = body.get("results") or []
                ok = body["status"] == 200 and len(found) == 1
                embedding = tuple(found[0]["embedding"]) if ok else ()
                return Sample(image.kind, image.name, latency, ok, str(body["status"]), embedding)

            warm = [i for i in bench_images() if i.kind == "portrait"][: 2 * workers]
            await closed_loop(warm, concurrency, call)
            samples, seconds = await closed_loop(items, concurrency, call)
        return Run(
            "DeepFace REST API", samples, seconds, [peak_rss_mb(p) for p in api.worker_pids()]
        )
    finally:
        await api.stop()


def cost_ms(samples: Sequence[Sample], kind: str) -> float:
    """The worker's time for one image of `kind`: decode, detect and embed."""
    costs = [
        s.stages_ms.get("decode", 0) + s.stages_ms.get("detect", 0) + s.stages_ms.get("embed", 0)
        for s in samples
        if s.kind == kind and s.ok
    ]
    return statistics.mean(costs) if costs else float("nan")


def overhead_fraction(samples: Sequence[Sample]) -> float:
    shares = [
        1 - (s.stages_ms.get("detect", 0) + s.stages_ms.get("embed", 0)) / (s.latency_s * 1000)
        for s in samples
        if s.ok
    ]
    return statistics.mean(shares) if shares else float("nan")


def max_embedding_shift(ours: Sequence[Sample], theirs: Sequence[Sample]) -> float:
    reference = {s.name: np.asarray(s.embedding) for s in theirs if s.ok}
    shifts = [
        float(np.linalg.norm(np.asarray(s.embedding) - reference[s.name]))
        for s in ours
        if s.ok and s.name in reference
    ]
    return max(shifts) if shifts else float("nan")


def report(
    ours: Run, theirs: Run, one_worker: Run, extras: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    sequential: list[Sample] = extras["sequential"]
    summary = {
        "throughput_vs_deepface_api": ours.per_second / theirs.per_second,
        "overhead_fraction": overhead_fraction(sequential),
        "large_vs_portrait_cost": cost_ms(ours.samples, "photo-1080")
        / cost_ms(ours.samples, "portrait"),
        "throttled_p99_ms": percentile(extras["throttled_ms"], 99),
        "scaling_2_vs_1_workers": ours.per_second / one_worker.per_second,
        "peak_rss_mb_per_worker": max(ours.peak_rss_mb_per_worker),
        "max_embedding_shift": max_embedding_shift(ours.samples, theirs.samples),
    }
    kinds = sorted({s.kind for s in ours.samples})
    detail = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": args.count,
        "concurrency": args.concurrency,
        "face_detect_max_side_px": args.detect_max_side
        if args.detect_max_side is not None
        else Settings.model_fields["face_detect_max_side_px"].default,
        "cpus": os.cpu_count(),
        "runs": {
            run.label: {
                "per_second": run.per_second,
                "seconds": run.seconds,
                "p50_ms": run.latency_ms(50),
                "p95_ms": run.latency_ms(95),
                "p99_ms": run.latency_ms(99),
                "peak_rss_mb_per_worker": run.peak_rss_mb_per_worker,
                "mean_ms_by_kind": {
                    kind: statistics.mean(
                        [s.latency_s * 1000 for s in run.samples if s.kind == kind] or [0]
                    )
                    for kind in kinds
                },
            }
            for run in (ours, one_worker, theirs)
        },
        "worker_cost_ms_by_kind": {kind: cost_ms(ours.samples, kind) for kind in kinds},
        "codes_by_kind": {
            run.label: {
                kind: dict(Counter(s.code for s in run.samples if s.kind == kind)) for kind in kinds
            }
            for run in (ours, theirs)
        },
    }
    return {**summary, "detail": detail}


def print_table(result: dict[str, Any], ours: Run, theirs: Run) -> None:
    say("")
    say(f"{'':<26} {'ours':>10} {'DeepFace API':>13} {'ratio':>7}")
    for name, a, b in (
        ("registrations / s", ours.per_second, theirs.per_second),
        ("p50 latency ms", ours.latency_ms(50), theirs.latency_ms(50)),
        ("p95 latency ms", ours.latency_ms(95), theirs.latency_ms(95)),
        ("p99 latency ms", ours.latency_ms(99), theirs.latency_ms(99)),
        (
            "peak RSS MB / worker",
            max(ours.peak_rss_mb_per_worker),
            max(theirs.peak_rss_mb_per_worker),
        ),
    ):
        say(f"{name:<26} {a:>10.2f} {b:>13.2f} {a / b:>7.2f}")
    say("")
    for key in (
        "throughput_vs_deepface_api",
        "overhead_fraction",
        "large_vs_portrait_cost",
        "throttled_p99_ms",
        "scaling_2_vs_1_workers",
        "peak_rss_mb_per_worker",
        "max_embedding_shift",
    ):
        say(f"{key:<30} {result[key]:>10.3f}")


def write(result: dict[str, Any], ours: Run, theirs: Run) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = result["detail"]["when"].replace(":", "")
    text = json.dumps(_without_nan(result), indent=2)
    (RESULTS / "latest.json").write_text(text + "\n")
    (RESULTS / f"{stamp}.json").write_text(text + "\n")
    chart(ours, theirs, RESULTS / "latest.png")
    say(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.png'}")


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: a number that could not be measured is null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def chart(ours: Run, theirs: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({s.kind for s in ours.samples})
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(["ours", "DeepFace API"], [ours.per_second, theirs.per_second], color=["C0", "C1"])
    left.set_title("registrations per second")
    positions = np.arange(len(kinds))
    for offset, run, color in ((-0.2, ours, "C0"), (0.2, theirs, "C1")):
        means = [
            statistics.mean([s.latency_s for s in run.samples if s.kind == k] or [0]) for k in kinds
        ]
        right.bar(positions + offset, means, width=0.4, color=color, label=run.label)
    right.set_xticks(positions, kinds, rotation=20)
    right.set_title("mean latency by image kind (s)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


async def main(args: argparse.Namespace) -> None:
    deepface_home = Path(args.deepface_home)
    place_weights(deepface_home, "Dlib", "mtcnn")
    images = bench_images()
    items = workload(images, args.count)
    server = ImageServer()
    for image in images:
        server.serve(image.path, image.data)
    server.start()
    workers = os.cpu_count() or 1
    try:
        extras: dict[str, Any] = {}
        say(f"ours: {args.count} registrations, {workers} workers, concurrency {args.concurrency}")
        ours = await run_ours("ours", workers, items, args.concurrency, server, args, extras)
        say(f"  {ours.per_second:.2f}/s")
        subset = items[: max(20, args.count // 3)]
        say(f"ours with 1 worker: {len(subset)} registrations")
        one = await run_ours("ours, 1 worker", 1, subset, args.concurrency, server, args)
        say(f"  {one.per_second:.2f}/s")
        say(f"DeepFace REST API: {args.count} requests, {workers} gunicorn workers")
        theirs = await run_theirs(workers, items, args.concurrency, server, deepface_home)
        say(f"  {theirs.per_second:.2f}/s")
    finally:
        server.stop()
    result = report(ours, theirs, one, extras, args)
    print_table(result, ours, theirs)
    write(result, ours, theirs)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="registrations per run")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--detect-max-side",
        type=int,
        default=None,
        help="the service's FACE_DETECT_MAX_SIDE_PX (unset: the service's default)",
    )
    parser.add_argument(
        "--deepface-home",
        default=str(Path.home() / ".cache" / "face-service-bench"),
        help="where the weights are placed for both sides",
    )
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
