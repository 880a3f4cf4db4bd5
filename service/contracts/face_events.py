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
    PersonTextsSecret,
    SealedTexts,
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


def face_registered(
    command: RegisterFace, image: FaceImage, key: bytes, text_key: bytes | None
) -> FaceRegistered:
    """`text_key` seals the command's PersonName: None when it gave none."""
    secret = FaceSecret(
        Embedding=image.embedding,
        Box=FaceBox(X=image.box.x, Y=image.box.y, W=image.box.w, H=image.box.h),
        ImageUrl=image.image_url,
        ImageSha256=image.image_sha256,
    )
    texts = None
    if text_key is not None and command.person_name is not None:
        name = PersonTextsSecret(PersonName=command.person_name)
        texts = _sealed_texts(command.owner, command.text_key_id, text_key, name)
    return FaceRegistered(
        Owner=command.owner,
        CategoryId=command.category.display,
        PersonId=command.person.display,
        FaceId=image.face_id,
        RequestId=image.request_id,
        Model=image.provenance.model,
        Detector=image.provenance.detector,
        WeightsSha256=image.provenance.weights_sha256,
        Runtime=image.provenance.runtime,
        RegisteredAt=image.created_at,
        Sealed=seal(
            key,
            associated_data(command.owner, image.face_id),
            secret.model_dump_json().encode("utf-8"),
        ),
        PersonTexts=texts,
    )


def opened(
    event: FaceRegistered, key: bytes, texts: PersonTextsSecret | None
) -> tuple[RegisterFace, FaceImage]:
    """The command and image an event records, to apply to a store again; SealBroken when
    `key` is not the face's. `texts`: its opened PersonTexts, None when it has none or
    they cannot be opened."""
    plain = open_sealed(key, associated_data(event.Owner, event.FaceId), event.Sealed)
    secret = FaceSecret.model_validate_json(plain)
    command = RegisterFace(
        owner=event.Owner,
        request_id=event.RequestId,
        category=LibraryId.of(event.CategoryId),
        person=LibraryId.of(event.PersonId),
        image_url=secret.ImageUrl,
        person_name=texts.PersonName if texts else None,
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
            model=event.Model,
            detector=event.Detector,
            weights_sha256=event.WeightsSha256,
            runtime=event.Runtime,
        ),
        created_at=event.RegisteredAt,
    )
    return command, image


def person_tagged(command: TagPerson, text_key: bytes | None) -> PersonTagged:
    """`text_key` seals the person's texts: None when the command sets none."""
    texts = command.texts
    sealed = None
    if text_key is not None and texts.touches_person:
        secret = PersonTextsSecret(
            PersonName=texts.person_name, PersonDescription=texts.person_description
        )
        sealed = _sealed_texts(command.owner, command.text_key_id, text_key, secret)
    return PersonTagged(
        Owner=command.owner,
        RequestId=command.request_id,
        CategoryId=command.category.display,
        PersonId=command.person.display,
        CategoryName=texts.category_name,
        CategoryDescription=texts.category_description,
        PersonTexts=sealed,
    )


def opened_texts(owner: str, texts: SealedTexts, key: bytes) -> PersonTextsSecret:
    plain = open_sealed(key, associated_data(owner, texts.KeyId), texts.Sealed)
    return PersonTextsSecret.model_validate_json(plain)


def texts_tag(
    owner: str,
    request_id: str,
    category_id: str,
    person_id: str,
    texts: PersonTextsSecret | None,
    category_name: str | None = None,
    category_description: str | None = None,
) -> TagPerson:
    """The tag that sets what an event says of a person: its texts where they could be
    opened, and the library's."""
    return TagPerson(
        owner=owner,
        request_id=request_id,
        category=LibraryId.of(category_id),
        person=LibraryId.of(person_id),
        texts=Texts(
            category_name=category_name,
            category_description=category_description,
            person_name=texts.PersonName if texts else None,
            person_description=texts.PersonDescription if texts else None,
        ),
    )


def _sealed_texts(owner: str, key_id: str, key: bytes, secret: PersonTextsSecret) -> SealedTexts:
    sealed = seal(key, associated_data(owner, key_id), secret.model_dump_json().encode("utf-8"))
    return SealedTexts(KeyId=key_id, Sealed=sealed)
