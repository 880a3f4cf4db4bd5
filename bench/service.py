"""Our side: `face-service run` as a process on its embedded broker, driven over Kafka by a
client as another team would drive it, its processes' CPU read from /proc."""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cpu import cpu_spent, per_item_ms
from bench.loop import Run, Sample, closed_loop
from bench.processes import command_line, inference_workers, listening_pid, peak_rss_mb
from bench.workload import KINDS, BenchImage, bench_images
from service.adapters.face_keys import FileFaceKeys
from service.adapters.sealing import associated_data, open_sealed
from service.contracts.messages import FaceSecret
from service.settings import EMBEDDED_FETCH_MAX_WAIT_MS, Settings
from tests.support.image_server import ImageServer
from tests.support.kafka_client import CommandClient
from tests.support.ports import free_port
from tests.support.service_process import ServiceProcess

LARGE = ("photo-1080", "photo-12mp")

# The path the service takes by default, and the one it is checked against: dlib-bin
# itself for the Dlib ResNet, mtcnn's networks as eager Keras, as plain DeepFace runs them.
FAST: dict[str, str] = {}
REFERENCE = {"FACE_EMBEDDER_RUNTIME": "dlib", "FACE_DETECTOR_RUNTIME": "keras"}


def checked(settings: Mapping[str, str]) -> Mapping[str, str]:
    """`settings`, each one the service knows: it ignores an environment variable it does not
    know, and a renamed setting would silently benchmark the default path twice."""
    unknown = [name for name in settings if name.lower() not in Settings.model_fields]
    if unknown:
        raise SystemExit(f"the service has no setting {', '.join(unknown)}")
    return settings


SERVICE_MAIN, WORKERS, BROKER = "service main", "inference workers", "embedded broker"

# A refusal still tells how many faces the image held.
_FACES_OF_REFUSAL = {
    "InvalidImage.NoFace": 0,
    "InvalidImage.FaceTooSmall": 1,
    "InvalidImage.FaceNotFrontal": 1,
    "InvalidImage.FaceMismatch": 1,
}
_SEVERAL = re.compile(r"holds (\d+) faces")


def faces_of(result: Mapping[str, Any]) -> int | None:
    code = result.get("Code")
    if code is None:
        return 1
    if code == "InvalidImage.MultipleFaces":
        found = _SEVERAL.search(str(result.get("Message", "")))
        return int(found.group(1)) if found else None
    return _FACES_OF_REFUSAL.get(code)


class Ours:
    def __init__(
        self,
        workers: int,
        server: ImageServer,
        deepface_home: Path,
        settings: Mapping[str, str],
    ) -> None:
        self.port = free_port()
        env = ServiceProcess.environment(
            EMBEDDED_KAFKA_PORT=str(self.port),
            DEEPFACE_HOME=str(deepface_home),
            INFERENCE_WORKERS=str(workers),
            **checked(settings),
            **server.fetch_env(),
        )
        self.service = ServiceProcess(env)
        self._keys_file = Path(env["EMBEDDED_FACE_KEYS_FILE"])
        self._keys: FileFaceKeys | None = None
        self.runtimes: set[str] = set()
        self.server = server
        self.client = CommandClient(
            f"127.0.0.1:{self.port}",
            "face.register.commands",
            "face.register.results",
            "face.register.events",
            # The service's own broker is the embedded one, which answers some fetches only
            # when their wait ends: Kafka's 500 ms would be measured as our latency.
            fetch_max_wait_ms=EMBEDDED_FETCH_MAX_WAIT_MS,
            # A client awaiting each command's send, as the bench's does, fills no batch:
            # a linger would be measured as our latency (aiokafka's default is none).
            linger_ms=0,
        )
        self._run = f"{time.time_ns()}"
        self._persons = itertools.count()  # a new person per command: no cap, no match

    async def __aenter__(self) -> Ours:
        await self.service.start()
        # Opened once the service has made the file anew for its new broker.
        self._keys = FileFaceKeys(self._keys_file)
        await self.client.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.stop()
        if self._keys is not None:
            self._keys.close()
        try:
            # SIGTERM: the service stops its embedded broker, which lives in its own session.
            await self.service.terminate(timeout_s=60)
        finally:
            await self.service.stop()

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def roles(self) -> dict[str, list[int]]:
        """The service's processes by role. The broker is found by the port it listens on:
        it runs in a session of its own, and a service may reuse one it finds running."""
        assert "face-service" in command_line(self.pid), command_line(self.pid)
        broker = listening_pid(self.port)
        if broker is None:
            raise RuntimeError(f"no process listens on the broker's port {self.port}")
        return {SERVICE_MAIN: [self.pid], WORKERS: inference_workers(self.pid), BROKER: [broker]}

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
        embeddings = (await self.embedding(face_id),) if face_id else ()
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
            embeddings,
            faces_of(result),
            done.get("timings_ms", {}),
        )

    async def embedding(self, face_id: str) -> tuple[float, ...]:
        """The face's embedding, from its event: sealed with the face's own key, which the
        service keeps in its key file (embedded mode)."""
        assert self._keys is not None
        event = await self.client.event(face_id)
        self.runtimes.add(event.get("Runtime", ""))
        key = await self._keys.find(event["Owner"], face_id)
        assert key is not None, f"no key for face {face_id}"
        plain = open_sealed(key, associated_data(event["Owner"], face_id), event["Sealed"])
        return FaceSecret.model_validate_json(plain).Embedding

    def worker_peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(pid) for pid in inference_workers(self.pid)]

    async def worker_cpu_ms_by_kind(self, per_kind: int) -> dict[str, float]:
        """The workers' core-ms for one image of each kind, sent one at a time so that
        nothing else runs on them meanwhile."""
        workers = {WORKERS: inference_workers(self.pid)}
        by_kind: dict[str, float] = {}
        for kind in KINDS:
            images = [i for i in bench_images() if i.kind == kind]
            spent_ms = []
            for index in range(per_kind):
                with cpu_spent(workers) as spent:
                    await self.register(index, images[index % len(images)])
                spent_ms.append(spent[WORKERS] * 1000)
            by_kind[kind] = statistics.mean(spent_ms)
        return by_kind

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
    settings: Mapping[str, str],
    items: Sequence[BenchImage],
    concurrency: int,
    server: ImageServer,
    workers: int,
    deepface_home: Path,
    per_kind: int,
    extras: dict[str, Any] | None = None,
) -> Run:
    """The closed loop over `items` with each process's CPU, then the workers' CPU by image
    kind; with `extras`, also a sequential pass and the throttled burst."""
    async with Ours(workers, server, deepface_home, settings) as ours:
        warm = [i for i in bench_images() if i.kind == "portrait"][: 2 * workers]
        await closed_loop(warm, concurrency, ours.register)
        with cpu_spent(ours.roles()) as spent:
            samples, seconds = await closed_loop(items, concurrency, ours.register)
        by_kind = await ours.worker_cpu_ms_by_kind(per_kind)
        if extras is not None:
            sequential = [i for i in items if i.kind in ("portrait", *LARGE)][:20]
            extras["sequential"], _ = await closed_loop(sequential, 1, ours.register)
            extras["throttled_ms"] = await ours.throttled_latencies_ms(500, 50)
        return Run(
            label,
            samples,
            seconds,
            ours.worker_peak_rss_mb(),
            per_item_ms(spent, len(items)),
            by_kind,
            tuple(sorted(ours.runtimes)),
        )
