"""Which Kafka the suite runs on, and the topics its services use.

`TEST_KAFKA=apache` (the default, and CI's) runs every Kafka test against Apache Kafka 4.1
(`tests/support/apache_kafka.py`), with the service's production settings: idempotent
producer on, Kafka's fetch wait, the commands topic on LogAppendTime, the partition count
of the deploy files. `TEST_KAFKA=tansu` runs them on the embedded Tansu broker, for a
machine without Java; there the service needs its embedded-broker settings.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any, Literal

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"
TOPIC_ALREADY_EXISTS = 36

Kind = Literal["apache", "tansu"]


def kind() -> Kind:
    chosen = os.environ.get("TEST_KAFKA", "apache").strip().lower()
    if chosen not in ("apache", "tansu"):
        raise ValueError(f"TEST_KAFKA must be apache or tansu, not {chosen!r}")
    return "apache" if chosen == "apache" else "tansu"


def on_apache() -> bool:
    return kind() == "apache"


def service_overrides() -> dict[str, Any]:
    """Settings a service under test needs on this broker, beyond its defaults."""
    if on_apache():
        return {}  # a real Kafka: the service's own defaults are the production ones
    return {
        "kafka_enable_idempotence": False,  # Tansu cannot do InitProducerId
        "kafka_fetch_max_wait_ms": 10,  # Tansu holds a fetch for its whole wait
    }


def service_env() -> dict[str, str]:
    """`service_overrides` as the environment of a `face-service run` process."""
    return {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in service_overrides().items()
    }


def client_fetch_max_wait_ms() -> int:
    # Tansu holds a fetch for its whole wait; Kafka answers as soon as records arrive.
    return 500 if on_apache() else 10


def deploy_partitions() -> int:
    """The partition count the Compose topics job gives every topic."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return int(compose["services"]["topics"]["environment"]["PARTITIONS"])


def topic_names(*roles: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {role: f"{role}-{suffix}" for role in roles or ("commands", "results", "events", "dlq")}


async def create_topics(
    bootstrap: str, topics: dict[str, str], *, commands_log_append_time: bool = True
) -> dict[str, str]:
    """The topics as production has them: the deploy files' partition count, the commands
    topic stamped by the broker, the face events never expired. A test that forges the
    call times the limiter judges passes `commands_log_append_time=False`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = []
        for role, name in topics.items():
            configs = {}
            if role == "commands" and commands_log_append_time:
                configs["message.timestamp.type"] = "LogAppendTime"
            if role == "events":
                configs["retention.ms"] = "-1"
            new.append(NewTopic(name, deploy_partitions(), 1, topic_configs=configs))
        response = await admin.create_topics(new)
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name} failed: {code} {message}")
        await _until_served(admin, list(topics.values()))
    finally:
        await admin.close()
    return topics


async def _until_served(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30
) -> None:
    """Kafka answers CreateTopics before every partition has a leader (Tansu does not):
    a client that looks the topic up at once would find no partitions."""
    async with asyncio.timeout(timeout_s):
        while True:
            described = await admin.describe_topics(names)
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == deploy_partitions()
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.05)  # metadata has no change notification to wait on
