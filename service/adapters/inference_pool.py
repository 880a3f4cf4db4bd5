"""Face inference in worker processes, one model copy each, off the event loop.

A process per core: ONNX Runtime (and, on the reference path, TensorFlow and dlib) run
their kernels on one thread here, so processes, not threads, are what put the cores to
work.

Each worker has a socket of its own to the service: a call is one frame (the image's bytes
and what to do with them) and its answer one frame back, both read and written by the event
loop. A ProcessPoolExecutor carried each image through a thread and a queue each way, and
its answer back through another thread: 1.7 ms per call for a 30 kB image and 3.7 ms for a
megabyte, on an idle machine here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TypeVar, cast

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


_LENGTH = struct.Struct("!Q")
# What a worker's socket raises, or ends with, once the worker is gone.
_GONE = (OSError, EOFError)


def _serve(config: EngineConfig, connection: socket.socket) -> None:
    """A worker's life: load the models, say so, then answer calls until the service closes
    the socket."""
    _start_worker(config)
    with connection, connection.makefile("rb") as incoming:
        _send(connection, pickle.dumps(("ready", os.getpid())))
        while header := incoming.read(_LENGTH.size):
            work, args = pickle.loads(incoming.read(_LENGTH.unpack(header)[0]))
            try:
                answer = pickle.dumps(("ok", work(*args)))
            except Exception as error:  # crosses to the service, which raises it there
                answer = _pickled_error(error)
            _send(connection, answer)


def _pickled_error(error: Exception) -> bytes:
    where = "".join(traceback.format_exception(error))
    try:
        return pickle.dumps(("error", (error, where)))
    except Exception:  # an exception that does not pickle still says what it was
        return pickle.dumps(("error", (RuntimeError(f"{type(error).__name__}: {error}"), where)))


class WorkerTraceback(Exception):
    """Where in the worker an exception was raised: its `__cause__` in the service."""


def _send(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(_LENGTH.pack(len(payload)))
    connection.sendall(payload)


class WorkerDied(TransientError):
    def __init__(self) -> None:
        super().__init__("an inference worker died; the image is tried again")


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    loaded: bool = False  # its models are in: it has said it is ready

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def call(self, work: Callable[..., object], args: tuple[object, ...]) -> object:
        # The function goes by name, as a module's function pickles.
        request = pickle.dumps((work, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.writer.write(_LENGTH.pack(len(request)))
            self.writer.write(request)
            await self.writer.drain()
            status, value = await self.answer()
        except _GONE:
            raise WorkerDied() from None
        if status == "error":
            error, where = cast(tuple[Exception, str], value)
            raise error from WorkerTraceback(where)
        return value

    async def answer(self) -> tuple[str, object]:
        header = await self.reader.readexactly(_LENGTH.size)
        payload = await self.reader.readexactly(_LENGTH.unpack(header)[0])
        return cast(tuple[str, object], pickle.loads(payload))


_FIRST_RETRY_S = 1.0
_LAST_RETRY_S = 60.0


class InferencePool:
    def __init__(self, config: EngineConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._live: set[_Worker] = set()
        self._resting: deque[_Worker] = deque()  # waiting for a call, longest first
        # Set, and renewed, when a worker rests or a start fails: waiting calls look again.
        self._changed = asyncio.Event()
        # A worker failed to start with none alive: calls fail at once until one starts.
        self._cannot_start = False
        # Calls whose caller stopped waiting: each keeps its worker until the answer is in.
        self._calls: set[asyncio.Task[object]] = set()
        # Starts of new workers, and the retirements of dead ones before them.
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.restarts = 0

    async def start(self) -> None:
        """Start every worker and load its models before the first command."""
        started = await asyncio.gather(
            *(self._spawn() for _ in range(self._workers)), return_exceptions=True
        )
        workers = [w for w in started if isinstance(w, _Worker)]
        failed = [e for e in started if isinstance(e, BaseException)]
        if failed:
            for worker in workers:
                await self._retire(worker)
            raise failed[0]
        for worker in workers:
            self._rest(worker)
        log.info("inference workers ready", extra={"workers": sorted(w.pid for w in workers)})

    async def analyse(self, data: bytes) -> AnalysedFace:
        return await self._run(_analyse, data)

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        return await self._run(_find_faces, data, max_faces)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise TransientError("the inference workers are stopping")
        worker = await self._take()
        if self._closed:  # waited through the start of close(), which retires every worker
            self._rest(worker)
            raise TransientError("the inference workers are stopping")
        call = asyncio.create_task(self._call(worker, work, args))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        # Cancelled here, the caller leaves; the call keeps its worker until the answer is in,
        # so that no later call can read it as its own.
        return cast(T, await asyncio.shield(call))

    async def _take(self) -> _Worker:
        while True:
            while self._resting:
                worker = self._resting.popleft()
                if worker.process.is_alive():
                    return worker
                self._lost(worker)  # before its sentinel was read
            if self._closed:
                raise TransientError("the inference workers are stopping")
            if self._cannot_start and not self.workers_ready():
                raise TransientError("no inference worker could be started; see the log")
            await self._changed.wait()

    def _rest(self, worker: _Worker) -> None:
        if not worker.process.is_alive():  # gone right after its answer
            self._lost(worker)
            return
        self._resting.append(worker)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _watch(self, worker: _Worker) -> None:
        """A worker's exit is seen when it happens, not when a call finds it: one that dies
        resting (the kernel's OOM killer) is replaced before anything needs it."""

        def exited() -> None:
            asyncio.get_running_loop().remove_reader(worker.process.sentinel)
            if worker in self._resting:
                self._lost(worker)
            # Otherwise a call under way reads the end of its socket and replaces it, or
            # its answer came first and the worker is replaced as it comes back to rest.

        asyncio.get_running_loop().add_reader(worker.process.sentinel, exited)

    def _lost(self, worker: _Worker) -> None:
        """A worker found dead between calls: out of the pool at once, so that no call is
        handed it, and replaced in the background."""
        self._drop(worker)
        if not self._closed:
            self._in_background(self._replace(worker))

    def _drop(self, worker: _Worker) -> None:
        self._live.discard(worker)
        if worker in self._resting:
            self._resting.remove(worker)
        if worker.loaded:
            asyncio.get_running_loop().remove_reader(worker.process.sentinel)
        worker.writer.close()

    async def _call(
        self, worker: _Worker, work: Callable[..., object], args: tuple[object, ...]
    ) -> object:
        try:
            value = await worker.call(work, args)
        except WorkerDied:
            await self._replace(worker)
            raise
        except Exception:  # the worker's answer: a refusal, or its own failure
            self._rest(worker)
            raise
        except BaseException:
            # Cancelled mid-call (the callers never cancel a call: the loop is going away).
            # Its answer may still come, so the worker takes no other call.
            self._drop(worker)
            worker.process.kill()
            raise
        self._rest(worker)
        return value

    async def _replace(self, dead: _Worker) -> None:
        await self._retire(dead)
        if self._closed:
            return
        self.restarts += 1
        log.warning(
            "inference worker died; starting a new one",
            extra={"restarts": self.restarts, "exit_code": dead.process.exitcode},
        )
        self._in_background(self._start_replacement())

    def _in_background(self, work: Coroutine[object, None, None]) -> None:
        task = asyncio.create_task(work)
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _start_replacement(self) -> None:
        pause_s = _FIRST_RETRY_S
        while not self._closed:
            try:
                worker = await self._spawn()
            except Exception:
                log.exception(
                    "an inference worker failed to start; trying again",
                    extra={"retry_in_s": pause_s},
                )
                if not self.workers_ready():
                    self._cannot_start = True
                    self._notify()  # the calls waiting fail instead of hanging
                await asyncio.sleep(pause_s)
                # A worker that cannot load its models (memory, a damaged file) will not
                # by the next second: the log gets a line a minute, not one a second.
                pause_s = min(2 * pause_s, _LAST_RETRY_S)
                continue
            self._cannot_start = False
            self._rest(worker)
            return

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self._config, theirs), name="inference-worker"
        )

        def start() -> None:
            # The child is given the socket's number: it stays open until the start is done.
            try:
                process.start()
            finally:
                theirs.close()

        starting = asyncio.ensure_future(asyncio.to_thread(start))
        try:
            await asyncio.shield(starting)
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            # Failed or cancelled (close() during a replacement): nothing is left behind.
            ours.close()
            with contextlib.suppress(Exception):
                await starting
            if process.pid is not None:
                process.kill()
                await asyncio.to_thread(process.join)
            raise
        worker = _Worker(process, reader, writer)
        self._live.add(worker)
        try:
            status, _ = await worker.answer()
        except _GONE:
            await self._retire(worker)
            raise RuntimeError(
                "an inference worker exited while loading its models "
                f"(exit code {process.exitcode})"
            ) from None
        assert status == "ready", status
        worker.loaded = True
        self._watch(worker)
        return worker

    async def _retire(self, worker: _Worker) -> None:
        self._drop(worker)
        await asyncio.to_thread(_end, worker.process)

    def workers_ready(self) -> bool:
        """At least one worker is alive with its models loaded: calls can be answered."""
        return any(w.loaded and w.process.is_alive() for w in self._live)

    def worker_pids(self) -> list[int]:
        return sorted(w.pid for w in self._live)

    async def close(self) -> None:
        # The inference under way ends first; the event loop goes on meanwhile.
        self._closed = True
        self._notify()  # calls waiting for a worker stop waiting
        for replacing in list(self._replacing):
            replacing.cancel()
        await asyncio.gather(*self._calls, *self._replacing, return_exceptions=True)
        await asyncio.gather(*(self._retire(w) for w in list(self._live)))


def _end(process: BaseProcess) -> None:
    """Waits for a worker whose socket is closed to leave; one that does not is killed."""
    process.join(timeout=10)
    if process.is_alive():
        process.kill()
        process.join()
