"""The Compose topics job, run as written against Apache Kafka with Kafka's own tools."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support import apache_kafka, suite_kafka

pytestmark = pytest.mark.apache_kafka

TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
}


def topics_job() -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load(suite_kafka.COMPOSE_FILE.read_text())["services"]["topics"]
    return job


def kafka_bin(folder: Path) -> Path:
    """/opt/kafka/bin of the apache/kafka image: the same tool classes, from Maven Central."""
    folder.mkdir()
    for script, main_class in TOOLS.items():
        path = folder / script
        command = " ".join(
            shlex.quote(p) for p in apache_kafka.java(apache_kafka.classpath(), main_class)
        )
        path.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


async def run_job(job: dict[str, Any], bin_folder: Path, bootstrap: str) -> tuple[int, str]:
    # Compose writes a literal $ as $$; the job reaches the broker as kafka:9092.
    script = job["command"][0].replace("$$", "$")
    script = script.replace("/opt/kafka/bin/", f"{bin_folder}/").replace("kafka:9092", bootstrap)
    shell, *flags = job["entrypoint"]
    process = await asyncio.create_subprocess_exec(
        shell,
        *flags,
        script,
        env={**os.environ, **{k: str(v) for k, v in job["environment"].items()}},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def describe(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str, str]]:
    """Per topic: its partition count, message.timestamp.type and retention.ms."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = await admin.describe_topics(names)
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in topics}
    settings: dict[str, dict[str, str]] = {}
    for response in configs:
        for _code, _message, _type, name, entries in response.resources:
            settings[name] = {key: value for key, value, *_ in entries}
    return {
        name: (
            partitions[name],
            settings[name]["message.timestamp.type"],
            settings[name]["retention.ms"],
        )
        for name in names
    }


async def test_the_compose_topics_job_creates_the_topics_the_service_expects(
    kafka: str, tmp_path: Path
) -> None:
    job = topics_job()
    names = job["environment"]["TOPICS"].split()
    partitions = int(job["environment"]["PARTITIONS"])

    code, output = await run_job(job, kafka_bin(tmp_path / "bin"), kafka)

    assert code == 0, output
    week = str(7 * 24 * 3600 * 1000)  # Kafka's default retention
    assert await describe(kafka, names) == {
        "face.register.commands": (partitions, "LogAppendTime", week),
        "face.register.results": (partitions, "CreateTime", week),
        "face.register.events": (partitions, "CreateTime", "-1"),
        "face.register.dlq": (partitions, "CreateTime", week),
    }
    # Run again, as Compose does on every `up`: the topics are left as they are.
    code, output = await run_job(job, tmp_path / "bin", kafka)
    assert code == 0, output


async def test_the_suites_topics_are_made_as_the_compose_job_makes_them(
    kafka: str, topics: dict[str, str]
) -> None:
    described = await describe(kafka, list(topics.values()))

    week = str(7 * 24 * 3600 * 1000)
    assert described == {
        topics["commands"]: (suite_kafka.deploy_partitions(), "LogAppendTime", week),
        topics["results"]: (suite_kafka.deploy_partitions(), "CreateTime", week),
        topics["events"]: (suite_kafka.deploy_partitions(), "CreateTime", "-1"),
        topics["dlq"]: (suite_kafka.deploy_partitions(), "CreateTime", week),
    }
