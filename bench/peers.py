"""The peers we are measured against, each an HTTP API under gunicorn, driven by the same
closed loop on the same images as the service: DeepFace's own REST API and
`face_recognition`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from bench.cpu import cpu_spent, per_item_ms
from bench.loop import Run, Sample, closed_loop
from bench.processes import peak_rss_mb
from bench.workload import BenchImage, bench_images
from tests.support.image_server import ImageServer

PEER_WORKERS = "gunicorn workers"


@dataclass(frozen=True)
class FoundFace:
    area: float
    embedding: tuple[float, ...]


class PeerApi(Protocol):
    async def start(self, timeout_s: float = ...) -> None: ...
    async def stop(self) -> None: ...
    def worker_pids(self) -> list[int]: ...
    async def represent(self, client: httpx.AsyncClient, image_url: str) -> dict[str, Any]: ...


ReadFaces = Callable[[dict[str, Any]], list[FoundFace] | None]


def deepface_faces(body: dict[str, Any]) -> list[FoundFace] | None:
    """Every face of a DeepFace answer; none when it could not detect one (its refusal
    under `enforce_detection`), None for any other failure."""
    if body["status"] != 200:
        return [] if "could not be detected" in str(body.get("error", "")) else None
    return [
        FoundFace(r["facial_area"]["w"] * r["facial_area"]["h"], tuple(r["embedding"]))
        for r in body.get("results") or []
    ]


def face_recognition_faces(body: dict[str, Any]) -> list[FoundFace] | None:
    """Every face of an answer of bench/face_recognition_app.py; None when it failed."""
    if body["status"] != 200:
        return None
    found = []
    for r in body["results"]:
        top, right, bottom, left = r["box"]
        found.append(FoundFace((bottom - top) * (right - left), tuple(r["embedding"])))
    return found


async def run_peer(
    label: str,
    api: PeerApi,
    faces: ReadFaces,
    items: Sequence[BenchImage],
    concurrency: int,
    server: ImageServer,
    workers: int,
) -> Run:
    await api.start()
    try:
        async with httpx.AsyncClient() as client:

            async def call(_index: int, image: BenchImage) -> Sample:
                started = time.perf_counter()
                body = await api.represent(client, server.base_url + image.path)
                latency = time.perf_counter() - started
                found = faces(body)
                largest_first = sorted(found or [], key=lambda f: f.area, reverse=True)
                return Sample(
                    image.kind,
                    image.name,
                    latency,
                    found is not None and len(found) == 1,
                    str(body["status"]),
                    tuple(f.embedding for f in largest_first),
                    None if found is None else len(found),
                )

            warm = [i for i in bench_images() if i.kind == "portrait"][: 2 * workers]
            await closed_loop(warm, concurrency, call)
            with cpu_spent({PEER_WORKERS: api.worker_pids()}) as spent:
                samples, seconds = await closed_loop(items, concurrency, call)
        rss = [peak_rss_mb(p) for p in api.worker_pids()]
        return Run(label, samples, seconds, rss, per_item_ms(spent, len(items)))
    finally:
        await api.stop()
