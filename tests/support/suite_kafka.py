"""Which Kafka the suite runs on, and the topics its services use.

`TEST_KAFKA=apache` (the default, and CI's) runs every Kafka test against Apache Kafka 4.1
(`tests/support/apache_kafka.py`), with the service's production settings: idempotent
producer on, Kafka's fetch wait, the commands topic on LogAppendTime, the partition count
of the deploy files. `TEST_KAFKA=tansu` runs them on the embedded Tansu broker, for a
machine without Java; there the service needs its embedded-broker settings.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Literal

import yaml

from service.adapters.embedded_kafka import ensure_topics
from service.settings import EMBEDDED_FETCH_MAX_WAIT_MS

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"

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
        # Tansu answers some fetches only when their wait ends.
        "kafka_fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS,
    }


def service_env() -> dict[str, str]:
    """`service_overrides` as the environment of a `face-service run` process."""
    return {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in service_overrides().items()
    }


def client_fetch_max_wait_ms() -> int:
    # Tansu answers some fetches only when their wait ends; Kafka as soon as records arrive.
    return 500 if on_apache() else EMBEDDED_FETCH_MAX_WAIT_MS


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
    configs: dict[str, dict[str, str]] = {}
    if "commands" in topics and commands_log_append_time:
        configs[topics["commands"]] = {"message.timestamp.type": "LogAppendTime"}
    if "events" in topics:
        configs[topics["events"]] = {"retention.ms": "-1"}
    await ensure_topics(bootstrap, list(topics.values()), deploy_partitions(), configs)
    return topics
