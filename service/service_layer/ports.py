"""What the use cases need from the outside world, and nothing more."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from service.domain.commands import RegisterFace
from service.domain.errors import Rejected
from service.domain.faces import AnalysedFace
from service.domain.person import FaceImage, Person
from service.service_layer.intake import IncomingRecord


class ImageFetcher(Protocol):
    async def fetch(self, url: str) -> bytes: ...


class FaceAnalyser(Protocol):
    async def analyse(self, data: bytes) -> AnalysedFace: ...


class PersonStore(Protocol):
    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None: ...

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage: ...

    async def restore(self, command: RegisterFace, image: FaceImage) -> bool: ...


class MessagePublisher(Protocol):
    """Results and face events: raises TransientError when the broker does not take it."""

    async def publish(self, owner: str | None, message: BaseModel) -> None: ...


class DeadLetters(Protocol):
    """Where unreadable records are copied; raises TransientError like a publisher."""

    async def send(self, record: IncomingRecord, refusal: Rejected) -> None: ...
