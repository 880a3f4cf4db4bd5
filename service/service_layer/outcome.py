"""What became of one command, whatever its action."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from service.contracts.face_events import decode_event
from service.contracts.messages import (
    CommandFailed,
    ListSucceeded,
    RegisterSucceeded,
    Result,
    SearchSucceeded,
    TagSucceeded,
    UnregisterSucceeded,
)
from service.domain.errors import ErrorCode
from service.domain.journal import JournalEntry
from service.domain.person import FaceImage


@dataclass
class Outcome:
    """The result to publish, or a code and message to publish as CommandFailed; and the
    face event to publish before it, if the command changed the library."""

    result: Result | None = None
    event: BaseModel | None = None
    code: ErrorCode | None = None
    message: str = ""
    # For the log line of a registration.
    face_id: str | None = None
    stored: bool = False
    image: FaceImage | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def unexpected_failure(error: Exception) -> Outcome:
    return Outcome(code=ErrorCode.INTERNAL, message=f"errorMsg:unexpected {type(error).__name__}")


def failed(request_id: str, code: ErrorCode, message: str) -> CommandFailed:
    return CommandFailed(
        RequestId=request_id, Code=code.value, Message=message, HttpStatusCode=code.http_status
    )


def journaled(entry: JournalEntry) -> Outcome:
    """The outcome a journal entry recorded: the same answer, the same event."""
    event = decode_event(entry.event) if entry.event is not None else None
    result = _result_from(entry.action, entry.result)
    code = ErrorCode(result.Code) if isinstance(result, CommandFailed) else None
    message = result.Message if isinstance(result, CommandFailed) else ""
    return Outcome(result=result, event=event, code=code, message=message)


# The journaled actions and the result each answers with when it succeeds.
_SUCCESS: dict[
    str,
    type[RegisterSucceeded | UnregisterSucceeded | TagSucceeded | ListSucceeded | SearchSucceeded],
] = {
    "RegisterCustomFace": RegisterSucceeded,
    "UnregisterCustomFace": UnregisterSucceeded,
    "TagCustomPerson": TagSucceeded,
    "ListCustomPersons": ListSucceeded,
    "SearchCustomFace": SearchSucceeded,
}


def _result_from(action: str, document: dict[str, Any]) -> Result:
    if "Code" in document:
        return CommandFailed.model_validate(document)
    return _SUCCESS[action].model_validate(document)
