"""The in-process MongoDB of the embedded mode: mongomock-motor, with lookups by index.

mongomock answers every query by testing it on every document of the collection: a
registration's five reads and writes of the persons cost time in proportion to the whole
store (about 2 ms of the service's CPU per registration at 300 persons, half a second at
100 000). Here each declared index also keeps a hash of its leading plain fields (`owner`,
`category_key`, `person_key`...), and a query that gives all of them by equality tests only
the documents holding those values. The answer is still mongomock's: every candidate passes
its filter, and a query the hashes cannot narrow scans as before.

mongomock changes documents in place on update; the hooks below file a changed document
again under its new values (also when an update fails halfway), so a hash never misses a
document it should hold. One difference is left: a query mongomock would reject because of
a document's contents (a bad regular expression meeting a string) is not tried on the
documents the hash rules out.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import mongomock.collection
import mongomock.filtering
import mongomock.helpers
import mongomock.store
from mongomock_motor import AsyncMongoMockClient

# mongomock's own functions carry no annotations.
Collection: Any = mongomock.collection.Collection
CollectionStore: Any = mongomock.store.CollectionStore
DatabaseStore: Any = mongomock.store.DatabaseStore
ServerStore: Any = mongomock.store.ServerStore
filter_applies: Callable[[Any, Any], bool] = mongomock.filtering.filter_applies

Fields = tuple[str, ...]
_UNKEYED = object()  # a value a hash cannot stand for: a number, a document, a mixed array


def embedded_client() -> Any:
    """A client whose databases keep their declared indexes' hashes."""
    return AsyncMongoMockClient(tz_aware=True, _store=_IndexedServer())


class IndexedCollection(CollectionStore):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        super().__init__(name)
        # For each run of plain fields that leads a declared index: its values -> _ids.
        self._hashes: dict[Fields, dict[Hashable, set[Any]]] = {}
        self._filed: dict[Any, dict[Fields, list[Hashable]]] = {}  # _id -> where it is filed
        # _id -> its place in mongomock's order, which decides what an update_one changes.
        self._place: dict[Any, int] = {}
        self._places = itertools.count()

    def create_index(self, index_name: str, index_dict: dict[str, Any]) -> None:
        super().create_index(index_name, index_dict)
        self._rebuild()

    def drop_index(self, index_name: str) -> None:
        super().drop_index(index_name)
        self._rebuild()

    def drop(self) -> None:
        super().drop()
        self._place = {}
        self._rebuild()

    def __setitem__(self, key: Any, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self._place.setdefault(key, next(self._places))  # a dict keeps a key's place
        self._file(key, value)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._place.pop(key, None)
        self._unfile(key)

    def refile(self, key: Any, document: Mapping[str, Any]) -> None:
        """`document`, changed in place, filed under its values now, if it is still the
        document stored under `key` (an update can fail, or be an upsert's new document)."""
        with self._rwlock.reader():
            stored = self._documents.get(key) is document
        if stored:
            self._file(key, document)

    def candidates(self, query: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The documents that may match `query`, from the hash of the most fields it gives
        by equality to a string; None if no hash narrows it."""
        usable = [
            fields
            for fields in self._hashes
            # Exactly str: a subclass may compare otherwise.
            if all(type(query.get(field)) is str for field in fields)
        ]
        if not usable:
            return None
        fields = max(usable, key=len)
        self._remove_expired_documents()  # as every read of mongomock's store does
        ids = self._hashes[fields].get(tuple(query[field] for field in fields), set())
        unkeyed = self._hashes[fields].get(_UNKEYED, set())
        with self._rwlock.reader():
            if not self._documents:
                filter_applies(query, {})  # mongomock's check of the query on an empty store
            found = [i for i in {*ids, *unkeyed} if i in self._documents]
            found.sort(key=self._place.__getitem__)
            return [self._documents[i] for i in found]

    def _rebuild(self) -> None:
        self._hashes = {fields: {} for fields in map(_leading_plain_fields, self.indexes.values())}
        self._hashes.pop((), None)
        self._filed = {}
        with self._rwlock.reader():
            documents = list(self._documents.items())
        for key, document in documents:
            self._file(key, document)

    def _file(self, key: Any, document: Mapping[str, Any]) -> None:
        self._unfile(key)
        filed = self._filed[key] = {}
        for fields, table in self._hashes.items():
            values = _filing_values(document, fields)
            for value in values:
                table.setdefault(value, set()).add(key)
            filed[fields] = values

    def _unfile(self, key: Any) -> None:
        for fields, values in self._filed.pop(key, {}).items():
            for value in values:
                bucket = self._hashes[fields].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._hashes[fields][value]


def _filing_values(document: Mapping[str, Any], fields: Fields) -> list[Hashable]:
    """Every tuple of strings a query may give `fields` and find `document` by: an array of
    strings is filed under each of them, as MongoDB's multikey indexes do, a missing field
    under none. Any other value (a document, a number, a string of another type) may compare
    in ways a hash does not: such a document is a candidate of every query."""
    choices: list[list[str]] = []
    for field in fields:
        value = document.get(field)
        if type(value) is str:
            choices.append([value])
        elif value is None:
            return []
        elif isinstance(value, list) and all(type(v) is str for v in value):
            choices.append(list(dict.fromkeys(value)))
        else:
            return [_UNKEYED]
    return list(itertools.product(*choices))


def _leading_plain_fields(index: Mapping[str, Any]) -> Fields:
    """The index's first fields up to one inside an array or document (a dotted path)."""
    fields: list[str] = []
    for field, _direction in index.get("key", ()):
        if "." in field or field.startswith("$"):
            break
        fields.append(field)
    return tuple(fields)


class _IndexedDatabase(DatabaseStore):  # type: ignore[misc]
    def __getitem__(self, name: str) -> Any:
        if name not in self._collections:
            self._collections[name] = IndexedCollection(name)
        return self._collections[name]

    def rename(self, name: str, new_name: str) -> None:
        collection = self._collections.pop(name, None)
        if collection is None:  # not `or`: an empty collection is false
            collection = IndexedCollection(new_name)
        collection.name = new_name
        self._collections[new_name] = collection


class _IndexedServer(ServerStore):  # type: ignore[misc]
    def __getitem__(self, name: str) -> Any:
        if name not in self._databases:
            self._databases[name] = _IndexedDatabase()
        return self._databases[name]


def _narrowed(
    scan: Callable[[Any, Any], Iterator[dict[str, Any]]],
) -> Callable[[Any, Any], Iterator[dict[str, Any]]]:
    def iter_documents(self: Any, query: Any) -> Iterator[dict[str, Any]]:
        store = self._store
        if isinstance(store, IndexedCollection) and isinstance(query, Mapping):
            found = store.candidates(query)
            if found is not None:
                return (document for document in found if filter_applies(query, document))
        return scan(self, query)

    return iter_documents


def _refiling(apply: Callable[..., None]) -> Callable[..., None]:
    def apply_then_refile(self: Any, document: dict[str, Any], *args: Any) -> None:
        store = self._store
        if not isinstance(store, IndexedCollection):
            return apply(self, document, *args)
        key = document.get("_id")  # before the update, which may change it
        if isinstance(key, dict):
            key = mongomock.helpers.hashdict(key)  # as mongomock keys such a document
        try:
            apply(self, document, *args)
        finally:
            # Also when an operator fails halfway: mongomock keeps what it changed.
            with contextlib.suppress(TypeError):  # an unhashable _id is stored nowhere
                store.refile(key, document)

    return apply_then_refile


# On the class, before any collection exists: mongomock-motor wraps each collection's
# bound `_iter_documents` when it makes the collection.
if not getattr(Collection, "_narrowed_by_index", False):
    Collection._iter_documents = _narrowed(Collection._iter_documents)
    Collection._apply_update_document = _refiling(Collection._apply_update_document)
    Collection._apply_update_pipeline = _refiling(Collection._apply_update_pipeline)
    Collection._narrowed_by_index = True
