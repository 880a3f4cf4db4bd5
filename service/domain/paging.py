"""NextToken: where the next page of ListCustomPersons begins."""

from __future__ import annotations

import base64
import binascii
import json

from service.domain.commands import PageStart


def next_token(start: PageStart) -> str:
    """Opaque to users; it only names a position among their own persons, so a forged one
    shows nothing another token could not."""
    raw = json.dumps([start.category_key, start.person_key], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def page_start(token: str) -> PageStart:
    """The position a token names; ValueError for anything `next_token` did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("NextToken is not a token this service gave") from None
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
        raise ValueError("NextToken is not a token this service gave")
    start = PageStart(category_key=parts[0], person_key=parts[1])
    if next_token(start) != token:
        raise ValueError("NextToken is not a token this service gave")
    return start
