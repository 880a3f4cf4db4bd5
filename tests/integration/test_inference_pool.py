"""Inference in worker processes: real DeepFace, real processes, a real SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from service.adapters.face_embedder import Embedding
from service.adapters.inference_pool import EngineConfig, InferencePool
from service.adapters.model_weights import PlacedWeights
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.domain.errors import ErrorCode, Rejected, TransientError
from service.domain.faces import FacePolicy
from service.service_layer.retry import RetryPolicy
from tests.support.images import fixture_bytes, photo_with_face

# DeepFace's own embedding, to float rounding: the same crop, resized as it resizes it.
MAX_EMBEDDING_SHIFT = 1e-5


def _config(deepface_home: Path, placed_weights: PlacedWeights) -> EngineConfig:
    weights = placed_weights.model_weights
    assert weights is not None
    return EngineConfig(
        detector_name="mtcnn",
        policy=FacePolicy(0.9, 64, 30, 30),
        max_pixels=50_000_000,
        detect_max_side_px=640,  # the default
        deepface_home=str(deepface_home),
        # The defaults: the fast path, against which plain DeepFace is the oracle.
        embedding=Embedding("onnxruntime", weights, placed_weights.model_graph),
        detection=MtcnnNetworks("onnxruntime", placed_weights.detector_graphs),
    )


@pytest_asyncio.fixture(scope="module")
async def pool(deepface_home: Path, placed_weights: PlacedWeights) -> AsyncIterator[InferencePool]:
    pool = InferencePool(_config(deepface_home, placed_weights), workers=1)
    await pool.start()
    yield pool
    await pool.close()


async def test_a_worker_returns_the_face_and_its_embedding(pool: InferencePool) -> None:
    face = await pool.analyse(fixture_bytes("astronaut.png"))
    assert len(face.embedding) == 128 and face.confidence > 0.9


async def test_a_worker_on_the_default_runtimes_never_loads_tensorflow(pool: InferencePool) -> None:
    await pool.analyse(fixture_bytes("astronaut.png"))
    for pid in pool.worker_pids():
        mapped = await asyncio.to_thread(Path(f"/proc/{pid}/maps").read_text)
        assert "onnxruntime" in mapped  # what runs the networks instead
        assert "tensorflow" not in mapped


async def test_a_refusal_crosses_the_process_boundary_with_its_code(pool: InferencePool) -> None:
    with pytest.raises(Rejected) as refused:
        await pool.analyse(fixture_bytes("coffee.png"))
    assert refused.value.code is ErrorCode.NO_FACE


async def test_a_killed_worker_is_replaced_and_the_image_analysed_again(
    pool: InferencePool,
) -> None:
    [worker] = pool.worker_pids()
    restarts = pool.restarts
    # Stopped, it takes the call and cannot answer it: the kill lands mid-call.
    os.kill(worker, signal.SIGSTOP)
    photo = photo_with_face(1920, 1080, 420)
    attempt = asyncio.create_task(
        RetryPolicy(attempts=3, base_delay_s=0.01).run(lambda: pool.analyse(photo))
    )
    for _ in range(5):  # its request goes out
        await asyncio.sleep(0)
    os.kill(worker, signal.SIGKILL)

    face = await attempt

    again = await pool.analyse(photo)
    assert (face.box, face.embedding) == (again.box, again.embedding)
    assert pool.restarts == restarts + 1
    assert worker not in pool.worker_pids()


async def exited(pid: int) -> None:
    """Returns once the process has exited, without reaping it (multiprocessing does)."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    handle = os.pidfd_open(pid)
    loop.add_reader(handle, readable)
    try:
        await asyncio.wait_for(gone, 10)
    finally:
        loop.remove_reader(handle)
        os.close(handle)


class Logged(logging.Handler):
    """Sets `seen` when the pool logs `message`."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.seen.set()


@contextlib.contextmanager
def logged(message: str) -> Iterator[Logged]:
    handler = Logged(message)
    pool_log = logging.getLogger("service.adapters.inference_pool")
    pool_log.addHandler(handler)
    try:
        yield handler
    finally:
        pool_log.removeHandler(handler)


async def test_a_worker_killed_while_idle_is_replaced_before_any_call(
    pool: InferencePool,
) -> None:
    [worker] = pool.worker_pids()
    restarts = pool.restarts
    assert pool.workers_ready()

    with logged("inference worker died; starting a new one") as replacing:
        os.kill(worker, signal.SIGKILL)
        await asyncio.wait_for(replacing.seen.wait(), 10)  # no call was made

    assert not pool.workers_ready()  # what readiness says while the new one loads
    face = await pool.analyse(fixture_bytes("astronaut.png"))  # no retry: not the dead one
    assert face.confidence > 0.9
    assert pool.restarts == restarts + 1
    assert pool.workers_ready()
    assert worker not in pool.worker_pids()


async def test_a_call_given_up_keeps_its_answer_from_the_next_call(pool: InferencePool) -> None:
    # One worker: the call given up is answered on the same socket the next call reads.
    given_up = asyncio.create_task(pool.analyse(fixture_bytes("coffee.png")))
    for _ in range(5):  # its request goes out
        await asyncio.sleep(0)
    given_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await given_up

    face = await pool.analyse(fixture_bytes("astronaut.png"))  # not coffee's refusal

    assert face.confidence > 0.9
    with pytest.raises(Rejected):
        await pool.analyse(fixture_bytes("coffee.png"))


async def test_calls_beyond_the_workers_wait_their_turn(pool: InferencePool) -> None:
    images = ["astronaut.png", "coffee.png", "astronaut.png"]
    answers = await asyncio.gather(
        *(pool.analyse(fixture_bytes(name)) for name in images), return_exceptions=True
    )
    assert [type(a).__name__ for a in answers] == ["AnalysedFace", "Rejected", "AnalysedFace"]


async def test_calls_fail_rather_than_wait_when_no_worker_can_start(
    deepface_home: Path, placed_weights: PlacedWeights
) -> None:
    config = _config(deepface_home, placed_weights)
    pool = InferencePool(config, workers=1)
    await pool.start()
    assert pool.workers_ready()
    try:
        # From now on a new worker cannot load its models.
        missing = Embedding("onnxruntime", deepface_home / "missing.dat", None)
        pool._config = dataclasses.replace(config, embedding=missing)
        [worker] = pool.worker_pids()
        os.kill(worker, signal.SIGKILL)
        await exited(worker)
        # The call waits while a new worker starts, and fails when it cannot: it does
        # not wait for the next attempt (a minute away, after a few failures).
        for _ in range(2):
            with pytest.raises(TransientError, match="no inference worker could be started"):
                await asyncio.wait_for(pool.analyse(fixture_bytes("astronaut.png")), 60)
        assert not pool.workers_ready()  # readiness says so
        assert pool.restarts == 1
    finally:
        await pool.close()


def plain_deepface_embedding(data: bytes, deepface_home: Path) -> np.ndarray:
    """What `DeepFace.represent` gives for the full-resolution image, as a user would call it."""
    os.environ["DEEPFACE_HOME"] = str(deepface_home)
    from deepface import DeepFace

    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :, ::-1].copy()
    found = DeepFace.represent(pixels, model_name="Dlib", detector_backend="mtcnn")
    return np.asarray(found[0]["embedding"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: fixture_bytes("astronaut.png"),
        lambda: photo_with_face(1920, 1080, 420),
        # A tight crop: the face box reaches past the picture's edge.
        lambda: fixture_bytes("Tom_Hanks_54745.png"),
    ],
    ids=["portrait-512", "photo-1920x1080", "tight-crop"],
)
async def test_the_embedding_is_the_one_plain_deepface_computes(
    make: Callable[[], bytes], pool: InferencePool, deepface_home: Path
) -> None:
    data = make()
    ours = np.asarray((await pool.analyse(data)).embedding)
    theirs = await asyncio.to_thread(plain_deepface_embedding, data, deepface_home)
    assert np.linalg.norm(ours - theirs) <= MAX_EMBEDDING_SHIFT
