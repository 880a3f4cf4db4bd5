"""The files in `schemas/` that other teams read, generated from the wire models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from service.contracts.messages import (
    CommandFailed,
    CommandMessage,
    FaceRegistered,
    FaceSecret,
    FacesUnregistered,
    ListCustomPersonsCommand,
    ListSucceeded,
    PersonTagged,
    PersonTextsSecret,
    RegisterCustomFaceCommand,
    RegisterSucceeded,
    SearchCustomFaceCommand,
    SearchSucceeded,
    TagCustomPersonCommand,
    TagSucceeded,
    UnregisterCustomFaceCommand,
    UnregisterSucceeded,
)
from service.settings import Settings

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"

# One schema file per message, named after its model: register-custom-face-command.schema.json.
SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    RegisterCustomFaceCommand,
    UnregisterCustomFaceCommand,
    TagCustomPersonCommand,
    ListCustomPersonsCommand,
    SearchCustomFaceCommand,
    RegisterSucceeded,
    UnregisterSucceeded,
    TagSucceeded,
    ListSucceeded,
    SearchSucceeded,
    CommandFailed,
    FaceRegistered,
    FaceSecret,
    PersonTextsSecret,
    FacesUnregistered,
    PersonTagged,
)
ASYNCAPI_FILE = "asyncapi.json"


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
        title=f"{_default('commands_topic')}:Command",
        description="Commands on the user's face library, told apart by `Action`: "
        "RegisterCustomFace (also when `Action` is absent), UnregisterCustomFace, "
        "TagCustomPerson, ListCustomPersons, SearchCustomFace. Key: the user (account) id, "
        "UTF-8.",
    )
    @broker.publisher(
        _default("results_topic"),
        title=f"{_default('results_topic')}:Result",
        description="Exactly one result per command, keyed like the command and carrying its "
        "RequestId: RegisterSucceeded, UnregisterSucceeded, TagSucceeded, ListSucceeded or "
        "SearchSucceeded, or CommandFailed whatever the action.",
        schema=RegisterSucceeded
        | UnregisterSucceeded
        | TagSucceeded
        | ListSucceeded
        | SearchSucceeded
        | CommandFailed,
    )
    @broker.publisher(
        _default("events_topic"),
        title=f"{_default('events_topic')}:FaceEvent",
        description="The library's change log, keyed by owner, with a `message-type` header "
        "naming the event: FaceRegistered, FacesUnregistered, PersonTagged. "
        "FaceRegistered's biometric fields (embedding, face box, image URL and hash: a "
        "FaceSecret, see face-secret.schema.json) are sealed with a data key of that face "
        "alone; unregistering the face destroys the key, which leaves every copy of them on "
        "the log unreadable. A person's name and description (a PersonTextsSecret) are "
        "sealed with keys destroyed when the person is unregistered. Library names and "
        "descriptions are in clear. Consumers dedupe by RequestId.",
        schema=FaceRegistered | FacesUnregistered | PersonTagged,
    )
    async def face_library(command: CommandMessage) -> None:
        return None

    return broker


def contract_asyncapi() -> AsyncAPI:
    """The AsyncAPI contract: what `schemas/asyncapi.json` holds and `/asyncapi` shows."""
    return AsyncAPI(
        _contract_broker(),
        title="Face library service",
        version="0.1.0",
        description="A user's custom face libraries over Kafka: register, unregister, tag "
        "and list persons and their faces, and search the libraries for the persons nearest "
        "to each face of an image. Commands in, one result per command out, and the "
        "library's changes as face events.",
    )


def schema_file_name(model: type[BaseModel]) -> str:
    """`FacesUnregistered` -> `faces-unregistered.schema.json`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", model.__name__).lower() + ".schema.json"


def build_documents() -> dict[str, Any]:
    documents: dict[str, Any] = {
        schema_file_name(model): model.model_json_schema() for model in SCHEMA_MODELS
    }
    documents[ASYNCAPI_FILE] = contract_asyncapi().to_specification().to_jsonable()
    return documents


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_documents(directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every document and delete the JSON files no model generates any more."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = build_documents()
    for name in _leftovers(directory, documents):
        (directory / name).unlink()
    written = []
    for name, document in documents.items():
        path = directory / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def stale_documents(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Names of the files that differ from what the models generate now, or that no model
    generates any more (a renamed message must not leave its old schema behind)."""
    documents = build_documents()
    stale = []
    for name, document in documents.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(document):
            stale.append(name)
    return stale + _leftovers(directory, documents)


def _leftovers(directory: Path, documents: dict[str, Any]) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.glob("*.json") if p.name not in documents)
