"""`face-service`: run the service, or act as a client of it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.contracts.messages import (
    ACTIONS,
    CommandMessage,
    ListCustomPersonsCommand,
    RegisterCustomFaceCommand,
    SearchCustomFaceCommand,
    TagCustomPersonCommand,
    UnregisterCustomFaceCommand,
)
from service.service_layer.startup import StartupFailed
from service.settings import Settings, describe_settings

_SETTINGS_HELP = "settings (environment variables):\n" + describe_settings()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="face-service",
        # Raw formatting keeps the settings list readable: the lines are broken here.
        description="A face library over Kafka: register, unregister, tag, list and search the\n"
        "persons of a user's custom libraries (RegisterCustomFace, UnregisterCustomFace,\n"
        "TagCustomPerson, ListCustomPersons, SearchCustomFace). DeepFace detection and\n"
        "embedding, persons with up to 10 faces in MongoDB.",
        epilog=_SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the service (embedded broker and store when none is configured)",
        epilog=_SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(run=_run)

    for spec in _COMMANDS:
        _add_command(commands, spec)

    results = commands.add_parser("results", help="follow the results topic, one JSON per line")
    _add_bootstrap(results)
    results.add_argument("--from-beginning", action="store_true")
    results.set_defaults(run=_results)

    replay = commands.add_parser(
        "replay",
        help="rebuild or backfill the configured store (MONGODB_URI) from the log",
        description="--source events applies the face events: no fetch, no inference. "
        "--source commands processes the commands again with a consumer group of its own "
        "(after a model change, say); by default it publishes nothing to live topics.",
    )
    replay.add_argument("--source", choices=("commands", "events"), required=True)
    start = replay.add_mutually_exclusive_group()
    start.add_argument("--since", type=datetime.fromisoformat, help="ISO time (commands)")
    start.add_argument(
        "--offsets", type=_offsets, help="partition:offset,... to start from (commands)"
    )
    replay.add_argument("--results-topic", help="publish replayed results here (commands)")
    replay.add_argument("--events-topic", help="publish replayed face events here (commands)")
    replay.add_argument("--group-id", help="default: face-register-replay-<time>")
    replay.set_defaults(run=_replay)

    schemas = commands.add_parser("schemas", help="write or check the files in schemas/")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.set_defaults(run=_schemas)
    return parser


def _add_bootstrap(command: argparse.ArgumentParser) -> None:
    # Defaults come from the settings when the command runs, not here: --help works
    # whatever the environment holds.
    command.add_argument(
        "--bootstrap-servers",
        help="default: KAFKA_BOOTSTRAP_SERVERS, else the embedded broker's address",
    )
    command.add_argument("--commands-topic", help=_setting_default("commands_topic"))
    command.add_argument("--results-topic", help=_setting_default("results_topic"))


@dataclass(frozen=True)
class _Option:
    """A command line option that sets one field of the command body."""

    flag: str
    field: str
    required: bool = False
    type: Callable[[str], Any] = str
    repeated: bool = False  # the flag may be given again; the field is the list of them


@dataclass(frozen=True)
class _CommandSpec:
    """A subcommand that produces one command of `model`."""

    name: str
    model: type[CommandMessage]
    description: str
    options: tuple[_Option, ...]

    @property
    def action(self) -> str:
        return _ACTION_OF[self.model]


_ACTION_OF = {model: action for action, model in ACTIONS.items()}


_COMMANDS = (
    _CommandSpec(
        "register",
        RegisterCustomFaceCommand,
        "Register one face image for a person of a custom library.",
        (
            _Option("--category-id", "CategoryId", required=True),
            _Option("--person-id", "PersonId", required=True),
            _Option("--image-url", "ImageUrl", required=True),
            _Option("--person-name", "PersonName"),
            _Option("--duplicate-person-max-distance", "DuplicatePersonMaxDistance", type=float),
        ),
    ),
    _CommandSpec(
        "unregister",
        UnregisterCustomFaceCommand,
        "Remove faces, in one of three forms: --face-id FACE_ID removes that face; "
        "--face-id ALL every face of the person; --person-id ALL --face-id ALL every person "
        "of the library. A person left without faces is removed, and a library left "
        "without persons.",
        (
            _Option("--category-id", "CategoryId", required=True),
            _Option("--person-id", "PersonId", required=True),
            _Option("--face-id", "FaceId", required=True),
        ),
    ),
    _CommandSpec(
        "tag",
        TagCustomPersonCommand,
        "Name or describe a person and its library; give at least one of the four texts. "
        'An option left out leaves its value unchanged; given as "" it clears it.',
        (
            _Option("--category-id", "CategoryId", required=True),
            _Option("--person-id", "PersonId", required=True),
            _Option("--category-name", "CategoryName"),
            _Option("--category-description", "CategoryDescription"),
            _Option("--person-name", "PersonName"),
            _Option("--person-description", "PersonDescription"),
        ),
    ),
    _CommandSpec(
        "list",
        ListCustomPersonsCommand,
        "Page through the user's libraries, their persons and faces. With --wait, pass the "
        "result's NextToken as --next-token for the next page.",
        (
            _Option("--category-id", "CategoryId"),
            _Option("--person-id", "PersonId"),
            _Option("--max-results", "MaxResults", type=int),
            _Option("--next-token", "NextToken"),
        ),
    ),
    _CommandSpec(
        "search",
        SearchCustomFaceCommand,
        "Find the persons of the libraries given (--category-id, once per library) whose "
        "faces are nearest to each face of an image: per face, one match per person (its "
        "nearest face), nearest first.",
        (
            _Option("--category-id", "CategoryIds", required=True, repeated=True),
            _Option("--image-url", "ImageUrl", required=True),
            _Option("--max-faces", "MaxFaces", type=int),
            _Option("--limit", "Limit", type=int),
            _Option("--max-distance", "MaxDistance", type=float),
        ),
    ),
)


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], spec: _CommandSpec
) -> None:
    command = commands.add_parser(
        spec.name, help=f"produce one {spec.action} command", description=spec.description
    )
    _add_bootstrap(command)
    command.add_argument("--user", required=True, help="user (account) id: the record key")
    for option in spec.options:
        command.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.flag.removeprefix("--").replace("-", "_").upper(),
            required=option.required,
            type=option.type,
            action="append" if option.repeated else "store",
            help=_field_help(spec.model, option.field, option.repeated),
        )
    command.add_argument("--request-id", help="default: a new random RequestId")
    command.add_argument("--wait", action="store_true", help="wait for the result and print it")
    command.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")
    command.set_defaults(run=_send, spec=spec)


def _field_help(model: type[CommandMessage], field: str, repeated: bool = False) -> str | None:
    # The wire model's description, so --help and the schema files cannot disagree.
    info = model.model_fields[field]
    text = info.description
    if text is not None and not info.is_required() and info.default is not None:
        text += f" Default: {info.default}."
    if text is not None and repeated:
        text += " Give the option once for each."
    return None if text is None else text.replace("%", "%%")


def command_body(args: argparse.Namespace) -> dict[str, Any]:
    """The command the parsed options describe: only the fields given, and a RequestId."""
    spec: _CommandSpec = args.spec
    body: dict[str, Any] = {
        "RequestId": str(uuid.uuid4()).upper() if args.request_id is None else args.request_id,
        "Action": spec.action,
    }
    for option in spec.options:
        if (value := getattr(args, option.field)) is not None:
            body[option.field] = value
    return body


def _invalid_body(spec: _CommandSpec, body: dict[str, Any]) -> str | None:
    """None when `body` is a valid command, else one line naming each field at fault."""
    from pydantic import ValidationError

    try:
        spec.model.model_validate(body)
    except ValidationError as error:
        flags = {option.field: option.flag for option in spec.options}
        flags["RequestId"] = "--request-id"
        return "; ".join(_named(flags, e["loc"], e["msg"]) for e in error.errors())
    return None


def _named(flags: dict[str, str], loc: tuple[int | str, ...], message: str) -> str:
    # Named by the option the user typed, and by the field the service would name.
    if not loc:
        return message  # a rule across fields
    field = str(loc[0])
    return f"{flags[field]} ({field}): {message}" if field in flags else f"{field}: {message}"


def _setting_default(name: str) -> str:
    return f"default: {name.upper()}, else {Settings.model_fields[name].default}"


def _fill_from_settings(args: argparse.Namespace) -> bool:
    """The Kafka options not given on the command line, from the settings; False (after
    one line naming the invalid variables) when the settings are needed and invalid."""
    options = ("bootstrap_servers", "commands_topic", "results_topic")
    if any(getattr(args, option) is None for option in options):
        settings = _settings_or_none()
        if settings is None:
            return False
        for option in options:
            if getattr(args, option) is None:
                setattr(args, option, getattr(settings, option))
    return True


def _run(_args: argparse.Namespace) -> int:
    from service.entrypoints.service_app import Service
    from service.logs import configure_logging

    settings = _settings_or_none()
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    try:
        asyncio.run(Service(settings).app().run())
    except StartupFailed as failure:
        _log_startup_failure(failure)
        return 1
    return 0


def _settings_or_none() -> Settings | None:
    """The settings, or None after one JSON line naming each invalid variable."""
    from pydantic import ValidationError

    from service.logs import configure_logging

    try:
        return Settings()
    except ValidationError as error:
        configure_logging("INFO")
        problems = "; ".join(
            f"{str(e['loc'][0]).upper() if e['loc'] else 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        logging.getLogger("service").error(
            f"cannot start: invalid settings: {problems}",
            extra={"fix": "correct the variables named; face-service --help lists them all"},
        )
        return None


def _log_startup_failure(failure: StartupFailed) -> None:
    logging.getLogger("service").error(f"cannot start: {failure.cause}", extra={"fix": failure.fix})


def _send(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from service.entrypoints.client import CommandRequest, send_command

    body = command_body(args)
    # Checked before any setting or broker is touched: an invalid command is never produced.
    if (problem := _invalid_body(args.spec, body)) is not None:
        print(f"face-service {args.command}: invalid command: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    if not _fill_from_settings(args):
        return 2
    try:
        result = asyncio.run(
            send_command(
                args.bootstrap_servers,
                args.commands_topic,
                args.results_topic,
                CommandRequest(user=args.user, body=body),
                wait_s=args.timeout if args.wait else None,
            )
        )
    except TimeoutError:
        print(  # noqa: T201
            f"face-service {args.command}: gave up waiting for the result of RequestId "
            f"{body['RequestId']} on {args.results_topic} (--timeout {args.timeout:g})",
            file=sys.stderr,
        )
        return 1
    except KafkaError as error:
        print(  # noqa: T201
            f"face-service {args.command}: Kafka at {args.bootstrap_servers} failed: {error} "
            "(check --bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(result, ensure_ascii=False))  # noqa: T201
    return 1 if args.wait and result.get("Code") else 0


def _results(args: argparse.Namespace) -> int:
    from service.entrypoints.client import follow_results

    if not _fill_from_settings(args):
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow_results(args.bootstrap_servers, args.results_topic, args.from_beginning))
    return 0


def _offsets(text: str) -> dict[int, int]:
    try:
        pairs = (part.split(":") for part in text.split(",") if part)
        return {int(partition): int(offset) for partition, offset in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError("expected partition:offset[,partition:offset]") from None


def _replay(args: argparse.Namespace) -> int:
    from service.adapters.event_log import UnreadableEvent
    from service.adapters.sealing import SealBroken
    from service.dependencies import open_store
    from service.entrypoints.replay import (
        Progress,
        ReplayFailed,
        StartAt,
        replay_commands,
        replay_events,
    )
    from service.logs import configure_logging

    settings = _settings_or_none()
    if settings is None:
        return 2
    configure_logging("WARNING")

    async def run() -> dict[str, int]:
        progress = Progress(total=None)
        async with open_store(settings) as (stores, _database):
            if args.source == "events":
                counts = await replay_events(settings, stores, progress)
            else:
                group = args.group_id or f"face-register-replay-{int(time.time())}"
                counts = await replay_commands(
                    settings,
                    stores,
                    StartAt(since=args.since, offsets=args.offsets),
                    group,
                    results_topic=args.results_topic,
                    events_topic=args.events_topic,
                    progress=progress,
                )
        progress.finish()
        return dict(counts)

    try:
        summary = asyncio.run(run())
    except StartupFailed as failure:
        _log_startup_failure(failure)
        return 1
    except (ReplayFailed, UnreadableEvent, SealBroken) as failure:
        logging.getLogger("service").error(f"replay incomplete: {failure}")
        return 1
    print(json.dumps({"source": args.source, "outcomes": summary}))  # noqa: T201
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from service.contracts.documents import stale_documents, write_documents

    if args.check:
        stale = stale_documents()
        for name in stale:
            print(f"stale: schemas/{name} (run `make schemas`)", file=sys.stderr)  # noqa: T201
        return 1 if stale else 0
    for path in write_documents():
        print(f"wrote {path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
