"""What a command answered, kept so that processing it again answers the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class JournalEntry:
    """The answer of one command (by owner, action and RequestId), the face event it
    published, and the faces it erased. Written before the command's changes are applied,
    so a crash in between leaves them to be applied again, never answered differently."""

    owner: str
    action: str
    request_id: str
    result: dict[str, Any]
    event: dict[str, Any] | None = None
    erased_face_ids: tuple[str, ...] = field(default_factory=tuple)
    # Keys of the removed persons' texts, destroyed with the faces' keys.
    erased_key_ids: tuple[str, ...] = field(default_factory=tuple)
    # None: kept for good. An entry that holds personal data (a list's image URLs) expires.
    expires_at: datetime | None = None
