"""`face-service run` starting up as an operator sees it: Kafka and MongoDB first, the models
only once both answer, one line saying why when it cannot start, and "service ready" only
when it is."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from service.adapters.embedded_kafka import EmbeddedKafka
from tests.conftest import free_port
from tests.support.service_process import Exited, LogEntry, ServiceProcess, run_to_exit

EXIT_TIMEOUT_S = 60


@pytest_asyncio.fixture
async def tansu() -> AsyncIterator[EmbeddedKafka]:
    """A Kafka-compatible broker that answers InitProducerId with an error."""
    broker = EmbeddedKafka("127.0.0.1", free_port())
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def environment(deepface_home: Path, **settings: str) -> dict[str, str]:
    env = ServiceProcess.environment()
    env.pop("KAFKA_ENABLE_IDEMPOTENCE", None)  # its default, unless a test sets it
    env.update(DEEPFACE_HOME=str(deepface_home), **settings)
    return env


def messages(logs: list[LogEntry]) -> list[str]:
    return [entry["message"] for entry in logs]


def assert_one_line_says_why(exited: Exited) -> LogEntry:
    """Exit 1, the reason as the last line and the only error, no traceback, no warning."""
    assert exited.code == 1, exited.logs[-5:]
    assert exited.other_stderr == []
    assert not any("exception" in entry for entry in exited.logs)
    errors = [entry for entry in exited.logs if entry["level"] in ("ERROR", "CRITICAL")]
    assert errors == [exited.logs[-1]]
    assert "loading models" not in messages(exited.logs)
    return exited.logs[-1]


async def test_a_kafka_nobody_listens_on_ends_start_up_with_its_address_and_the_time_waited(
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    exited = await run_to_exit(
        environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=address, STARTUP_TIMEOUT_S="2"),
        "run",
        timeout_s=EXIT_TIMEOUT_S,
    )
    line = assert_one_line_says_why(exited)
    assert line["message"].startswith(f"cannot start: Kafka at {address} did not answer within 2 s")
    assert "Connect call failed" in line["message"]
    assert "STARTUP_TIMEOUT_S" in line["fix"]
    assert "Kafka does not answer yet" in messages(exited.logs)  # it waited, retrying


async def test_a_replay_waits_for_kafka_before_its_models_and_ends_with_one_line(
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    for extra in ([], ["--results-topic", "replayed"]):  # its consumer, then its producer
        exited = await run_to_exit(
            environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=address, STARTUP_TIMEOUT_S="2"),
            "replay",
            "--source",
            "commands",
            *extra,
            timeout_s=EXIT_TIMEOUT_S,
        )
        line = assert_one_line_says_why(exited)
        assert line["message"].startswith(f"cannot start: Kafka at {address} did not answer")
        assert "within 2 s" in line["message"], extra


async def test_a_broker_without_idempotent_producers_ends_start_up_naming_the_setting_to_change(
    tmp_path: Path, tansu: EmbeddedKafka
) -> None:
    exited = await run_to_exit(
        environment(tmp_path, KAFKA_BOOTSTRAP_SERVERS=tansu.bootstrap_servers),
        "run",
        timeout_s=EXIT_TIMEOUT_S,
    )
    line = assert_one_line_says_why(exited)
    refused = f"cannot start: the Kafka broker at {tansu.bootstrap_servers} refused InitProducerId"
    assert line["message"].startswith(refused)
    assert "KAFKA_ENABLE_IDEMPOTENCE=false" in line["fix"]


async def test_a_mongodb_nobody_listens_on_ends_start_up_naming_its_host_but_not_the_password(
    tmp_path: Path, tansu: EmbeddedKafka
) -> None:
    host = f"127.0.0.1:{free_port()}"
    exited = await run_to_exit(
        environment(
            tmp_path,
            KAFKA_BOOTSTRAP_SERVERS=tansu.bootstrap_servers,
            KAFKA_ENABLE_IDEMPOTENCE="false",
            MONGODB_URI=f"mongodb://face:s3cret-pw@{host}/faces",
            STARTUP_TIMEOUT_S="2",
        ),
        "run",
        timeout_s=EXIT_TIMEOUT_S,
    )
    line = assert_one_line_says_why(exited)
    assert line["message"] == f"cannot start: MongoDB at {host} did not answer within 2 s"
    assert "MONGODB_URI" in line["fix"] and "STARTUP_TIMEOUT_S" in line["fix"]
    assert not any("s3cret-pw" in str(entry) for entry in exited.logs)


async def test_a_mongodb_uri_the_driver_cannot_use_ends_start_up_without_its_password(
    tmp_path: Path, tansu: EmbeddedKafka
) -> None:
    exited = await run_to_exit(
        environment(
            tmp_path,
            KAFKA_BOOTSTRAP_SERVERS=tansu.bootstrap_servers,
            KAFKA_ENABLE_IDEMPOTENCE="false",
            MONGODB_URI="mongodb://face:s3cret-pw@db:not-a-port/faces",
        ),
        "run",
        timeout_s=EXIT_TIMEOUT_S,
    )
    line = assert_one_line_says_why(exited)
    assert line["message"].startswith("cannot start: MONGODB_URI cannot be used")
    assert not any("s3cret-pw" in str(entry) for entry in exited.logs)


async def test_an_http_port_in_use_ends_start_up_naming_the_setting(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        exited = await run_to_exit(
            environment(tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT=str(port)),
            "run",
            timeout_s=EXIT_TIMEOUT_S,
        )
    line = assert_one_line_says_why(exited)
    assert f"127.0.0.1:{port}" in line["message"] and "HTTP_PORT" in line["fix"]


async def test_help_works_whatever_the_environment_holds(tmp_path: Path) -> None:
    env = environment(tmp_path, ENVIRONMENT="production", IMAGE_FETCH_PORTS="not-a-port")
    top = await run_to_exit(env, "--help", timeout_s=EXIT_TIMEOUT_S)
    assert (top.code, top.logs, top.other_stderr) == (0, [], [])
    assert "STARTUP_TIMEOUT_S" in top.stdout and "ENVIRONMENT" in top.stdout
    for command in ("run", "register", "results", "replay", "schemas"):
        exited = await run_to_exit(env, command, "--help", timeout_s=EXIT_TIMEOUT_S)
        assert (exited.code, exited.other_stderr) == (0, []), command
        assert f"usage: face-service {command}" in exited.stdout


async def test_invalid_settings_end_each_command_with_one_line_naming_each_variable(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, IMAGE_FETCH_PORTS="not-a-port", RETRY_ATTEMPTS="0")
    for command in (["run"], ["replay", "--source", "events"], ["results"]):
        exited = await run_to_exit(env, *command, timeout_s=EXIT_TIMEOUT_S)

        assert (exited.code, exited.other_stderr) == (2, []), command
        [line] = exited.logs
        assert line["level"] == "ERROR" and line["message"].startswith("cannot start")
        assert "IMAGE_FETCH_PORTS" in line["message"] and "RETRY_ATTEMPTS" in line["message"]
        assert "--help" in line["fix"]


async def test_the_service_says_ready_once_when_its_models_are_warm_and_it_has_partitions(
    tmp_path: Path,
) -> None:
    service = ServiceProcess(
        environment(tmp_path, EMBEDDED_KAFKA_PORT=str(free_port()), INFERENCE_WORKERS="1")
    )
    try:
        await service.start()  # returns on "service ready"
        code = await service.terminate(timeout_s=EXIT_TIMEOUT_S)
    finally:
        await service.stop()
    said = messages(service.logs)
    assert said.count("service ready") == 1
    ready = said.index("service ready")
    assert said.index("loading models") < said.index("inference workers ready") < ready
    assert said.index("partitions assigned") < ready
    assert {"bootstrap_servers", "commands_topic", "model", "inference_workers"} <= set(
        service.logs[ready]
    )
    assert code == 0
    assert [entry for entry in service.logs if entry["level"] == "ERROR"] == []
