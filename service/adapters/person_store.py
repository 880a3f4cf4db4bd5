"""Person documents in MongoDB through motor: the only module that knows the driver."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from service.domain.commands import RegisterFace
from service.domain.errors import Rejected, TransientError
from service.domain.faces import Box
from service.domain.person import (
    MAX_IMAGES_PER_PERSON,
    FaceImage,
    ModelProvenance,
    Person,
    face_limit_exceeded,
)

COLLECTION = "persons"


class MongoPersonStore:
    """One document per (owner, category, person) with an embedded array of images.

    `database` is a motor database, or mongomock-motor's in the embedded mode: both take
    the same calls, and only calls both honour are used (equality-only upsert filters).
    """

    def __init__(self, database: Any) -> None:
        self._persons = database[COLLECTION]

    async def ensure_indexes(self) -> None:
        async with _transient_on_driver_errors("creating indexes"):
            await self._persons.create_index(
                [("owner", ASCENDING), ("category_key", ASCENDING), ("person_key", ASCENDING)],
                unique=True,
                name="person_identity",
            )
            await self._persons.create_index(
                [("owner", ASCENDING), ("images.face_id", ASCENDING)], name="owner_face_id"
            )

    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None:
        async with _transient_on_driver_errors("reading a person"):
            document = await self._persons.find_one(_identity(owner, category_key, person_key))
        return _person_from(document) if document else None

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage:
        """Store `image` unless the person has it already; returns the image that is stored.

        The cap is checked by the database in the same update that pushes, so of two
        concurrent 10th and 11th registrations only one can succeed.
        """
        identity = _identity(*command.person_ref)
        now = datetime.now(UTC)
        async with _transient_on_driver_errors("storing an image"):
            await self._create_person_once(command, identity, now)
            pushed = await self._persons.update_one(
                {
                    **identity,
                    "images.face_id": {"$ne": image.face_id},
                    "images.image_sha256": {"$ne": image.image_sha256},
                    f"images.{MAX_IMAGES_PER_PERSON - 1}": {"$exists": False},
                },
                {
                    "$push": {"images": _image_document(image)},
                    "$set": {
                        "updated_at": now,
                        **({"person_name": command.person_name} if command.person_name else {}),
                    },
                },
            )
            if pushed.modified_count == 1:
                return image
            document = await self._persons.find_one(identity)
        if document is None:
            raise TransientError("the person document vanished while an image was added")
        person = _person_from(document)
        existing = person.image_with_face_id(image.face_id) or person.image_with_sha256(
            image.image_sha256
        )
        if existing is not None:
            return existing
        raise face_limit_exceeded(command.person.display)

    async def restore(self, command: RegisterFace, image: FaceImage) -> bool:
        """Apply a face event again: True if the image was missing and is now stored."""
        try:
            stored = await self.add_image(command, image)
        except Rejected:
            return False  # the person is full: the event was applied before
        return stored is image

    async def _create_person_once(
        self, command: RegisterFace, identity: dict[str, str], now: datetime
    ) -> None:
        insert: dict[str, Any] = {
            "category_id": command.category.display,
            "person_id": command.person.display,
            "person_name": command.person_name,
            "created_at": now,
            "updated_at": now,
            "images": [],
        }
        # A concurrent writer may create it between our match and insert: then it exists.
        with contextlib.suppress(DuplicateKeyError):
            await self._persons.update_one(identity, {"$setOnInsert": insert}, upsert=True)


def _identity(owner: str, category_key: str, person_key: str) -> dict[str, str]:
    return {"owner": owner, "category_key": category_key, "person_key": person_key}


def _image_document(image: FaceImage) -> dict[str, Any]:
    return {
        "face_id": image.face_id,
        "request_id": image.request_id,
        "image_url": image.image_url,
        "image_sha256": image.image_sha256,
        "embedding": list(image.embedding),
        "box": {"x": image.box.x, "y": image.box.y, "w": image.box.w, "h": image.box.h},
        "model": image.provenance.model,
        "detector": image.provenance.detector,
        "weights_sha256": image.provenance.weights_sha256,
        "created_at": image.created_at,
    }


def _person_from(document: dict[str, Any]) -> Person:
    return Person(
        owner=document["owner"],
        category_id=document["category_id"],
        category_key=document["category_key"],
        person_id=document["person_id"],
        person_key=document["person_key"],
        person_name=document.get("person_name"),
        images=tuple(_image_from(item) for item in document.get("images", ())),
    )


def _image_from(item: dict[str, Any]) -> FaceImage:
    return FaceImage(
        face_id=item["face_id"],
        request_id=item["request_id"],
        image_url=item["image_url"],
        image_sha256=item["image_sha256"],
        embedding=tuple(item["embedding"]),
        box=Box(**item["box"]),
        provenance=ModelProvenance(
            model=item["model"], detector=item["detector"], weights_sha256=item["weights_sha256"]
        ),
        created_at=item["created_at"],
    )


class _transient_on_driver_errors:
    """Driver failures (unreachable server, failover, timeouts) may pass: retry them."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, _tb: Any) -> bool:
        if (
            kind is not None
            and issubclass(kind, PyMongoError)
            and not isinstance(error, DuplicateKeyError)
        ):
            raise TransientError(f"MongoDB failed {self._doing}: {type(error).__name__}") from error
        return False
