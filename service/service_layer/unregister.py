"""The UnregisterCustomFace use case: a face, a person's faces, or a library's persons."""

from __future__ import annotations

from service.contracts.messages import FacesUnregistered, UnregisterSucceeded
from service.contracts.record_size import MAX_MESSAGE_BYTES, message_bytes
from service.domain.commands import UnregisterFaces
from service.domain.errors import ErrorCode, Rejected
from service.domain.journal import JournalEntry
from service.domain.person import FaceImage, Person
from service.service_layer.journaled import (
    JournaledAnswers,
    JournaledHandler,
    journal_entry,
    now_ms,
)
from service.service_layer.lookups import category_not_found
from service.service_layer.ports import FaceKeys, PersonStore
from service.service_layer.vector_cache import VectorCache

ACTION = "UnregisterCustomFace"


class UnregisterFacesHandler(JournaledHandler[UnregisterFaces]):
    action = ACTION

    def __init__(
        self,
        store: PersonStore,
        keys: FaceKeys,
        answers: JournaledAnswers,
        vectors: VectorCache | None = None,
    ) -> None:
        super().__init__(answers)
        self._store = store
        self._keys = keys
        self._vectors = vectors

    async def decide(self, command: UnregisterFaces) -> JournalEntry:
        face_ids, key_ids = await self._erased(command)
        event = FacesUnregistered(
            Owner=command.owner,
            RequestId=command.request_id,
            CategoryId=command.category.display,
            PersonId=command.person.display,
            FaceId=command.face_id,
            FaceIds=face_ids,
            KeyIds=key_ids,
            UnregisteredAt=now_ms(),
        )
        if (size := message_bytes(event)) > MAX_MESSAGE_BYTES:
            # Refused before anything is erased: its event could never be published, and
            # the command would wait for it for good, its partition behind it.
            raise Rejected(
                ErrorCode.LIBRARY_TOO_LARGE,
                f"{_what(command)} has {len(face_ids)} faces and {len(key_ids)} person-text "
                f"keys: their event would take {size} bytes, over the {MAX_MESSAGE_BYTES} of "
                f"one Kafka record{_how(command)}",
            )
        return unregistered_entry(event)

    async def _erased(self, command: UnregisterFaces) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The faces the command removes, and the text keys of the persons it empties."""
        removed, emptied = await self._faces(command)
        keys = tuple(key for person in emptied for key in person.text_key_ids)
        return tuple(image.face_id for image in removed), keys

    async def _faces(self, command: UnregisterFaces) -> tuple[list[FaceImage], list[Person]]:
        owner, category = command.owner, command.category
        if command.whole_library:
            persons = await self._store.persons_of_library(owner, category.key)
            if not persons:
                raise category_not_found(command.category.display)
            return [image for person in persons for image in person.images], persons
        person = await self._store.get_person(owner, category.key, command.person.key)
        if person is None or not person.images:
            if await self._store.get_library(owner, category.key) is None:
                raise category_not_found(command.category.display)
            raise Rejected(
                ErrorCode.PERSON_NOT_FOUND,
                f"person {command.person.display!r} does not exist in library {category.display!r}",
            )
        if command.whole_person:
            return list(person.images), [person]
        # FaceIds are lowercase hex; a user may spell them in capitals.
        image = person.image_with_face_id(command.face_id.lower())
        if image is None:
            raise Rejected(
                ErrorCode.FACE_NOT_FOUND,
                f"face {command.face_id!r} is not a face of person {command.person.display!r}",
            )
        return [image], [person] if len(person.images) == 1 else []

    async def apply(self, command: UnregisterFaces, entry: JournalEntry) -> None:
        if not entry.erased_face_ids:
            return
        # The keys first: from then on no copy of these faces' events on the log can be read.
        await self._keys.destroy(command.owner, (*entry.erased_face_ids, *entry.erased_key_ids))
        await self._store.remove_faces(command.owner, command.category.key, entry.erased_face_ids)
        if self._vectors is not None:
            self._vectors.removed(command.owner, command.category.key, entry.erased_face_ids)


def _what(command: UnregisterFaces) -> str:
    if command.whole_library:
        return f"library {command.category.display!r}"
    return f"person {command.person.display!r} of library {command.category.display!r}"


def _how(command: UnregisterFaces) -> str:
    if command.whole_library:
        return (
            "; unregister some of its persons first (their PersonId, FaceId ALL), then the "
            "library again, with a new RequestId"
        )
    return ""


def unregistered_entry(event: FacesUnregistered) -> JournalEntry:
    """The journal entry of an unregistration, from its event: the same whether written
    when the command ran or when a store is rebuilt from the log."""
    result = UnregisterSucceeded(
        RequestId=event.RequestId,
        CategoryId=event.CategoryId,
        PersonId=event.PersonId,
        FaceId=event.FaceId,
        UnregisteredFaceCount=len(event.FaceIds),
    )
    return journal_entry(
        event.Owner,
        ACTION,
        result,
        event,
        erased_face_ids=event.FaceIds,
        erased_key_ids=event.KeyIds,
    )
