"""Face inference in worker processes, one model copy each, off the event loop.

A process per core: ONNX Runtime (and, on the reference path, TensorFlow and dlib) run
their kernels on one thread here, so processes, not threads, are what put the cores to
work.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

from service.adapters.face_embedder import Embedding
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.domain.errors import TransientError
from service.domain.faces import AnalysedFace, FacePolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EngineConfig:
    detector_name: str
    policy: FacePolicy
    max_pixels: int
    detect_max_side_px: int
    deepface_home: str
    embedding: Embedding
    detection: MtcnnNetworks


_engine = None


def _exit_with_parent(parent: int) -> None:
    # A worker of a service killed with -9 would otherwise live on, holding its models.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


_WORKER_NICENESS = 10


def _start_worker(config: EngineConfig) -> None:
    # Ctrl+C reaches the whole process group: shutting down is the service's call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # Inference is throughput work; the service's event loop and its broker traffic are
    # latency work (a throttled answer, a heartbeat): on shared cores they go first.
    os.nice(_WORKER_NICENESS)
    # Set before TensorFlow is imported, which reads them once.
    os.environ["DEEPFACE_HOME"] = config.deepface_home
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    from service.adapters.face_engine import DeepFaceEngine

    global _engine
    _engine = DeepFaceEngine(
        config.detector_name,
        config.policy,
        config.max_pixels,
        config.detect_max_side_px,
        config.embedding,
        config.detection,
    )
    _engine.load()


def _analyse(data: bytes) -> AnalysedFace:
    assert _engine is not None, "worker started without its engine"
    return _engine.analyse(data)


def _find_faces(data: bytes, max_faces: int) -> list[AnalysedFace]:
    assert _engine is not None, "worker started without its engine"
    return _engine.find_faces(data, max_faces)


def _warm(hold_s: float) -> int:
    # Holding the worker a moment makes each warm-up call land on a different process.
    time.sleep(hold_s)
    return os.getpid()


class InferencePool:
    def __init__(self, config: EngineConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._executor = self._new_executor()
        self.restarts = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self._config,),
        )

    async def start(self) -> None:
        """Start every worker and load its models before the first command."""
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(
            *(loop.run_in_executor(self._executor, _warm, 0.5) for _ in range(self._workers))
        )
        log.info("inference workers ready", extra={"workers": sorted(set(pids))})

    async def analyse(self, data: bytes) -> AnalysedFace:
        return await self._run(_analyse, data)

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        return await self._run(_find_faces, data, max_faces)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work, *args)
        except BrokenProcessPool:
            self._replace(executor)
            raise TransientError("an inference worker died; the image is tried again") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        # Several commands see the same broken pool: only the first replaces it.
        if broken is not self._executor:
            return
        self.restarts += 1
        log.warning(
            "inference worker died; starting new workers", extra={"restarts": self.restarts}
        )
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def worker_pids(self) -> list[int]:
        return sorted(self._executor._processes)

    async def close(self) -> None:
        # Waits for the inference under way, which must not block the event loop meanwhile.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
