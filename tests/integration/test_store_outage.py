"""A MongoDB that cannot be reached, through the real driver: retried, then InternalError."""

from __future__ import annotations

import asyncio

from motor.motor_asyncio import AsyncIOMotorClient

from service.adapters.face_keys import MongoFaceKeys
from service.adapters.image_fetcher import FetchLimits, HttpImageFetcher
from service.adapters.journal import MongoJournal
from service.adapters.person_store import MongoPersonStore
from service.adapters.public_address import AddressPolicy
from service.domain.errors import ErrorCode
from service.domain.faces import AnalysedFace
from service.domain.person import ModelProvenance
from service.service_layer.register import MatchPolicy, RegisterFaceHandler
from service.service_layer.retry import RetryPolicy
from tests.conftest import free_port
from tests.support.commands import register_face


class InferenceMustNotRun:
    async def analyse(self, data: bytes) -> AnalysedFace:
        raise AssertionError("a command whose person cannot be read must not reach inference")


async def test_an_unreachable_store_ends_in_internal_error_after_the_retries() -> None:
    dead = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=200&connectTimeoutMS=200"
    client: AsyncIOMotorClient = AsyncIOMotorClient(dead)
    fetcher = HttpImageFetcher(FetchLimits(1, 1, 1, 2, 1_000_000), [80], AddressPolicy())
    handler = RegisterFaceHandler(
        store=MongoPersonStore(client["faces"]),
        journal=MongoJournal(client["faces"]),
        keys=MongoFaceKeys(client["faces"]),
        fetcher=fetcher,
        analyser=InferenceMustNotRun(),
        provenance=ModelProvenance("Dlib", "mtcnn", ""),
        match=MatchPolicy(enabled=True, max_distance=0.6),
        retry=RetryPolicy(attempts=3, base_delay_s=0.01),
        slots=asyncio.Semaphore(1),
    )
    command = register_face(image_url="http://127.0.0.1:1/a.png")
    try:
        outcome = await handler.handle(command)
    finally:
        await fetcher.close()
        client.close()

    assert outcome.code is ErrorCode.INTERNAL
    assert outcome.code.http_status == 500
    assert outcome.message.startswith("errorMsg:")
    assert "ServerSelectionTimeoutError" in outcome.message
