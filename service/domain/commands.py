"""Commands: what a user asked for, once its owner and fields are known to be valid."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.ids import LibraryId, derive_face_id


@dataclass(frozen=True)
class RegisterFace:
    owner: str
    request_id: str
    category: LibraryId
    person: LibraryId
    image_url: str
    person_name: str | None
    timestamp_ms: int

    @property
    def face_id(self) -> str:
        return derive_face_id(self.owner, self.category.key, self.person.key, self.request_id)

    @property
    def person_ref(self) -> tuple[str, str, str]:
        """What makes two commands touch the same person document."""
        return (self.owner, self.category.key, self.person.key)


# Every action is one of these; the message bus dispatches on the type.
Command = RegisterFace


@dataclass(frozen=True)
class Scope:
    """What a command reads or writes, which decides what it must wait for: commands of one
    person run in partition order; an exclusive command (one that reads or writes a whole
    library) waits for all of its user's earlier commands and holds back the later ones."""

    owner: str
    person: tuple[str, str, str] | None = None
    exclusive: bool = False

    @classmethod
    def of(cls, command: Command) -> Scope:
        return cls(owner=command.owner, person=command.person_ref)
