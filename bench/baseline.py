"""The baseline: DeepFace's own REST API (`/represent`, Dlib + mtcnn) under gunicorn with
one worker per core, as its documentation runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.processes import children

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


class DeepFaceApi:
    def __init__(self, workers: int, port: int, deepface_home: Path) -> None:
        self.workers = workers
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        self._deepface_home = deepface_home
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 300) -> None:
        env = {
            **os.environ,
            "DEEPFACE_HOME": str(self._deepface_home),
            "DEEPFACE_FACE_RECOGNITION_MODELS": "Dlib",
            "DEEPFACE_FACE_DETECTION_MODELS": "mtcnn",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        self.process = await asyncio.create_subprocess_exec(
            GUNICORN,
            f"--workers={self.workers}",
            "--timeout=900",
            f"--bind=127.0.0.1:{self._port}",
            "deepface.api.src.app:create_app()",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        async with httpx.AsyncClient() as client, asyncio.timeout(timeout_s):
            while True:
                try:
                    if (await client.get(self.url + "/")).status_code < 500:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)

    async def represent(self, client: httpx.AsyncClient, image_url: str) -> dict[str, Any]:
        response = await client.post(
            self.url + "/represent",
            json={"img": image_url, "model_name": "Dlib", "detector_backend": "mtcnn"},
            timeout=900,
        )
        body: dict[str, Any] = response.json()
        body["status"] = response.status_code
        return body

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return children(self.process.pid)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            # Its workers may be deep in one detection; nothing of theirs needs to be kept.
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
