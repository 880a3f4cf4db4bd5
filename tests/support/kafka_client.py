"""A client of the service as another team would write it: produce commands, collect results."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.adapters.topic_reader import topic_partitions
from tests.support import suite_kafka


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


class CommandClient:
    def __init__(
        self,
        bootstrap: str,
        commands_topic: str,
        results_topic: str,
        events_topic: str = "",
        dlq_topic: str = "",
        fetch_max_wait_ms: int | None = None,
        linger_ms: int = 5,
    ) -> None:
        """`fetch_max_wait_ms`: the result consumer's; unset, what suits the suite's broker.
        `linger_ms`: how long the producer waits to fill a batch; every send waits it."""
        self._linger_ms = linger_ms
        self._bootstrap = bootstrap
        self._fetch_max_wait_ms = fetch_max_wait_ms or suite_kafka.client_fetch_max_wait_ms()
        self.commands_topic = commands_topic
        self.results_topic = results_topic
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        # By the commands partition and offset they came from.
        self.dead_letters: dict[tuple[int, int], DeadLetter] = {}
        self.results: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.events: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.raw_results: defaultdict[str, list[bytes]] = defaultdict(list)
        self.result_keys: dict[str, bytes | None] = {}
        self.arrived_at: dict[str, float] = {}  # time.perf_counter() of each first result
        self._arrived = asyncio.Condition()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, linger_ms=self._linger_ms
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        await self._consumer.start()
        assigned = [
            partition
            for topic in (self.results_topic, self.events_topic, self.dlq_topic)
            if topic
            for partition in await topic_partitions(self._consumer, topic)
        ]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._consumer.stop()
        await self._producer.stop()

    async def _read(self) -> None:
        async for record in self._consumer:
            if record.topic == self.dlq_topic:
                headers = {k: v.decode() for k, v in record.headers}
                letter = DeadLetter(record.key, record.value, headers)
                source = (int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"]))
                async with self._arrived:
                    self.dead_letters[source] = letter
                    self._arrived.notify_all()
                continue
            value = json.loads(record.value)
            async with self._arrived:
                if record.topic == self.events_topic:
                    # A registration by its face, an unregistration or tag by its command.
                    self.events[value.get("FaceId") or value["RequestId"]].append(value)
                else:
                    self.results[value["RequestId"]].append(value)
                    self.raw_results[value["RequestId"]].append(record.value)
                    self.arrived_at.setdefault(value["RequestId"], time.perf_counter())
                    self.result_keys[value["RequestId"]] = record.key
                self._arrived.notify_all()

    async def send_raw(
        self,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> tuple[int, int]:
        sent = await self._producer.send_and_wait(
            self.commands_topic, value, key=key, timestamp_ms=timestamp_ms, headers=headers
        )
        return sent.partition, sent.offset

    async def send(
        self,
        user: str,
        body: dict[str, Any],
        timestamp_ms: int | None = None,
    ) -> str:
        """Produce a command; returns its RequestId (generated unless the body has one)."""
        body = {"RequestId": new_request_id(), **body}
        await self.send_raw(user.encode(), json.dumps(body).encode(), timestamp_ms)
        return str(body["RequestId"])

    async def send_burst(
        self, commands: list[tuple[str, dict[str, Any]]], timestamps_ms: list[int] | None = None
    ) -> list[str]:
        """Commands queued at once, in order, and sent in as few requests as the producer
        makes: they reach the broker within milliseconds of each other."""
        bodies = [(user, {"RequestId": new_request_id(), **body}) for user, body in commands]
        deliveries = [
            await self._producer.send(
                self.commands_topic,
                json.dumps(body).encode(),
                key=user.encode(),
                timestamp_ms=timestamps_ms[i] if timestamps_ms else None,
            )
            for i, (user, body) in enumerate(bodies)
        ]
        await asyncio.gather(*deliveries)
        return [str(body["RequestId"]) for _, body in bodies]

    async def result(self, request_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return (await self.results_for([request_id], timeout_s))[request_id]

    async def results_for(
        self, request_ids: list[str], timeout_s: float = 120.0
    ) -> dict[str, dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout_s), self._arrived:
                await self._arrived.wait_for(lambda: all(r in self.results for r in request_ids))
        except TimeoutError:
            missing = [r for r in request_ids if r not in self.results]
            raise AssertionError(
                f"{len(missing)} of {len(request_ids)} results missing after {timeout_s} s, "
                f"e.g. {missing[:3]}"
            ) from None
        return {r: self.results[r][0] for r in request_ids}

    async def all_results(
        self, request_id: str, count: int, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.results[request_id]) >= count)
        return list(self.results[request_id])

    async def event(self, face_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: face_id in self.events)
        return self.events[face_id][0]

    async def dead_letter(self, partition: int, offset: int, timeout_s: float = 30.0) -> DeadLetter:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: (partition, offset) in self.dead_letters)
        return self.dead_letters[(partition, offset)]

    async def register(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.result(await self.send(user, body))
