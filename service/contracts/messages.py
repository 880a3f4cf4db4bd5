"""JSON messages of the commands and results topics, field names as in the cloud API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.domain.ids import MAX_ID_LENGTH

MAX_PERSON_NAME_LENGTH = 128
MAX_REQUEST_ID_LENGTH = 128


class RegisterCustomFaceCommand(BaseModel):
    """Register one face image for a person of a custom library.

    Value of a record on the commands topic. The record key is the owner's user (account)
    id, UTF-8: it decides the partition and scopes every read and write, and nothing in the
    body can name another user.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="RegisterCustomFaceCommand")

    RequestId: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REQUEST_ID_LENGTH,
        description="Caller's id of this call. Absent: derived from the record's topic, "
        "partition and offset, so a replay derives the same.",
        examples=["91AEA76D-25B5-50DF-9126-AA6BB10FDAF4"],
    )
    Action: Literal["RegisterCustomFace"] = Field(
        "RegisterCustomFace", description="The only action served for now."
    )
    CategoryId: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Custom library id, 1-120 characters, any language, case-insensitive. "
        "Must not equal a system library id.",
        examples=["Cat-1"],
    )
    PersonId: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Person id in the library, 1-120 characters, any language, "
        "case-insensitive. `ALL` is reserved.",
        examples=["person-1"],
    )
    ImageUrl: str = Field(
        min_length=1,
        description="http or https URL of an image holding exactly one frontal face.",
        examples=["https://example.com/faces/person-1.jpg"],
    )
    PersonName: str | None = Field(
        None,
        max_length=MAX_PERSON_NAME_LENGTH,
        description="Display name of the person, at most 128 characters.",
    )


class RegisterSucceeded(BaseModel):
    """Result of a registered face: the value of a results record, keyed like its command."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="RegisterSucceeded")

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    FaceId: str = Field(
        pattern="^[0-9a-f]{32}$",
        description="Id of the registered face; the same each time the command is processed.",
    )
    CategoryId: str = Field(description="The library id as the command spelled it.")
    PersonId: str = Field(description="The person id as the command spelled it.")


class RegisterFailed(BaseModel):
    """Result of a refused or failed command: the value of a results record."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="RegisterFailed")

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    Code: str = Field(description="Error code, see the README's error table.")
    Message: str = Field(description="What was wrong, naming the field or the cause.")
    HttpStatusCode: int = Field(description="The HTTP status the cloud API would answer.")


RegisterResult = RegisterSucceeded | RegisterFailed


class FaceBox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    X: int = Field(description="Left edge of the face, pixels.")
    Y: int = Field(description="Top edge of the face, pixels.")
    W: int = Field(description="Width of the face, pixels.")
    H: int = Field(description="Height of the face, pixels.")


class FaceRegistered(BaseModel):
    """A face added to a person: the value of a record on the events topic, keyed by owner.

    Everything needed to rebuild a person library without fetching an image again. It holds
    a biometric embedding: the topic must be access-restricted. Consumers dedupe by FaceId
    (a crash between the store write and the result re-publishes an identical event).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="FaceRegistered")

    Owner: str = Field(description="The user (account) id that owns the library.")
    CategoryId: str = Field(description="The library id as the command spelled it.")
    PersonId: str = Field(description="The person id as the command spelled it.")
    PersonName: str | None = Field(description="PersonName given by the command, if any.")
    FaceId: str = Field(pattern="^[0-9a-f]{32}$", description="Id of the registered face.")
    RequestId: str = Field(description="RequestId of the command that registered it.")
    ImageUrl: str = Field(description="Where the image was fetched from.")
    ImageSha256: str = Field(description="sha256 of the image bytes, hex.")
    Embedding: tuple[float, ...] = Field(description="The face embedding (Dlib: 128 floats).")
    Box: FaceBox = Field(description="The face in the image.")
    Model: str = Field(description="Recognition model that computed the embedding.")
    Detector: str = Field(description="Detector that found the face.")
    WeightsSha256: str = Field(description="sha256 of the model's weight file.")
    RegisteredAt: datetime = Field(description="When the face was stored (UTC, milliseconds).")
