"""A peer's HTTP API under gunicorn, one worker process per core, as such APIs are run."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench.processes import children

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
PROJECT = Path(__file__).resolve().parent.parent  # where `bench.…` apps are imported from


class GunicornApp:
    def __init__(self, app: str, workers: int, port: int, env: Mapping[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._app = app
        self._workers = workers
        self._port = port
        self._env = {**os.environ, **env}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 300) -> None:
        self.process = await asyncio.create_subprocess_exec(
            GUNICORN,
            f"--workers={self._workers}",
            "--timeout=900",
            f"--bind=127.0.0.1:{self._port}",
            f"--chdir={PROJECT}",
            self._app,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        async with httpx.AsyncClient() as client, asyncio.timeout(timeout_s):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"gunicorn {self._app} exited with {self.process.returncode}"
                    )
                try:
                    if (await client.get(self.url + "/")).status_code < 500:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return children(self.process.pid)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            # Its workers may be deep in one detection; nothing of theirs needs to be kept.
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
