"""Person documents in MongoDB through motor: the only module that knows the driver."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from service.adapters.mongo import transient_on_driver_errors
from service.domain.commands import PageStart, RegisterFace, TagPerson
from service.domain.errors import Rejected, TransientError
from service.domain.faces import Box
from service.domain.person import (
    MAX_IMAGES_PER_PERSON,
    FaceImage,
    Library,
    ModelProvenance,
    Person,
    face_limit_exceeded,
)

COLLECTION = "persons"
LIBRARIES = "libraries"
_HAS_FACE = {"images.0": {"$exists": True}}


class MongoPersonStore:
    """One document per (owner, category, person) with an embedded array of images, and one
    per (owner, category) with the library's texts.

    `database` is a motor database, or mongomock-motor's in the embedded mode: both take
    the same calls, and only calls both honour are used (equality-only upsert filters).
    """

    def __init__(self, database: Any) -> None:
        self._persons = database[COLLECTION]
        self._libraries = database[LIBRARIES]

    async def ensure_indexes(self) -> None:
        async with transient_on_driver_errors("creating indexes"):
            await self._persons.create_index(
                [("owner", ASCENDING), ("category_key", ASCENDING), ("person_key", ASCENDING)],
                unique=True,
                name="person_identity",
            )
            await self._persons.create_index(
                [("owner", ASCENDING), ("images.face_id", ASCENDING)], name="owner_face_id"
            )
            await self._libraries.create_index(
                [("owner", ASCENDING), ("category_key", ASCENDING)],
                unique=True,
                name="library_identity",
            )

    async def get_person(self, owner: str, category_key: str, person_key: str) -> Person | None:
        async with transient_on_driver_errors("reading a person"):
            document = await self._persons.find_one(_identity(owner, category_key, person_key))
        return _person_from(document) if document else None

    async def get_library(self, owner: str, category_key: str) -> Library | None:
        library = {"owner": owner, "category_key": category_key}
        async with transient_on_driver_errors("reading a library"):
            person = await self._persons.find_one({**library, **_HAS_FACE}, {"category_id": 1})
            if person is None:
                return None
            document = await self._libraries.find_one(library)
        return (
            _library_from(document)
            if document
            else Library(owner, person["category_id"], category_key)
        )

    async def persons_of_library(self, owner: str, category_key: str) -> list[Person]:
        async with transient_on_driver_errors("reading a library's persons"):
            cursor = self._persons.find(
                {"owner": owner, "category_key": category_key, **_HAS_FACE}
            ).sort("person_key", ASCENDING)
            return [_person_from(document) async for document in cursor]

    async def remove_faces(self, owner: str, category_key: str, face_ids: Collection[str]) -> None:
        library = {"owner": owner, "category_key": category_key}
        ids = list(face_ids)
        async with transient_on_driver_errors("removing faces"):
            await self._persons.update_many(
                {**library, "images.face_id": {"$in": ids}},
                {
                    "$pull": {"images": {"face_id": {"$in": ids}}},
                    "$set": {"updated_at": datetime.now(UTC)},
                },
            )
            await self._persons.delete_many({**library, "images": {"$size": 0}})
            if await self._persons.find_one(library, {"_id": 1}) is None:
                await self._libraries.delete_one(library)

    async def tag(self, command: TagPerson, create_person: bool = False) -> bool:
        texts = command.texts
        identity = _identity(*command.person_ref)
        now = datetime.now(UTC)
        async with transient_on_driver_errors("tagging a person"):
            if create_person:
                await self._create_person_once(command, identity, now)
            wanted = identity if create_person else {**identity, **_HAS_FACE}
            person = await self._persons.find_one(wanted, {"category_id": 1})
            if person is None:
                return False
            person_texts = _given(
                person_name=texts.person_name, person_description=texts.person_description
            )
            if person_texts:
                await self._persons.update_one(
                    identity,
                    {
                        "$set": {**person_texts, "updated_at": now},
                        "$addToSet": {"text_key_ids": command.text_key_id},
                    },
                )
            library_texts = _given(name=texts.category_name, description=texts.category_description)
            if library_texts:
                await self._libraries.update_one(
                    {"owner": command.owner, "category_key": command.category.key},
                    {
                        "$set": {**library_texts, "updated_at": now},
                        "$setOnInsert": {"category_id": person["category_id"], "created_at": now},
                    },
                    upsert=True,
                )
        return True

    async def page_of_persons(
        self,
        owner: str,
        category_key: str | None,
        person_key: str | None,
        after: PageStart | None,
        limit: int,
    ) -> list[Person]:
        query: dict[str, Any] = {"owner": owner, **_HAS_FACE}
        if category_key is not None:
            query["category_key"] = category_key
        if person_key is not None:
            query["person_key"] = person_key
        if after is not None:
            query["$or"] = [
                {"category_key": {"$gt": after.category_key}},
                {"category_key": after.category_key, "person_key": {"$gt": after.person_key}},
            ]
        async with transient_on_driver_errors("listing persons"):
            cursor = (
                self._persons.find(query, {"images.embedding": 0})
                .sort([("category_key", ASCENDING), ("person_key", ASCENDING)])
                .limit(limit)
            )
            return [_person_from(document) async for document in cursor]

    async def libraries(self, owner: str, category_keys: Collection[str]) -> list[Library]:
        async with transient_on_driver_errors("reading libraries"):
            cursor = self._libraries.find(
                {"owner": owner, "category_key": {"$in": list(category_keys)}}
            )
            return [_library_from(document) async for document in cursor]

    async def people(self, owner: str, refs: Collection[tuple[str, str]]) -> list[Person]:
        if not refs:
            return []
        wanted = [{"category_key": category, "person_key": person} for category, person in refs]
        async with transient_on_driver_errors("reading persons"):
            cursor = self._persons.find({"owner": owner, "$or": wanted}, {"images": 0})
            return [_person_from(document) async for document in cursor]

    async def add_image(self, command: RegisterFace, image: FaceImage) -> FaceImage:
        """Store `image` unless the person has it already; returns the image that is stored.

        The cap is checked by the database in the same update that pushes, so of two
        concurrent 10th and 11th registrations only one can succeed.
        """
        identity = _identity(*command.person_ref)
        now = datetime.now(UTC)
        async with transient_on_driver_errors("storing an image"):
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
                    "$set": {"updated_at": now, **_named(command)},
                    **(
                        {"$addToSet": {"text_key_ids": command.text_key_id}}
                        if command.person_name is not None
                        else {}
                    ),
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
        self, command: RegisterFace | TagPerson, identity: dict[str, str], now: datetime
    ) -> None:
        insert: dict[str, Any] = {
            "category_id": command.category.display,
            "person_id": command.person.display,
            "person_name": None,
            "person_description": None,
            "created_at": now,
            "updated_at": now,
            "images": [],
            "text_key_ids": [],
        }
        library = {"owner": command.owner, "category_key": command.category.key}
        library_insert = {"category_id": command.category.display, "created_at": now}
        # A concurrent writer may create either between our match and insert: then it exists.
        with contextlib.suppress(DuplicateKeyError):
            await self._libraries.update_one(library, {"$setOnInsert": library_insert}, upsert=True)
        with contextlib.suppress(DuplicateKeyError):
            await self._persons.update_one(identity, {"$setOnInsert": insert}, upsert=True)


def _named(command: RegisterFace) -> dict[str, str | None]:
    """The name a registration sets: an empty one clears it, as a tag's would."""
    if command.person_name is None:
        return {}
    return {"person_name": command.person_name or None}


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
        "runtime": image.provenance.runtime,
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
        person_description=document.get("person_description"),
        text_key_ids=tuple(document.get("text_key_ids", ())),
        images=tuple(_image_from(item) for item in document.get("images", ())),
    )


def _library_from(document: dict[str, Any]) -> Library:
    return Library(
        owner=document["owner"],
        category_id=document["category_id"],
        category_key=document["category_key"],
        name=document.get("name"),
        description=document.get("description"),
    )


def _given(**texts: str | None) -> dict[str, str | None]:
    """The texts a command gives, an empty one as None (cleared)."""
    return {name: text or None for name, text in texts.items() if text is not None}


def _image_from(item: dict[str, Any]) -> FaceImage:
    return FaceImage(
        face_id=item["face_id"],
        request_id=item["request_id"],
        image_url=item["image_url"],
        image_sha256=item["image_sha256"],
        embedding=tuple(item.get("embedding", ())),  # not read for a listing
        box=Box(**item["box"]),
        provenance=ModelProvenance(
            model=item["model"],
            detector=item["detector"],
            weights_sha256=item["weights_sha256"],
            runtime=item.get("runtime", ""),
        ),
        created_at=item["created_at"],
    )
