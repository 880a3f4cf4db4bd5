"""Settings of a service under test: its own topics, group and database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from service.settings import Settings
from tests.support import suite_kafka
from tests.support.image_server import ImageServer


def service_settings(
    kafka: str,
    topics: dict[str, str],
    deepface_home: Path,
    image_server: ImageServer,
    **overrides: Any,
) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka,
        **suite_kafka.service_overrides(),
        "commands_topic": topics["commands"],
        "results_topic": topics["results"],
        "events_topic": topics["events"],
        "kafka_group_id": f"service-{suffix}",
        # A real MongoDB when MONGODB_URI is set, in a database of this test's own.
        "mongodb_uri": os.environ.get("MONGODB_URI") or None,
        "mongodb_database": f"test_service_{suffix}",
        "deepface_home": deepface_home,
        "inference_workers": 1,
        "dlq_topic": topics["dlq"],
        "http_port": 0,  # many services run at once here; the health tests pick a port
        **image_server.fetch_settings(),
    }
    return Settings(**{**values, **overrides})
