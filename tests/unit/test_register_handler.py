"""The register use case with fakes of its ports."""

from __future__ import annotations

import asyncio

import pytest

from service.domain.errors import ErrorCode
from service.domain.faces import AnalysedFace
from service.domain.person import ModelProvenance
from service.service_layer.ports import FaceAnalyser, ImageFetcher, PersonStore
from service.service_layer.register import MatchPolicy, RegisterFaceHandler
from service.service_layer.retry import RetryPolicy
from tests.fakes import CountingAnalyser, CountingFetcher, MemoryJournal, MemoryKeys, MemoryStore
from tests.support.commands import register_face

COMMAND = register_face()


def added(store: MemoryStore) -> list[str]:
    return [image.face_id for person in store.persons.values() for image in person.images]


class BrokenAnalyser:
    async def analyse(self, data: bytes) -> AnalysedFace:
        raise RuntimeError("an input nothing foresaw")

    async def find_faces(self, data: bytes, max_faces: int) -> list[AnalysedFace]:
        return [await self.analyse(data)]


def handler(
    store: PersonStore,
    attempts: int,
    analyser: FaceAnalyser | None = None,
    fetcher: ImageFetcher | None = None,
    slots: int = 8,
) -> RegisterFaceHandler:
    return RegisterFaceHandler(
        store=store,
        journal=MemoryJournal(),
        keys=MemoryKeys(),
        fetcher=fetcher or CountingFetcher(),
        analyser=analyser or CountingAnalyser(),
        provenance=ModelProvenance("Dlib", "mtcnn", "sha"),
        match=MatchPolicy(enabled=True, max_distance=0.6),
        retry=RetryPolicy(attempts=attempts, base_delay_s=0),
        slots=asyncio.Semaphore(slots),
    )


async def test_a_transient_failure_is_retried_and_the_face_registered() -> None:
    store = MemoryStore(failures=2)
    outcome = await handler(store, attempts=3).handle(COMMAND)
    assert outcome.code is None
    assert outcome.face_id == COMMAND.face_id
    assert added(store) == [COMMAND.face_id]


async def test_internal_error_only_once_the_retry_budget_is_spent() -> None:
    store = MemoryStore(failures=100)
    outcome = await handler(store, attempts=4).handle(COMMAND)
    assert outcome.code is ErrorCode.INTERNAL
    assert outcome.message == "errorMsg:MongoDB failed: AutoReconnect"
    assert store.calls == 4
    assert added(store) == []


async def test_an_unforeseen_failure_is_answered_as_internal_error_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore(failures=0)
    outcome = await handler(store, attempts=1, analyser=BrokenAnalyser()).handle(COMMAND)
    assert outcome.code is ErrorCode.INTERNAL
    assert outcome.message == "errorMsg:unexpected RuntimeError"
    assert any(
        r.exc_info and "an input nothing foresaw" in str(r.exc_info[1]) for r in caplog.records
    )
    assert added(store) == []


async def test_the_same_bytes_again_answer_the_stored_face_without_inference() -> None:
    store, analyser = MemoryStore(), CountingAnalyser()
    use_case = handler(store, attempts=1, analyser=analyser)
    first = await use_case.handle(register_face("R1"))
    again = await use_case.handle(register_face("R2"))
    assert again.face_id == first.face_id and not again.stored
    assert analyser.calls == 1


async def test_a_registration_waits_for_a_slot_before_it_reads_the_store() -> None:
    class GatedFetcher:
        def __init__(self) -> None:
            self.gate = asyncio.Event()

        async def fetch(self, url: str) -> bytes:
            await self.gate.wait()
            return url.encode()

    store, fetcher = MemoryStore(failures=0), GatedFetcher()
    one_slot = handler(store, attempts=1, fetcher=fetcher, slots=1)
    first = asyncio.create_task(one_slot.handle(register_face(request_id="r-1")))
    second = asyncio.create_task(one_slot.handle(register_face(request_id="r-2")))
    for _ in range(10):
        await asyncio.sleep(0)
    assert store.calls == 1  # the second has not touched the store: a backlog costs nothing

    fetcher.gate.set()
    outcomes = await asyncio.gather(first, second)

    assert [o.code for o in outcomes] == [None, None]
    assert store.calls == 4  # each read its person and added its image
