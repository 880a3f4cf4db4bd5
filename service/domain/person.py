"""A person of a custom library and the faces registered for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.domain.errors import ErrorCode, Rejected
from service.domain.faces import Box

MAX_IMAGES_PER_PERSON = 10


@dataclass(frozen=True)
class ModelProvenance:
    model: str
    detector: str
    weights_sha256: str
    # What computed the embedding ("onnxruntime 1.32.0"); "" for faces stored before it was
    # recorded, which dlib computed.
    runtime: str = ""


@dataclass(frozen=True)
class FaceImage:
    face_id: str
    request_id: str
    image_url: str
    image_sha256: str
    embedding: tuple[float, ...]
    box: Box
    provenance: ModelProvenance
    created_at: datetime


@dataclass(frozen=True)
class Person:
    owner: str
    category_id: str
    category_key: str
    person_id: str
    person_key: str
    person_name: str | None
    images: Sequence[FaceImage] = field(default_factory=tuple)
    person_description: str | None = None
    # The keys that seal this person's texts on the log: they go when the person goes.
    text_key_ids: tuple[str, ...] = ()

    def image_with_face_id(self, face_id: str) -> FaceImage | None:
        return next((i for i in self.images if i.face_id == face_id), None)

    def image_with_sha256(self, sha256: str) -> FaceImage | None:
        return next((i for i in self.images if i.image_sha256 == sha256), None)

    @property
    def is_full(self) -> bool:
        return len(self.images) >= MAX_IMAGES_PER_PERSON

    def closest_distance(self, embedding: Sequence[float]) -> float | None:
        """Euclidean distance to the person's nearest registered face; None with no faces."""
        if not self.images:
            return None
        return min(math.dist(embedding, image.embedding) for image in self.images)


@dataclass(frozen=True)
class Library:
    """A user's custom library: it exists while it has persons."""

    owner: str
    category_id: str  # as first registered
    category_key: str
    name: str | None = None
    description: str | None = None


def face_limit_exceeded(person_id: str) -> Rejected:
    return Rejected(
        ErrorCode.FACE_LIMIT_EXCEEDED,
        f"person {person_id!r} already has the maximum of {MAX_IMAGES_PER_PERSON} images",
    )
