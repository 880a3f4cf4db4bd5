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
from collections.abc import Sequence
from datetime import datetime

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
        description="RegisterCustomFace over Kafka: DeepFace detection and embedding, "
        "persons with up to 10 faces in MongoDB.",
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

    register = commands.add_parser("register", help="produce one RegisterCustomFace command")
    _add_bootstrap(register)
    register.add_argument("--user", required=True, help="user (account) id: the record key")
    register.add_argument("--category-id", required=True)
    register.add_argument("--person-id", required=True)
    register.add_argument("--image-url", required=True)
    register.add_argument("--person-name")
    register.add_argument("--request-id", help="default: a new random RequestId")
    register.add_argument("--wait", action="store_true", help="wait for the result and print it")
    register.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits")
    register.set_defaults(run=_register)

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
    from service.bootstrap import Service
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


def _register(args: argparse.Namespace) -> int:
    from service.entrypoints.client import RegisterRequest, register

    if not _fill_from_settings(args):
        return 2
    request = RegisterRequest(
        user=args.user,
        category_id=args.category_id,
        person_id=args.person_id,
        image_url=args.image_url,
        person_name=args.person_name,
        request_id=args.request_id or str(uuid.uuid4()).upper(),
    )
    result = asyncio.run(
        register(
            args.bootstrap_servers,
            args.commands_topic,
            args.results_topic,
            request,
            wait_s=args.timeout if args.wait else None,
        )
    )
    print(json.dumps(result, ensure_ascii=False))  # noqa: T201
    if args.wait and result.get("Code"):
        return 1
    return 0


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
    from service.bootstrap import open_store
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
        async with open_store(settings) as (store, _database):
            if args.source == "events":
                counts = await replay_events(settings, store, progress)
            else:
                group = args.group_id or f"face-register-replay-{int(time.time())}"
                counts = await replay_commands(
                    settings,
                    store,
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
    except ReplayFailed as failure:
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
