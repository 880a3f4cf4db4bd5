"""Runs the face engine off the event loop on a pool created at start-up."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from service.adapters.face_engine import DeepFaceEngine
from service.domain.faces import AnalysedFace


class InferencePool:
    """One inference thread: TensorFlow and dlib use the cores themselves, and the models
    are not shared across threads safely."""

    def __init__(self, engine: DeepFaceEngine) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._engine.load)

    async def analyse(self, data: bytes) -> AnalysedFace:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._engine.analyse, data)

    async def close(self) -> None:
        # Waits for the inference under way, which must not block the event loop meanwhile.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
