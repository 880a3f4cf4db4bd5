"""The composition root: every adapter is built here from Settings, nowhere else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker

from service.adapters.embedded_kafka import EmbeddedKafka, ensure_topics
from service.adapters.image_fetcher import FetchLimits, HttpImageFetcher
from service.adapters.inference_pool import EngineConfig, InferencePool
from service.adapters.model_weights import place_weights
from service.adapters.mongo import open_database
from service.adapters.person_store import MongoPersonStore
from service.adapters.result_publisher import KafkaResultPublisher
from service.domain.faces import FacePolicy
from service.domain.ids import identity_key
from service.domain.limiter import UserRateLimiter
from service.domain.person import ModelProvenance
from service.entrypoints.consumer import subscribe_commands
from service.service_layer.batch import CommandBatchProcessor
from service.service_layer.intake import IncomingRecord
from service.service_layer.register import MatchPolicy, RegisterFaceHandler
from service.service_layer.retry import RetryPolicy
from service.settings import Settings

log = logging.getLogger("service")


class Service:
    """The register service: `running()` for tests and embedding, `app()` for the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = KafkaBroker(
            settings.bootstrap_servers,
            enable_idempotence=settings.idempotent_producer,
            client_id="face-register-service",
            logger=logging.getLogger("faststream"),
        )
        self._processor: CommandBatchProcessor | None = None
        # The database handle, once started: operators' tools and tests read it.
        self.database: Any = None
        self.inference: InferencePool | None = None
        subscribe_commands(self.broker, settings, self._process)

    async def _process(self, records: Sequence[IncomingRecord]) -> None:
        if self._processor is None:
            raise RuntimeError("a batch arrived before the service finished starting")
        await self._processor.process(records)

    @asynccontextmanager
    async def resources(self) -> AsyncIterator[None]:
        """Everything the consumer needs, started in order and closed in reverse."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            if settings.uses_embedded_kafka:
                embedded = EmbeddedKafka(settings.embedded_kafka_host, settings.embedded_kafka_port)
                stack.push_async_callback(embedded.stop)
                await embedded.start()
                await ensure_topics(
                    settings.bootstrap_servers,
                    (settings.commands_topic, settings.results_topic),
                    settings.kafka_topic_partitions,
                )
            uri = settings.mongodb_uri.get_secret_value() if settings.mongodb_uri else None
            client, database = open_database(uri, settings.mongodb_database)
            self.database = database
            stack.callback(client.close)
            if uri is None:
                log.warning("no MONGODB_URI: faces are kept in process memory and NOT persisted")
            store = MongoPersonStore(database)
            retry = RetryPolicy(settings.retry_attempts, settings.retry_base_delay_s)
            await retry.run(store.ensure_indexes)

            weights = place_weights(
                settings.deepface_home, settings.face_model, settings.face_detector
            )
            pool = InferencePool(
                EngineConfig(
                    model_name=settings.face_model,
                    detector_name=settings.face_detector,
                    policy=FacePolicy(
                        min_confidence=settings.face_min_confidence,
                        min_size_px=settings.face_min_size_px,
                        max_yaw_degrees=settings.face_max_yaw_degrees,
                        max_roll_degrees=settings.face_max_roll_degrees,
                    ),
                    max_pixels=settings.image_max_pixels,
                    deepface_home=str(settings.deepface_home),
                ),
                workers=settings.inference_workers,
            )
            self.inference = pool
            stack.push_async_callback(pool.close)
            await pool.start()
            fetcher = HttpImageFetcher(
                FetchLimits(
                    connect_timeout_s=settings.image_connect_timeout_s,
                    read_timeout_s=settings.image_read_timeout_s,
                    total_timeout_s=settings.image_total_timeout_s,
                    max_bytes=settings.image_max_bytes,
                )
            )
            stack.push_async_callback(fetcher.close)

            handler = RegisterFaceHandler(
                store=store,
                fetcher=fetcher,
                analyser=pool,
                provenance=ModelProvenance(
                    model=settings.face_model,
                    detector=settings.face_detector,
                    weights_sha256=weights.model_weights_sha256,
                ),
                match=MatchPolicy(settings.face_match_enabled, settings.face_match_max_distance),
                retry=retry,
                max_images_in_memory=settings.max_images_in_memory,
            )
            self._processor = CommandBatchProcessor(
                handler=handler,
                limiter=UserRateLimiter(settings.rate_limit_per_second),
                publisher=KafkaResultPublisher(self.broker, settings.results_topic),
                system_category_keys={identity_key(c) for c in settings.system_category_ids},
            )
            log.info(
                "service ready",
                extra={
                    "bootstrap_servers": settings.bootstrap_servers,
                    "commands_topic": settings.commands_topic,
                    "results_topic": settings.results_topic,
                    "model": settings.face_model,
                    "detector": settings.face_detector,
                },
            )
            yield
            self._processor = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        async with self.resources():
            await self.broker.start()
            try:
                yield self
            finally:
                await self.broker.stop()

    def app(self) -> FastStream:
        return FastStream(self.broker, lifespan=self.resources)
