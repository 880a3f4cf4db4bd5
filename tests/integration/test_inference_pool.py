"""Inference in worker processes: real DeepFace, real processes, a real SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from service.adapters.inference_pool import EngineConfig, InferencePool
from service.adapters.model_weights import place_weights
from service.domain.errors import ErrorCode, Rejected
from service.domain.faces import FacePolicy
from service.service_layer.retry import RetryPolicy
from tests.support.images import fixture_bytes


@pytest_asyncio.fixture(scope="module")
async def pool(deepface_home: Path) -> AsyncIterator[InferencePool]:
    place_weights(deepface_home, "Dlib", "mtcnn")
    config = EngineConfig(
        model_name="Dlib",
        detector_name="mtcnn",
        policy=FacePolicy(0.9, 64, 30, 30),
        max_pixels=50_000_000,
        deepface_home=str(deepface_home),
    )
    pool = InferencePool(config, workers=1)
    await pool.start()
    yield pool
    await pool.close()


async def test_a_worker_returns_the_face_and_its_embedding(pool: InferencePool) -> None:
    face = await pool.analyse(fixture_bytes("astronaut.png"))
    assert len(face.embedding) == 128 and face.confidence > 0.9


async def test_a_refusal_crosses_the_process_boundary_with_its_code(pool: InferencePool) -> None:
    with pytest.raises(Rejected) as refused:
        await pool.analyse(fixture_bytes("coffee.png"))
    assert refused.value.code is ErrorCode.NO_FACE


async def test_a_killed_worker_is_replaced_and_the_image_analysed_again(
    pool: InferencePool,
) -> None:
    [worker] = pool.worker_pids()
    restarts = pool.restarts
    # The group photo keeps the worker busy for seconds: the kill lands mid-inference.
    attempt = asyncio.create_task(
        RetryPolicy(attempts=3, base_delay_s=0.01).run(
            lambda: pool.analyse(fixture_bytes("t1.jpg"))
        )
    )
    await asyncio.sleep(1.0)
    os.kill(worker, signal.SIGKILL)

    with pytest.raises(Rejected) as refused:
        await attempt

    assert refused.value.code is ErrorCode.MULTIPLE_FACES
    assert pool.restarts == restarts + 1
    assert worker not in pool.worker_pids()
