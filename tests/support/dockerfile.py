"""A Dockerfile as its instructions, grouped by build stage, enough to test what it declares."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT, CMD or RUN; None for the shell form."""
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(part, str) for part in parsed):
            return parsed
        return None


@dataclass(frozen=True)
class Stage:
    base: str  # the FROM image, build arguments substituted
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [step for step in self.instructions if step.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The one in effect: the last of its kind."""
        found = self.all(keyword)
        if not found:
            raise LookupError(f"no {keyword} in stage {self.name or self.base}")
        return found[-1]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, `KEY=value ...` form, later ones winning."""
        values: dict[str, str] = {}
        for step in self.all("ENV"):
            for pair in shlex.split(step.value):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


@dataclass(frozen=True)
class Dockerfile:
    build_args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def external_bases(self) -> list[str]:
        """FROM images that are not earlier stages of this file."""
        names = {stage.name for stage in self.stages}
        return [stage.base for stage in self.stages if stage.base not in names]


def parse(path: Path) -> Dockerfile:
    build_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, value in _logical_lines(path.read_text(encoding="utf-8")):
        if keyword == "ARG" and not stages:
            name, _, default = value.partition("=")
            build_args[name] = default
        elif keyword == "FROM":
            image, *name = re.split(r"\s+as\s+", _substitute(value, build_args), flags=re.I)
            stages.append(Stage(image.strip(), name[0].strip() if name else None, []))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, value))
    return Dockerfile(build_args, stages)


def _logical_lines(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, value = (pending + stripped).partition(" ")
        lines.append((keyword.upper(), value.strip()))
        pending = ""
    return lines


def _substitute(value: str, build_args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: build_args.get(match[1] or match[2], match[0]),
        value,
    )
