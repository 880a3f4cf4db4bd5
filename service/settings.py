"""Every setting of the service, read from the environment in one place."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.adapters.face_embedder import EmbedderRuntime
from service.adapters.mtcnn_networks import DetectorRuntime

# The embedded broker answers some fetches (one in ten or more) only when their wait ends,
# even once records have arrived.
EMBEDDED_FETCH_MAX_WAIT_MS = 10

CommaList = Annotated[tuple[str, ...], NoDecode]
PortList = Annotated[tuple[int, ...], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses the embedded broker and the in-process store.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of the JSON log lines on stderr."
    )

    kafka_bootstrap_servers: str | None = Field(
        None,
        description="Kafka brokers, host:port[,host:port]. Unset: start the embedded broker.",
    )
    embedded_kafka_host: str = Field("127.0.0.1", description="Embedded broker address.")
    embedded_kafka_port: int = Field(9092, description="Embedded broker port.")
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of the topics the embedded broker creates."
    )
    kafka_enable_idempotence: bool | None = Field(
        None,
        description="Idempotent producer. Unset: on for a real Kafka, off for the embedded "
        "broker (it cannot do InitProducerId).",
    )
    kafka_fetch_max_wait_ms: int | None = Field(
        None,
        ge=1,
        description="Longest wait of a commands fetch with nothing to return. Unset: 10 for "
        "the embedded broker (measured: it answers some fetches only when their wait ends, "
        "even once records have arrived, which added about 100 ms per command), 500 "
        "(Kafka's default) for a real Kafka, which answers as soon as records arrive.",
    )
    kafka_group_id: str = Field("face-register", description="Consumer group of the service.")
    kafka_check_key_partition: bool = Field(
        True,
        description="Refuse a command record that is not on the partition its key maps to "
        "under Kafka's default (murmur2) partitioner (InvalidParameter.Partition). Off only "
        "when every producer partitions alike by key with another hash, or to replay records "
        "written before partitions were added to the commands topic.",
    )
    commands_topic: str = Field("face.register.commands", description="Commands topic.")
    results_topic: str = Field("face.register.results", description="Results topic.")
    events_topic: str = Field(
        "face.register.events",
        description="Face events (biometric: restrict access). Same partition count as commands.",
    )
    dlq_topic: str = Field(
        "face.register.dlq",
        description="Dead-letter topic: a copy of every record that is not a readable command.",
    )
    max_command_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=512 * 1024,
        description=(
            "Largest command record value; larger ones are refused. At most 524288: its URL "
            "and name travel in a face event, which must fit one Kafka record."
        ),
    )
    max_records_in_flight: int = Field(
        1000,
        ge=1,
        description="Most command records taken from Kafka and not yet answered (back-pressure). "
        "Queued commands are small; fetched images are bounded by MAX_IMAGES_IN_MEMORY.",
    )

    shutdown_deadline_s: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM, how long in-flight work may finish before it is abandoned "
        "(uncommitted, redone later). Keep it under the Kubernetes grace period.",
    )
    startup_timeout_s: float = Field(
        60.0,
        gt=0,
        description="How long start-up waits for Kafka, and for MongoDB when MONGODB_URI is "
        "set, to answer (retrying with doubling pauses) before it exits saying why. The models "
        "load only after that.",
    )

    mongodb_uri: SecretStr | None = Field(
        None, description="MongoDB URI. Unset: an in-process store that persists nothing."
    )
    mongodb_database: str = Field("faces", description="MongoDB database name.")

    system_category_ids: CommaList = Field(
        ("celebrity", "politician", "sensitive"),
        description="Comma-separated system library ids a user library must not reuse.",
    )
    rate_limit_per_second: int = Field(
        100, ge=1, description="RegisterCustomFace calls admitted per user per second."
    )
    unregister_rate_limit_per_second: int = Field(
        100, ge=1, description="UnregisterCustomFace calls admitted per user per second."
    )
    tag_rate_limit_per_second: int = Field(
        100, ge=1, description="TagCustomPerson calls admitted per user per second."
    )
    list_rate_limit_per_second: int = Field(
        100, ge=1, description="ListCustomPersons calls admitted per user per second."
    )
    search_rate_limit_per_second: int = Field(
        100, ge=1, description="SearchCustomFace calls admitted per user per second."
    )
    answer_retention_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="How long a ListCustomPersons or SearchCustomFace answer is kept, so that "
        "the command processed again (redelivery, replay) answers the same. It holds image "
        "URLs and names.",
    )
    embedded_face_keys_file: Path = Field(
        Path.home() / ".local" / "state" / "face-service" / "face-keys.sqlite",
        description="Without MONGODB_URI: the file of the faces' data keys, which the "
        "in-process store needs to rebuild itself from the face events after a restart. "
        "Emptied when the embedded broker starts empty.",
    )

    image_fetch_ports: PortList = Field(
        (80, 443), description="Comma-separated ports image URLs may use."
    )
    image_fetch_allowlist: CommaList = Field(
        (),
        description="Comma-separated CIDRs of internal image hosts that may be fetched from "
        "although not public. Empty: public addresses only.",
    )
    image_connect_timeout_s: float = Field(
        3.0, gt=0, description="Image fetch connect timeout, DNS included."
    )
    image_first_byte_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for the image server's response headers."
    )
    image_read_timeout_s: float = Field(
        5.0, gt=0, description="Longest silence between two chunks of the image."
    )
    image_total_timeout_s: float = Field(15.0, gt=0, description="Image fetch total timeout.")
    image_max_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest image in bytes.")
    image_max_pixels: int = Field(50_000_000, gt=0, description="Largest image in pixels.")
    max_images_in_memory: int = Field(
        8,
        ge=1,
        description="Registrations and searches under way at once (fetch, inference), which "
        "bounds the images in memory; the others wait in their queue.",
    )

    face_model: str = Field("Dlib", description="DeepFace recognition model.")
    face_detector: str = Field("mtcnn", description="DeepFace detector backend.")
    face_detect_max_side_px: int = Field(
        640,
        ge=0,
        description="Longest side of the scaled copies the face detector looks at. Large "
        "photos then cost about what a portrait does, and a face is found exactly as plain "
        "DeepFace finds it unless it is too small for those copies to show: under about 80 px "
        "in a 1920x1080 photo, 160 px at 12 MP (the refusal says so). 0: every scale.",
    )
    face_min_confidence: float = Field(
        0.9, ge=0, le=1, description="Detections below this confidence are not faces."
    )
    face_min_size_px: int = Field(
        64, ge=1, description="Shorter side of the smallest face box accepted, in pixels."
    )
    face_max_yaw_degrees: float = Field(30.0, gt=0, description="Largest head turn accepted.")
    face_max_roll_degrees: float = Field(30.0, gt=0, description="Largest head tilt accepted.")
    face_match_enabled: bool = Field(
        True, description="Refuse a face that matches none of the person's faces."
    )
    face_detector_runtime: DetectorRuntime = Field(
        "onnxruntime",
        description="What runs mtcnn's three networks: `onnxruntime`, graphs built from the "
        "mtcnn package's weight files (the least CPU, outputs within about 1e-6 of Keras', the "
        "same faces); `tensorflow`, the Keras models as TensorFlow graphs, bit for bit the "
        "eager output; `keras`, eager Keras as mtcnn runs it, the reference.",
    )
    face_embedder_runtime: EmbedderRuntime = Field(
        "onnxruntime",
        description="What runs the Dlib ResNet: `onnxruntime`, the network read from dlib's "
        "own weights file (about 8x less CPU, within 1e-6 of dlib), or `dlib`, dlib-bin itself "
        "as DeepFace calls it, the reference. Each face records the runtime that embedded it.",
    )
    face_match_max_distance: float = Field(
        0.6, gt=0, description="Largest euclidean distance at which two faces match (Dlib)."
    )
    inference_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Inference worker processes, each with its own models. Default: CPU count.",
    )
    deepface_home: Path = Field(
        Path.home() / ".cache" / "face-service",
        description="Where the model weights are placed for DeepFace ($DEEPFACE_HOME).",
    )

    http_host: str = Field("0.0.0.0", description="Address of the HTTP endpoints.")
    http_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics (Prometheus). 0: no HTTP endpoints.",
    )

    retry_attempts: int = Field(
        5, ge=1, description="Attempts at a transient failure before InternalError."
    )
    retry_base_delay_s: float = Field(0.2, ge=0, description="First retry delay; doubles.")

    @field_validator(
        "system_category_ids", "image_fetch_ports", "image_fetch_allowlist", mode="before"
    )
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("image_fetch_ports")
    @classmethod
    def _check_ports(cls, ports: tuple[int, ...]) -> tuple[int, ...]:
        if not ports or any(not 0 < port < 65536 for port in ports):
            raise ValueError("IMAGE_FETCH_PORTS must list ports from 1 to 65535")
        return ports

    @field_validator("image_fetch_allowlist")
    @classmethod
    def _check_cidrs(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"IMAGE_FETCH_ALLOWLIST: {cidr!r} is not a CIDR") from None
        return cidrs

    @model_validator(mode="after")
    def _refuse_embedded_parts_in_production(self) -> Settings:
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("KAFKA_BOOTSTRAP_SERVERS", self.kafka_bootstrap_servers),
                    ("MONGODB_URI", self.mongodb_uri),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"ENVIRONMENT=production needs {', '.join(missing)}")
        return self

    @property
    def rate_limits(self) -> dict[str, int]:
        """Calls per user per second, by action."""
        return {
            "RegisterCustomFace": self.rate_limit_per_second,
            "UnregisterCustomFace": self.unregister_rate_limit_per_second,
            "TagCustomPerson": self.tag_rate_limit_per_second,
            "ListCustomPersons": self.list_rate_limit_per_second,
            "SearchCustomFace": self.search_rate_limit_per_second,
        }

    @property
    def uses_embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def uses_embedded_store(self) -> bool:
        return self.mongodb_uri is None

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or (
            f"{self.embedded_kafka_host}:{self.embedded_kafka_port}"
        )

    @property
    def fetch_max_wait_ms(self) -> int:
        if self.kafka_fetch_max_wait_ms is not None:
            return self.kafka_fetch_max_wait_ms
        return EMBEDDED_FETCH_MAX_WAIT_MS if self.uses_embedded_kafka else 500

    @property
    def idempotent_producer(self) -> bool:
        if self.kafka_enable_idempotence is None:
            return not self.uses_embedded_kafka
        return self.kafka_enable_idempotence


def describe_settings() -> str:
    """A table of every setting for `--help` and the README."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = "CPU count" if field.default_factory else field.default
        if isinstance(default, tuple):
            default = ",".join(str(part) for part in default) or "empty"
        shown = "unset" if default is None else str(default)
        lines.append(f"  {name.upper():<28} {shown:<24} {field.description or ''}")
    return "\n".join(lines)
