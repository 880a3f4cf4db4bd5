"""Commands: what a user asked for, once its owner and fields are known to be valid."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.ids import LibraryId, derive_face_id, derive_text_key_id, identity_key

ALL = identity_key("ALL")  # PersonId or FaceId: every one of them

PersonRef = tuple[str, str, str]  # (owner, category key, person key)


class _OfPerson:
    """A command that names one person of a library."""

    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId

    @property
    def person_ref(self) -> PersonRef:
        """What makes two commands touch the same person document."""
        return (self.owner, self.category.key, self.person.key)

    @property
    def text_key_id(self) -> str:
        """The key that seals the person texts this command sets (a name), on the log."""
        return derive_text_key_id(*self.person_ref, self.request_id)


@dataclass(frozen=True)
class RegisterFace(_OfPerson):
    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId
    image_url: str
    person_name: str | None
    timestamp_ms: int
    # Refuse a face this near to another person's face of the library; None: no check.
    duplicate_max_distance: float | None = None

    @property
    def face_id(self) -> str:
        return derive_face_id(self.owner, self.category.key, self.person.key, self.request_id)


@dataclass(frozen=True)
class UnregisterFaces:
    """One face (`face_id`), a person's faces (`face_id` ALL), or a library's persons
    (`person` and `face_id` ALL); ids as the command spelled them."""

    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId
    face_id: str

    @property
    def whole_library(self) -> bool:
        return self.person.key == ALL

    @property
    def whole_person(self) -> bool:
        return identity_key(self.face_id) == ALL


@dataclass(frozen=True)
class Texts:
    """The texts a TagCustomPerson sets: None leaves one as it is, "" clears it."""

    category_name: str | None = None
    category_description: str | None = None
    person_name: str | None = None
    person_description: str | None = None

    @property
    def touches_library(self) -> bool:
        return self.category_name is not None or self.category_description is not None

    @property
    def touches_person(self) -> bool:
        return self.person_name is not None or self.person_description is not None


@dataclass(frozen=True)
class TagPerson(_OfPerson):
    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId
    texts: Texts


@dataclass(frozen=True)
class PageStart:
    """Where a page of persons begins: after this (category key, person key)."""

    category_key: str
    person_key: str


@dataclass(frozen=True)
class ListPersons:
    owner: str
    request_id: str
    category: LibraryId | None
    person: LibraryId | None
    max_results: int
    after: PageStart | None


@dataclass(frozen=True)
class SearchFaces:
    owner: str
    request_id: str
    categories: tuple[LibraryId, ...]  # distinct by key, in the order given
    image_url: str
    max_faces: int
    limit: int
    max_distance: float | None  # None: the service's match distance


# Every action is one of these; the message bus dispatches on the type.
Command = RegisterFace | UnregisterFaces | TagPerson | ListPersons | SearchFaces


@dataclass(frozen=True)
class Scope:
    """What a command reads or writes, which decides what it must wait for: commands of one
    person run in partition order; an exclusive command (one that reads or writes a whole
    library) waits for all of its user's earlier commands and holds back the later ones."""

    owner: str
    person: PersonRef | None = None
    exclusive: bool = False

    @classmethod
    def of(cls, command: Command) -> Scope:
        if isinstance(command, RegisterFace) and command.duplicate_max_distance is None:
            return cls(owner=command.owner, person=command.person_ref)
        if isinstance(command, TagPerson) and not command.texts.touches_library:
            return cls(owner=command.owner, person=command.person_ref)
        # An unregister may empty a person and its library, a library's texts are shared by
        # its persons, and a list, a search or a registration checked against the other
        # persons reads them all: each sees every earlier command done, and no later one.
        return cls(owner=command.owner, exclusive=True)
