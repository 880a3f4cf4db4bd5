"""Face events to and from what they describe. A registration's biometric and personal data
travel sealed with the face's own key (see `service.adapters.sealing`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from service.adapters.sealing import associated_data, open_sealed, seal
from service.contracts.messages import (
    FaceBox,
    FaceEvent,
    FaceRegistered,
    FaceSecret,
    FacesUnregistered,
    PersonTagged,
)
from service.domain.commands import RegisterFace, TagPerson, Texts
from service.domain.faces import Box
from service.domain.ids import LibraryId
from service.domain.person import FaceImage, ModelProvenance

_EVENTS: TypeAdapter[FaceEvent] = TypeAdapter(
    Annotated[FaceRegistered | FacesUnregistered | PersonTagged, Field(discriminator="Type")]
)


def decode_event(document: Any) -> FaceEvent:
    """The event a JSON document holds; ValidationError for anything else, so a reader
    stops at an event it cannot read instead of rebuilding a store without it."""
    return _EVENTS.validate_python(document)


def decode_event_json(value: bytes) -> FaceEvent:
    return _EVENTS.validate_json(value)


def face_registered(command: RegisterFace, image: FaceImage, key: bytes) -> FaceRegistered:
    secret = FaceSecret(
        Embedding=image.embedding,
        Box=FaceBox(X=image.box.x, Y=image.box.y, W=image.box.w, H=image.box.h),
        ImageUrl=image.image_url,
        ImageSha256=image.image_sha256,
        PersonName=command.person_name,
    )
    return FaceRegistered(
        Owner=command.owner,
        CategoryId=command.category.display,
        PersonId=command.person.display,
        FaceId=image.face_id,
        RequestId=image.request_id,
        Model=image.provenance.model,
        Detector=image.provenance.detector,
        WeightsSha256=image.provenance.weights_sha256,
        RegisteredAt=image.created_at,
        Sealed=seal(
            key,
            associated_data(command.owner, image.face_id),
            secret.model_dump_json().encode("utf-8"),
        ),
    )


def opened(event: FaceRegistered, key: bytes) -> tuple[RegisterFace, FaceImage]:
    """The command and image an event records, to apply to a store again; SealBroken when
    `key` is not the face's."""
    plain = open_sealed(key, associated_data(event.Owner, event.FaceId), event.Sealed)
    secret = FaceSecret.model_validate_json(plain)
    command = RegisterFace(
        owner=event.Owner,
        request_id=event.RequestId,
        category=LibraryId.of(event.CategoryId),
        person=LibraryId.of(event.PersonId),
        image_url=secret.ImageUrl,
        person_name=secret.PersonName,
        timestamp_ms=int(event.RegisteredAt.timestamp() * 1000),
    )
    image = FaceImage(
        face_id=event.FaceId,
        request_id=event.RequestId,
        image_url=secret.ImageUrl,
        image_sha256=secret.ImageSha256,
        embedding=tuple(secret.Embedding),
        box=Box(x=secret.Box.X, y=secret.Box.Y, w=secret.Box.W, h=secret.Box.H),
        provenance=ModelProvenance(
            model=event.Model, detector=event.Detector, weights_sha256=event.WeightsSha256
        ),
        created_at=event.RegisteredAt,
    )
    return command, image


def person_tagged(command: TagPerson) -> PersonTagged:
    texts = command.texts
    return PersonTagged(
        Owner=command.owner,
        RequestId=command.request_id,
        CategoryId=command.category.display,
        PersonId=command.person.display,
        CategoryName=texts.category_name,
        CategoryDescription=texts.category_description,
        PersonName=texts.person_name,
        PersonDescription=texts.person_description,
    )


def tag_of(event: PersonTagged) -> TagPerson:
    return TagPerson(
        owner=event.Owner,
        request_id=event.RequestId,
        category=LibraryId.of(event.CategoryId),
        person=LibraryId.of(event.PersonId),
        texts=Texts(
            category_name=event.CategoryName,
            category_description=event.CategoryDescription,
            person_name=event.PersonName,
            person_description=event.PersonDescription,
        ),
    )
