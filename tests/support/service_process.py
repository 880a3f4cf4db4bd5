"""`face-service run` as a separate process, the way an operator runs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import reaper

FACE_SERVICE = str(Path(sys.executable).parent / "face-service")
START_TIMEOUT_S = 180

LogEntry = dict[str, Any]


class ServiceProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self.logs: list[LogEntry] = []
        self.other_stderr: list[str] = []  # a traceback, TensorFlow's own lines
        self._logged = asyncio.Condition()
        self.process: asyncio.subprocess.Process | None = None
        self._started: list[int] = []

    @classmethod
    def environment(cls, **settings: str) -> dict[str, str]:
        """This process's environment without the service settings, plus `settings`."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")
        }
        # Many services run at once in the tests: HTTP endpoints only where a test asks.
        env["HTTP_PORT"] = "0"
        # A key file per environment (the processes of one test share it, for restarts):
        # a service that starts its own embedded broker empties its file.
        shared = Path(os.environ["EMBEDDED_FACE_KEYS_FILE"])
        env["EMBEDDED_FACE_KEYS_FILE"] = str(shared.with_name(f"keys-{uuid.uuid4().hex}.sqlite"))
        env.update(settings)
        return env

    async def start(self) -> None:
        # A session of its own: a pod kill takes the inference workers with it.
        self.process = await asyncio.create_subprocess_exec(
            *reaper.dying_with_parent([FACE_SERVICE, "run"]),
            env=self._env,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read_logs())
        await self.wait_for_log(lambda e: e.get("message") == "service ready", START_TIMEOUT_S)
        # Its embedded broker lives in a session of its own and outlives a kill of the
        # service's group on purpose (a restart finds it): `stop` ends it too.
        self._started = reaper.descendants(self.process.pid)

    async def _read_logs(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            try:
                entry = json.loads(line)
            except ValueError:
                self.other_stderr.append(line.decode(errors="replace").rstrip())
                continue
            async with self._logged:
                self.logs.append(entry)
                self._logged.notify_all()
        async with self._logged:
            self._logged.notify_all()

    async def wait_for_log(self, matches: Callable[[LogEntry], bool], timeout_s: float) -> LogEntry:
        def found() -> LogEntry | None:
            return next((e for e in self.logs if matches(e)), None)

        async with asyncio.timeout(timeout_s), self._logged:
            await self._logged.wait_for(lambda: found() is not None or self._reader.done())
        entry = found()
        if entry is None:
            raise AssertionError(
                f"the service exited with {self.process and self.process.returncode}; "
                f"last log lines: {self.logs[-5:]}; other stderr: {self.other_stderr[-15:]}"
            )
        return entry

    def commands_done(self) -> int:
        return sum(1 for e in self.logs if e.get("message") == "command done")

    async def kill_hard(self) -> None:
        """kill -9 of the service and its workers, as when a node or pod dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def kill_service_only(self) -> None:
        """kill -9 of the service's own process: what it started may outlive it."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        async with asyncio.timeout(30):  # the workers notice and exit, closing stderr
            await self._reader

    async def terminate(self, timeout_s: float) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
            await self._reader
        return code

    async def stop(self) -> None:
        """Everything this service started, killed."""
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        for pid in self._started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Exited:
    """A `face-service` command run to its end."""

    code: int
    logs: list[LogEntry]  # the JSON lines on stderr
    other_stderr: list[str]  # any other line there: a traceback, a warning
    stdout: str


async def run_to_exit(env: dict[str, str], *args: str, timeout_s: float) -> Exited:
    """`face-service *args` until it exits by itself; killed (and the test failed) when it
    has not within `timeout_s`."""
    process = await asyncio.create_subprocess_exec(
        *reaper.dying_with_parent([FACE_SERVICE, *args]),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    logs, other = [], []
    for line in stderr.decode().splitlines():
        try:
            logs.append(json.loads(line))
        except ValueError:
            other.append(line)
    assert process.returncode is not None
    return Exited(process.returncode, logs, other, stdout.decode())
