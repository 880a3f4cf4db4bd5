"""The service's real wiring (`bootstrap` and `CommandFlow`) over fakes of its ports, driven
as the consumer drives it: commands in, results (and face events) out, no broker."""

from __future__ import annotations

import json
from typing import Any

from service.bootstrap import bootstrap
from service.contracts.face_events import decode_event
from service.contracts.messages import FaceEvent
from service.domain.partitioning import key_partition
from service.entrypoints.command_flow import CommandFlow
from service.service_layer.intake import IncomingRecord
from service.service_layer.ports import FaceAnalyser, Stores
from service.settings import Settings
from tests.fakes import (
    CountingAnalyser,
    MemoryStore,
    RecordingDeadLetters,
    RecordingPublisher,
    memory_stores,
)

USER = b"user-1"
PARTITIONS = 4


class UrlFetcher:
    """Each URL its own bytes, so that each registers its own face."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, url: str) -> bytes:
        self.calls += 1
        return url.encode()


class WiredLibrary:
    def __init__(
        self,
        stores: Stores | None = None,
        analyser: FaceAnalyser | None = None,
        **settings: Any,
    ) -> None:
        self.stores = stores or memory_stores()
        self.fetcher = UrlFetcher()
        self.results = RecordingPublisher()
        self.events = RecordingPublisher()
        handling = bootstrap(
            Settings(retry_attempts=2, retry_base_delay_s=0, **settings),
            stores=self.stores,
            fetcher=self.fetcher,
            analyser=analyser or CountingAnalyser(),
            results=self.results,
            events=self.events,
            dead_letters=RecordingDeadLetters(),
            weights_sha256="sha",
        )
        self.flow = CommandFlow(handling, max_in_flight=100)
        self.offset = 0

    @property
    def persons(self) -> MemoryStore:
        assert isinstance(self.stores.persons, MemoryStore)
        return self.stores.persons

    async def send(self, *bodies: dict[str, Any], user: bytes = USER) -> list[dict[str, Any]]:
        """The commands in one poll, as the consumer takes them; their results in order."""
        records, request_ids = [], []
        for body in bodies:
            body = {"RequestId": f"R{self.offset}", **body}
            request_ids.append(body["RequestId"])
            records.append(
                IncomingRecord(
                    "cmds",
                    key_partition(user, PARTITIONS),
                    self.offset,
                    1_700_000_000_000 + self.offset,
                    user,
                    json.dumps(body).encode(),
                    PARTITIONS,
                )
            )
            self.offset += 1
        before = len(self.results.published)
        await self.flow.take(records, _no_commit)
        await self.results.until(lambda: len(self.results.published) == before + len(bodies))
        answers = {answer["RequestId"]: answer for answer in self.results.dumps()[before:]}
        return [answers[request_id] for request_id in request_ids]

    async def one(self, body: dict[str, Any], user: bytes = USER) -> dict[str, Any]:
        [result] = await self.send(body, user=user)
        return result

    def published_events(self) -> list[FaceEvent]:
        return [decode_event(event) for event in self.events.dumps()]

    async def close(self) -> None:
        await self.flow.close(1)


async def _no_commit(_positions: dict[int, int]) -> None:
    return None
