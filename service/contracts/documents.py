"""The files in `schemas/` that other teams read, generated from the wire models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from service.contracts.messages import (
    FaceRegistered,
    RegisterCustomFaceCommand,
    RegisterFailed,
    RegisterSucceeded,
)
from service.settings import Settings

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


def _default(name: str) -> str:
    # The documents describe the defaults, whatever the environment running the export.
    return str(Settings.model_fields[name].default)


def _contract_broker() -> KafkaBroker:
    """A broker that is never started: it only describes the topics for AsyncAPI.

    The live consumer decodes raw records itself (a poison record must not fail a batch),
    so its handler has no typed body for FastStream to document.
    """
    broker = KafkaBroker("kafka:9092", description="Kafka cluster of the deployment")

    @broker.subscriber(
        _default("commands_topic"),
        title=f"{_default('commands_topic')}:RegisterCustomFace",
        description="RegisterCustomFace commands. Key: the user (account) id, UTF-8.",
    )
    @broker.publisher(
        _default("results_topic"),
        title=f"{_default('results_topic')}:Result",
        description="One result per command, keyed like the command: RegisterSucceeded or "
        "RegisterFailed.",
        schema=RegisterSucceeded | RegisterFailed,
    )
    @broker.publisher(
        _default("events_topic"),
        title=f"{_default('events_topic')}:FaceRegistered",
        description="Every face added to a person, keyed by owner: the library's change log. "
        "Holds embeddings (biometric data): restrict access.",
        schema=FaceRegistered,
    )
    async def register_custom_face(command: RegisterCustomFaceCommand) -> None:
        return None

    return broker


def contract_asyncapi() -> AsyncAPI:
    """The AsyncAPI contract: what `schemas/asyncapi.json` holds and `/asyncapi` shows."""
    return AsyncAPI(
        _contract_broker(),
        title="Face registration service",
        version="0.1.0",
        description="RegisterCustomFace over Kafka: commands in, one result per command out.",
    )


def build_documents() -> dict[str, Any]:
    return {
        "register-custom-face-command.schema.json": RegisterCustomFaceCommand.model_json_schema(),
        "register-succeeded.schema.json": RegisterSucceeded.model_json_schema(),
        "register-failed.schema.json": RegisterFailed.model_json_schema(),
        "face-registered.schema.json": FaceRegistered.model_json_schema(),
        "asyncapi.json": contract_asyncapi().to_specification().to_jsonable(),
    }


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_documents(directory: Path = SCHEMAS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in build_documents().items():
        path = directory / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def stale_documents(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Names of the files that differ from what the models generate now."""
    stale = []
    for name, document in build_documents().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(document):
            stale.append(name)
    return stale
