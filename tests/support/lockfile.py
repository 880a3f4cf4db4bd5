"""docker/requirements.lock as entries: name, version, hashes, and what pulled each one in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
_VIA_INLINE = re.compile(r"^\s+# via (?P<who>.+)$")
_VIA_ITEM = re.compile(r"^\s+#\s{3}(?P<who>.+)$")


@dataclass
class Entry:
    name: str  # canonical
    version: str
    hashes: int = 0
    via: list[str] = field(default_factory=list)  # requirers' canonical names, or a source


def parse(path: Path) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if pin := _PIN.match(line):
            current = Entry(canonicalize_name(pin["name"]), pin["version"])
            entries[current.name] = current
        elif current is None:
            continue
        elif _HASH.search(line):
            current.hashes += 1
        elif via := _VIA_INLINE.match(line) or _VIA_ITEM.match(line):
            current.via.append(_requirer(via["who"]))
    return entries


def _requirer(text: str) -> str:
    # "face-register-service (pyproject.toml)" and "-c <constraints>" are sources, kept whole.
    if text.startswith("-") or "(" in text:
        return text
    return canonicalize_name(text)
