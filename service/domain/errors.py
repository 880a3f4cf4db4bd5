"""Error codes of the library's actions and the exceptions that carry them."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_USER_ID = "InvalidParameter.UserId"
    INVALID_PARTITION = "InvalidParameter.Partition"
    INVALID_MESSAGE = "InvalidParameter.Message"
    INVALID_REQUEST_ID = "InvalidParameter.RequestId"
    INVALID_CATEGORY_ID = "InvalidParameter.CategoryId"
    SYSTEM_CATEGORY = "Forbidden.SystemCategory"
    INVALID_PERSON_ID = "InvalidParameter.PersonId"
    INVALID_PERSON_NAME = "InvalidParameter.PersonName"
    INVALID_IMAGE_URL = "InvalidParameter.ImageUrl"
    INVALID_FACE_ID = "InvalidParameter.FaceId"
    INVALID_MAX_RESULTS = "InvalidParameter.MaxResults"
    INVALID_NEXT_TOKEN = "InvalidParameter.NextToken"
    INVALID_CATEGORY_NAME = "InvalidParameter.CategoryName"
    INVALID_CATEGORY_DESCRIPTION = "InvalidParameter.CategoryDescription"
    INVALID_PERSON_DESCRIPTION = "InvalidParameter.PersonDescription"
    INVALID_CATEGORY_IDS = "InvalidParameter.CategoryIds"
    INVALID_MAX_FACES = "InvalidParameter.MaxFaces"
    INVALID_LIMIT = "InvalidParameter.Limit"
    INVALID_MAX_DISTANCE = "InvalidParameter.MaxDistance"
    INVALID_DUPLICATE_DISTANCE = "InvalidParameter.DuplicatePersonMaxDistance"
    CATEGORY_NOT_FOUND = "NotFound.Category"
    PERSON_NOT_FOUND = "NotFound.Person"
    FACE_NOT_FOUND = "NotFound.Face"
    IMAGE_DOWNLOAD = "InvalidImage.Download"
    IMAGE_TOO_LARGE = "InvalidImage.TooLarge"
    IMAGE_FORMAT = "InvalidImage.Format"
    NO_FACE = "InvalidImage.NoFace"
    MULTIPLE_FACES = "InvalidImage.MultipleFaces"
    FACE_NOT_FRONTAL = "InvalidImage.FaceNotFrontal"
    FACE_TOO_SMALL = "InvalidImage.FaceTooSmall"
    FACE_MISMATCH = "InvalidImage.FaceMismatch"
    DUPLICATE_PERSON = "InvalidImage.DuplicatePerson"
    FACE_LIMIT_EXCEEDED = "FaceLimitExceeded"
    LIBRARY_TOO_LARGE = "LibraryTooLarge"
    THROTTLED = "Throttling.User"
    INTERNAL = "InternalError"

    @property
    def http_status(self) -> int:
        if self is ErrorCode.SYSTEM_CATEGORY:
            return 403
        if self.value.startswith("NotFound."):
            return 404
        if self is ErrorCode.THROTTLED:
            return 429
        if self is ErrorCode.INTERNAL:
            return 500
        return 400


class Rejected(Exception):
    """A permanent refusal of one command: it becomes an error result, never a retry."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[Rejected], tuple[ErrorCode, str]]:
        # Refusals cross from the inference processes back to the service.
        return (Rejected, (self.code, self.message))


class MessageTooLarge(Exception):
    """The broker refused a message for its size: sending it again would fail again."""


class TransientError(Exception):
    """A failure of an outside system that may pass: retried, never turned into a refusal."""
