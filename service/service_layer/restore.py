"""Rebuild person libraries from the face events, without fetching or inferring anything."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable
from functools import partial

from service.contracts.face_events import restored
from service.contracts.messages import FaceRegistered
from service.domain.commands import RegisterFace
from service.domain.person import FaceImage
from service.service_layer.retry import RetryPolicy

RestoreImage = Callable[[RegisterFace, FaceImage], Awaitable[bool]]


async def apply_face_events(
    events: AsyncIterable[FaceRegistered],
    restore: RestoreImage,
    retry: RetryPolicy,
    progress: Callable[[str], None] | None = None,
) -> Counter[str]:
    """Apply events in log order; an event already applied (same FaceId) changes nothing."""
    outcome: Counter[str] = Counter()
    async for event in events:
        command, image = restored(event)
        added = await retry.run(partial(restore, command, image))
        kind = "stored" if added else "already present"
        outcome[kind] += 1
        if progress is not None:
            progress(kind)
    return outcome
