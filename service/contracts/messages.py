"""JSON messages of the commands, results and face events topics, with the field names of
the cloud API (MTS RegisterCustomFace, UnregisterCustomFace, TagCustomPerson,
ListCustomPersons; SearchCustomFace after Alibaba Cloud's SearchFace)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.domain.ids import MAX_ID_LENGTH

MAX_TEXT_LENGTH = 512  # names and descriptions
MAX_REQUEST_ID_LENGTH = 128
# A list's page carries up to 10 URLs a person and must fit one Kafka record even when one
# person is all it holds; signed object-store URLs are 1-2 kB.
MAX_IMAGE_URL_LENGTH = 8192
DEFAULT_MAX_RESULTS = 20
MAX_MAX_RESULTS = 100

_RECORD = (
    "\n\nValue of a record on the commands topic. The record key is the owner's user "
    "(account) id, UTF-8: it decides the partition and scopes every read and write, and "
    "nothing in the body can name another user."
)
_RESULT = "\n\nValue of a record on the results topic, keyed like its command."


def _request_id() -> Any:
    return Field(
        None,
        min_length=1,
        max_length=MAX_REQUEST_ID_LENGTH,
        description="Caller's id of this call: the same command processed again (redelivery, "
        "replay) answers as the first time. Absent: derived from the record's topic, "
        "partition and offset, so a replay derives the same.",
        examples=["91AEA76D-25B5-50DF-9126-AA6BB10FDAF4"],
    )


def _category_id(more: str = "") -> Any:
    return Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Custom library id, 1-120 characters, any language, case-insensitive; "
        "not a system library id." + more,
        examples=["Cat-1"],
    )


def _person_id(more: str) -> Any:
    return Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Person id in the library, 1-120 characters, any language, "
        "case-insensitive." + more,
        examples=["person-1"],
    )


def _text(what: str) -> Any:
    return Field(
        None,
        max_length=MAX_TEXT_LENGTH,
        description=f"{what}, at most {MAX_TEXT_LENGTH} characters. Absent: unchanged; an "
        "empty string clears it.",
    )


def _echo(what: str) -> Any:
    return Field(description=f"The {what} as the command spelled it.")


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterCustomFaceCommand(_Message):
    """Register one face image for a person of a custom library."""

    model_config = ConfigDict(title="RegisterCustomFaceCommand")
    __doc__ = (__doc__ or "") + _RECORD

    RequestId: str | None = _request_id()
    Action: Literal["RegisterCustomFace"] = Field(
        "RegisterCustomFace", description="The action; absent means RegisterCustomFace."
    )
    CategoryId: str = _category_id()
    PersonId: str = _person_id(" `ALL` is reserved.")
    ImageUrl: str = Field(
        min_length=1,
        max_length=MAX_IMAGE_URL_LENGTH,
        description="http or https URL of an image holding exactly one frontal face.",
        examples=["https://example.com/faces/person-1.jpg"],
    )
    PersonName: str | None = Field(
        None,
        max_length=MAX_TEXT_LENGTH,
        description=f"Display name of the person, at most {MAX_TEXT_LENGTH} characters.",
    )
    DuplicatePersonMaxDistance: float | None = Field(
        None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="When given, a face within this distance of a face of another person of "
        "the library is refused (InvalidImage.DuplicatePerson), naming that person.",
        examples=[0.4],
    )


class UnregisterCustomFaceCommand(_Message):
    """Remove a face, every face of a person (`FaceId` `ALL`), or every person of a library
    (`PersonId` and `FaceId` `ALL`). A person left without faces is removed, and a library
    left without persons."""

    model_config = ConfigDict(title="UnregisterCustomFaceCommand")
    __doc__ = (__doc__ or "") + _RECORD

    RequestId: str | None = _request_id()
    Action: Literal["UnregisterCustomFace"]
    CategoryId: str = _category_id()
    PersonId: str = _person_id(" `ALL`: every person of the library (FaceId must be `ALL`).")
    FaceId: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="A FaceId the person was registered with, or `ALL`: all of its faces.",
        examples=["ALL"],
    )


class TagCustomPersonCommand(_Message):
    """Name or describe a person and its library. At least one of the four texts."""

    model_config = ConfigDict(title="TagCustomPersonCommand")
    __doc__ = (__doc__ or "") + _RECORD

    RequestId: str | None = _request_id()
    Action: Literal["TagCustomPerson"]
    CategoryId: str = _category_id()
    PersonId: str = _person_id(" The person must exist.")
    CategoryName: str | None = _text("Name of the library")
    CategoryDescription: str | None = _text("Description of the library")
    PersonName: str | None = _text("Name of the person")
    PersonDescription: str | None = _text("Description of the person")


class ListCustomPersonsCommand(_Message):
    """Page through the user's libraries, their persons and faces (never embeddings)."""

    model_config = ConfigDict(title="ListCustomPersonsCommand")
    __doc__ = (__doc__ or "") + _RECORD

    RequestId: str | None = _request_id()
    Action: Literal["ListCustomPersons"]
    CategoryId: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="One library. Absent: all the user's libraries.",
    )
    PersonId: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="One person; needs CategoryId.",
    )
    MaxResults: int = Field(
        DEFAULT_MAX_RESULTS,
        ge=1,
        le=MAX_MAX_RESULTS,
        description=f"Persons per page, 1-{MAX_MAX_RESULTS}.",
    )
    NextToken: str | None = Field(
        None,
        min_length=1,
        # Ids of 120 characters may grow under NFKC (one character to 18): a token names
        # two of them, so it is bounded by the command's size, not by a length of its own.
        description="The previous page's NextToken, to get the page after it.",
    )


MAX_SEARCH_LIBRARIES = 10
MAX_SEARCH_FACES = 10
DEFAULT_SEARCH_LIMIT = 5
MAX_SEARCH_LIMIT = 100


class SearchCustomFaceCommand(_Message):
    """Find the persons of one or more of the user's libraries whose faces are nearest to
    each face of an image (1:N search), exactly."""

    model_config = ConfigDict(title="SearchCustomFaceCommand")
    __doc__ = (__doc__ or "") + _RECORD

    RequestId: str | None = _request_id()
    Action: Literal["SearchCustomFace"]
    CategoryIds: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]] = Field(
        min_length=1,
        max_length=MAX_SEARCH_LIBRARIES,
        description=f"1-{MAX_SEARCH_LIBRARIES} library ids of this user to search, each "
        "1-120 characters, case-insensitive.",
        examples=[["Cat-1", "Staff"]],
    )
    ImageUrl: str = Field(
        min_length=1,
        max_length=MAX_IMAGE_URL_LENGTH,
        description="http or https URL of an image with one or more faces (any pose).",
        examples=["https://example.com/frames/0001.jpg"],
    )
    MaxFaces: int = Field(
        1,
        ge=1,
        le=MAX_SEARCH_FACES,
        description=f"How many of the image's faces to search for, largest first, "
        f"1-{MAX_SEARCH_FACES}.",
    )
    Limit: int = Field(
        DEFAULT_SEARCH_LIMIT,
        ge=1,
        le=MAX_SEARCH_LIMIT,
        description=f"Matches per face, 1-{MAX_SEARCH_LIMIT}: one per person, nearest first.",
    )
    MaxDistance: float | None = Field(
        None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Farthest match (euclidean distance of the embeddings). Absent: "
        "FACE_MATCH_MAX_DISTANCE (0.6 for Dlib).",
    )


CommandMessage = (
    RegisterCustomFaceCommand
    | UnregisterCustomFaceCommand
    | TagCustomPersonCommand
    | ListCustomPersonsCommand
    | SearchCustomFaceCommand
)
ACTIONS: dict[str, type[CommandMessage]] = {
    "RegisterCustomFace": RegisterCustomFaceCommand,
    "UnregisterCustomFace": UnregisterCustomFaceCommand,
    "TagCustomPerson": TagCustomPersonCommand,
    "ListCustomPersons": ListCustomPersonsCommand,
    "SearchCustomFace": SearchCustomFaceCommand,
}


class FaceBox(_Message):
    X: int = Field(description="Left edge of the face, pixels.")
    Y: int = Field(description="Top edge of the face, pixels.")
    W: int = Field(description="Width of the face, pixels.")
    H: int = Field(description="Height of the face, pixels.")


class RegisterSucceeded(_Message):
    """Result of a registered face."""

    model_config = ConfigDict(title="RegisterSucceeded")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    FaceId: str = Field(
        pattern="^[0-9a-f]{32}$",
        description="Id of the registered face; the same each time the command is processed.",
    )
    CategoryId: str = _echo("library id")
    PersonId: str = _echo("person id")


class UnregisterSucceeded(_Message):
    """Result of an unregistration."""

    model_config = ConfigDict(title="UnregisterSucceeded")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    CategoryId: str = _echo("library id")
    PersonId: str = _echo("person id")
    FaceId: str = _echo("face id")
    UnregisteredFaceCount: int = Field(ge=1, description="How many faces were removed.")


class TagSucceeded(_Message):
    """Result of a tagged person."""

    model_config = ConfigDict(title="TagSucceeded")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    CategoryId: str = _echo("library id")
    PersonId: str = _echo("person id")


class ListedFace(_Message):
    FaceId: str = Field(description="Id of the face.")
    ImageUrl: str = Field(description="The URL it was registered from.")


class ListedPerson(_Message):
    PersonId: str = Field(description="The person id as first registered.")
    PersonName: str | None = Field(description="Its name, if any.")
    PersonDescription: str | None = Field(description="Its description, if any.")
    Faces: tuple[ListedFace, ...] = Field(description="Its faces, in registration order.")


class ListedCategory(_Message):
    CategoryId: str = Field(description="The library id as first registered.")
    CategoryName: str | None = Field(description="Its name, if any.")
    CategoryDescription: str | None = Field(description="Its description, if any.")
    Persons: tuple[ListedPerson, ...] = Field(
        description="The page's persons of this library, by normalised PersonId."
    )


class ListSucceeded(_Message):
    """One page of the user's persons, grouped by library."""

    model_config = ConfigDict(title="ListSucceeded")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    Categories: tuple[ListedCategory, ...] = Field(
        description="Libraries by normalised CategoryId; empty when nothing matches."
    )
    NextToken: str | None = Field(description="Pass it to get the next page; null on the last.")


class SearchMatch(_Message):
    CategoryId: str = Field(description="The library id as first registered.")
    PersonId: str = Field(description="The person id as first registered.")
    PersonName: str | None = Field(description="Its name, if any.")
    FaceId: str = Field(description="The person's face nearest to the searched face.")
    Distance: float = Field(description="Euclidean distance of the two embeddings.")


class SearchedFace(_Message):
    Box: FaceBox = Field(description="The face in the searched image.")
    Matches: tuple[SearchMatch, ...] = Field(
        description="One per person, nearest first, within MaxDistance, at most Limit; "
        "empty when no person is near."
    )


class SearchSucceeded(_Message):
    """The persons nearest to each face of the searched image."""

    model_config = ConfigDict(title="SearchSucceeded")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    Faces: tuple[SearchedFace, ...] = Field(description="The faces searched, largest first.")


class CommandFailed(_Message):
    """Result of a refused or failed command, whatever its action."""

    model_config = ConfigDict(title="CommandFailed")
    __doc__ = (__doc__ or "") + _RESULT

    RequestId: str = Field(description="The command's RequestId, given or derived.")
    Code: str = Field(description="Error code, see the README's error table.")
    Message: str = Field(description="What was wrong, naming the field or the cause.")
    HttpStatusCode: int = Field(description="The HTTP status the cloud API would answer.")


Result = (
    RegisterSucceeded
    | UnregisterSucceeded
    | TagSucceeded
    | ListSucceeded
    | SearchSucceeded
    | CommandFailed
)


class FaceSecret(_Message):
    """What a FaceRegistered event seals with the face's key: its biometric data."""

    model_config = ConfigDict(title="FaceSecret")

    Embedding: tuple[float, ...] = Field(description="The face embedding (Dlib: 128 floats).")
    Box: FaceBox = Field(description="The face in the image.")
    ImageUrl: str = Field(description="Where the image was fetched from.")
    ImageSha256: str = Field(description="sha256 of the image bytes, hex.")


class PersonTextsSecret(_Message):
    """What an event seals with a person-texts key: the texts its command set (absent:
    unchanged, empty: cleared)."""

    model_config = ConfigDict(title="PersonTextsSecret")

    PersonName: str | None = None
    PersonDescription: str | None = None


class SealedTexts(_Message):
    """Person texts sealed with a key that lives as long as the person: unregistering the
    person destroys it, unregistering one of its faces does not."""

    KeyId: str = Field(pattern="^t[0-9a-f]{31}$", description="Id of the key.")
    Sealed: str = Field(
        description="base64 of the AES-256-GCM-SIV ciphertext and tag of the "
        "PersonTextsSecret JSON; the associated data binds it to Owner and KeyId."
    )


_EVENT = (
    "\n\nValue of a record on the face events topic, keyed by owner, with a `message-type` "
    "header naming it. Consumers dedupe by RequestId: a crash between the store write and "
    "the result re-publishes an identical event."
)


class FaceRegistered(_Message):
    """A face added to a person. Its embedding, box, image URL and hash are sealed
    (AES-256-GCM-SIV) with a data key of this face alone: unregistering the face destroys the
    key, and with it every copy of the event on the log (crypto-shredding). The PersonName
    given, if any, is sealed apart, with a key that goes with the person."""

    model_config = ConfigDict(title="FaceRegistered")
    __doc__ = (__doc__ or "") + _EVENT

    Type: Literal["FaceRegistered"] = "FaceRegistered"
    Owner: str = Field(description="The user (account) id that owns the library.")
    CategoryId: str = Field(description="The library id as the command spelled it.")
    PersonId: str = Field(description="The person id as the command spelled it.")
    FaceId: str = Field(pattern="^[0-9a-f]{32}$", description="Id of the registered face.")
    RequestId: str = Field(description="RequestId of the command that registered it.")
    Model: str = Field(description="Recognition model that computed the embedding.")
    Detector: str = Field(description="Detector that found the face.")
    WeightsSha256: str = Field(description="sha256 of the model's weight file.")
    Runtime: str = Field(
        "",
        description="The runtime and version that computed the embedding, such as "
        "`onnxruntime 1.32.0` or `dlib 20.0.1`; empty in events written before it was recorded.",
    )
    RegisteredAt: datetime = Field(description="When the face was stored (UTC, milliseconds).")
    Sealed: str = Field(
        description="base64 of the AES-256-GCM-SIV ciphertext and tag of the FaceSecret JSON; "
        "the associated data binds it to Owner and FaceId."
    )
    PersonTexts: SealedTexts | None = Field(
        None, description="The PersonName the command gave; absent when it gave none."
    )


class FacesUnregistered(_Message):
    """Faces removed by an UnregisterCustomFace; no biometric data. A person left without
    faces is gone, and a library left without persons."""

    model_config = ConfigDict(title="FacesUnregistered")
    __doc__ = (__doc__ or "") + _EVENT

    Type: Literal["FacesUnregistered"] = "FacesUnregistered"
    Owner: str = Field(description="The user (account) id that owns the library.")
    RequestId: str = Field(description="RequestId of the command.")
    CategoryId: str = _echo("library id")
    PersonId: str = _echo("person id (or `ALL`)")
    FaceId: str = _echo("face id (or `ALL`)")
    FaceIds: tuple[str, ...] = Field(description="Every face removed.")
    KeyIds: tuple[str, ...] = Field(
        (), description="The person-texts keys destroyed with the persons removed."
    )
    UnregisteredAt: datetime = Field(description="When (UTC, milliseconds).")


class PersonTagged(_Message):
    """A TagCustomPerson applied: the texts given (absent: unchanged, empty: cleared). The
    library's texts are in clear; the person's are sealed with a key that goes with it."""

    model_config = ConfigDict(title="PersonTagged")
    __doc__ = (__doc__ or "") + _EVENT

    Type: Literal["PersonTagged"] = "PersonTagged"
    Owner: str = Field(description="The user (account) id that owns the library.")
    RequestId: str = Field(description="RequestId of the command.")
    CategoryId: str = _echo("library id")
    PersonId: str = _echo("person id")
    CategoryName: str | None = None
    CategoryDescription: str | None = None
    PersonTexts: SealedTexts | None = Field(
        None, description="PersonName and PersonDescription, when the command gave either."
    )


FaceEvent = FaceRegistered | FacesUnregistered | PersonTagged
