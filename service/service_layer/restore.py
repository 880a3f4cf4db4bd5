"""Rebuild libraries from the face events, without fetching or inferring anything.

The events are applied in log order, each as the live command applied it: a registration
whose key was destroyed (its face was unregistered later in the log) cannot be read and is
skipped, and the unregistration that destroyed the key removes whatever is left of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Callable
from functools import partial

from service.contracts.face_events import opened, opened_texts, texts_tag
from service.contracts.messages import (
    FaceEvent,
    FaceRegistered,
    FacesUnregistered,
    PersonTextsSecret,
    SealedTexts,
)
from service.domain.commands import Texts
from service.domain.ids import identity_key
from service.service_layer.ports import Stores
from service.service_layer.retry import RetryPolicy
from service.service_layer.tag import tagged_entry
from service.service_layer.unregister import unregistered_entry


async def apply_face_events(
    events: AsyncIterable[FaceEvent],
    stores: Stores,
    retry: RetryPolicy,
    progress: Callable[[str], None] | None = None,
) -> Counter[str]:
    """Applies each event once; an event applied before changes nothing."""
    outcome: Counter[str] = Counter()
    async for event in events:
        kind = await retry.run(partial(_apply, stores, event))
        outcome[kind] += 1
        if progress is not None:
            progress(kind)
    return outcome


async def _apply(stores: Stores, event: FaceEvent) -> str:
    if isinstance(event, FaceRegistered):
        return await _registered(stores, event)
    if isinstance(event, FacesUnregistered):
        await stores.journal.keep(unregistered_entry(event))
        await stores.keys.destroy(event.Owner, (*event.FaceIds, *event.KeyIds))
        category_key = identity_key(event.CategoryId)
        await stores.persons.remove_faces(event.Owner, category_key, event.FaceIds)
        return "unregistered"
    await stores.journal.keep(tagged_entry(event))
    texts = await _texts(stores, event.Owner, event.PersonTexts)
    tag = texts_tag(
        event.Owner,
        event.RequestId,
        event.CategoryId,
        event.PersonId,
        texts,
        event.CategoryName,
        event.CategoryDescription,
    )
    if tag.texts != Texts():
        # The person may have no face in the rebuilt store at this point of the log (those
        # it had then were unregistered later, it kept others): it is made, to take them.
        await stores.persons.tag(tag, create_person=True)
    return "tagged"


async def _registered(stores: Stores, event: FaceRegistered) -> str:
    texts = await _texts(stores, event.Owner, event.PersonTexts)
    named = texts_tag(event.Owner, event.RequestId, event.CategoryId, event.PersonId, texts)
    key = await stores.keys.find(event.Owner, event.FaceId)
    if key is None or await stores.journal.erased(event.Owner, event.FaceId):
        # The face is gone; the person and library it made stay made, spelled as it spelled
        # them, and the name it brought stays with the person (see above). Made in vain
        # when the person went too: the unregistration later in the log removes it again.
        await stores.persons.tag(named, create_person=True)
        return "erased"
    command, image = opened(event, key, texts)
    added = await stores.persons.restore(command, image)
    if not added and texts is not None:
        # Applied again over a store that has it (the embedded store at a new assignment):
        # its name is set again, as the live command set it at this point of the log.
        await stores.persons.tag(named, create_person=True)
    return "stored" if added else "already present"


async def _texts(
    stores: Stores, owner: str, sealed: SealedTexts | None
) -> PersonTextsSecret | None:
    """The person texts an event sealed, or None: it has none, or its person is gone."""
    if sealed is None:
        return None
    key = await stores.keys.find(owner, sealed.KeyId)
    return opened_texts(owner, sealed, key) if key is not None else None
