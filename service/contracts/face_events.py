"""Face events to and from the stored images they describe."""

from __future__ import annotations

from service.contracts.messages import FaceBox, FaceRegistered
from service.domain.commands import RegisterFace
from service.domain.faces import Box
from service.domain.ids import LibraryId
from service.domain.person import FaceImage, ModelProvenance


def face_registered(command: RegisterFace, image: FaceImage) -> FaceRegistered:
    return FaceRegistered(
        Owner=command.owner,
        CategoryId=command.category.display,
        PersonId=command.person.display,
        PersonName=command.person_name,
        FaceId=image.face_id,
        RequestId=image.request_id,
        ImageUrl=image.image_url,
        ImageSha256=image.image_sha256,
        Embedding=image.embedding,
        Box=FaceBox(X=image.box.x, Y=image.box.y, W=image.box.w, H=image.box.h),
        Model=image.provenance.model,
        Detector=image.provenance.detector,
        WeightsSha256=image.provenance.weights_sha256,
        RegisteredAt=image.created_at,
    )


def restored(event: FaceRegistered) -> tuple[RegisterFace, FaceImage]:
    """The command and image an event records, to apply to a store again."""
    command = RegisterFace(
        owner=event.Owner,
        request_id=event.RequestId,
        category=LibraryId.of(event.CategoryId),
        person=LibraryId.of(event.PersonId),
        image_url=event.ImageUrl,
        person_name=event.PersonName,
        timestamp_ms=int(event.RegisteredAt.timestamp() * 1000),
    )
    image = FaceImage(
        face_id=event.FaceId,
        request_id=event.RequestId,
        image_url=event.ImageUrl,
        image_sha256=event.ImageSha256,
        embedding=tuple(event.Embedding),
        box=Box(x=event.Box.X, y=event.Box.Y, w=event.Box.W, h=event.Box.H),
        provenance=ModelProvenance(
            model=event.Model, detector=event.Detector, weights_sha256=event.WeightsSha256
        ),
        created_at=event.RegisteredAt,
    )
    return command, image
