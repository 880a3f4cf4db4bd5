"""The running service: the command subscription, partition assignments, readiness, and
the order in which everything starts and stops."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from service.adapters.dead_letters import KafkaDeadLetters
from service.adapters.embedded_kafka import EmbeddedKafka, ensure_topics
from service.adapters.event_log import UnreadableEvent, read_face_events
from service.adapters.face_keys import FileFaceKeys
from service.adapters.inference_pool import InferencePool
from service.adapters.result_publisher import KafkaJsonPublisher
from service.adapters.sealing import SealBroken
from service.bootstrap import open_pipeline, retry_policy
from service.dependencies import open_store, wait_for_kafka
from service.entrypoints.command_flow import CommandFlow, Commit
from service.entrypoints.consumer import CommandPartitions, subscribe_commands
from service.entrypoints.http_endpoints import HttpEndpoints
from service.metrics import LiveCounts, service_registry
from service.service_layer.intake import IncomingRecord
from service.service_layer.ports import PersonStore, Stores
from service.service_layer.restore import apply_face_events
from service.service_layer.startup import StartupFailed
from service.settings import Settings

log = logging.getLogger("service")

_PROBE_TIMEOUT_S = 1.0


class Service:
    """The register service: `running()` for tests and embedding, `app()` for the CLI."""

    def __init__(
        self,
        settings: Settings,
        wrap_store: Callable[[PersonStore], PersonStore] | None = None,
    ) -> None:
        """`wrap_store` lets a test put faults between the service and its store."""
        self.settings = settings
        self._wrap_store = wrap_store or (lambda store: store)
        self._commands: CommandFlow | None = None
        self._joined = False  # the consumer has had its first partition assignment
        self._unrebuilt: str | None = None  # why the in-process store could not be rebuilt
        # Once started, for operators' tools and tests.
        self.stores: Stores | None = None
        self.database: Any = None
        self.inference: InferencePool | None = None
        # One registry per service: ours, and FastStream's broker metrics (recorded by the
        # middleware, so it exists before the broker; it reads the state above).
        self.metrics = service_registry(LiveCounts(self._in_flight, self._worker_restarts))
        self.broker = KafkaBroker(
            settings.bootstrap_servers,
            enable_idempotence=settings.idempotent_producer,
            client_id="face-register-service",
            logger=logging.getLogger("faststream"),
            middlewares=[
                KafkaPrometheusMiddleware(registry=self.metrics, app_name="face-register-service")
            ],
            # The records under way are drained before the broker stops (see `_drain`);
            # this only bounds a poll being handed over at that moment.
            graceful_timeout=settings.shutdown_deadline_s,
        )
        partitions = CommandPartitions(
            settings.commands_topic, self._partitions_assigned, self._partitions_revoked
        )
        subscribe_commands(self.broker, settings, self._take, partitions)

    async def _take(self, records: Sequence[IncomingRecord], commit: Commit) -> None:
        if self._commands is None:
            raise RuntimeError("a batch arrived before the service finished starting")
        if self._unrebuilt is not None:
            # Commands run against a store missing part of its library could bring back
            # an erased face: none is taken (nor committed) until an operator steps in.
            await asyncio.Event().wait()
        await self._commands.take(records, commit)

    async def _partitions_assigned(self, partitions: set[int]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(partitions)})
        if self._commands is not None:
            self._commands.assigned(partitions)
        if not self._joined:
            # Readiness turns true here: the producer was connected before the models
            # loaded, and the consumer starts only once they are warm.
            self._joined = True
            self._log_ready()
            # What starting made (modules, clients, settings) lives as long as the process:
            # out of the collector's scans, a burst of commands no longer pauses for full
            # collections over it (500 queued: a throttled answer in 50-90 ms, not 150).
            gc.collect()
            gc.freeze()
        if self.settings.uses_embedded_store and self.stores is not None and partitions:
            # The in-process store holds only what this process saw: before consuming a
            # partition's commands, it takes in that partition's faces from the events.
            try:
                restored = await apply_face_events(
                    read_face_events(
                        self.settings.bootstrap_servers, self.settings.events_topic, partitions
                    ),
                    self.stores,
                    retry_policy(self.settings),
                )
            except (UnreadableEvent, SealBroken) as error:
                self._unrebuilt = str(error)
                log.error(
                    "cannot rebuild the store from the face events: no command is taken",
                    extra={
                        "error": self._unrebuilt,
                        "fix": "the events topic holds an event this version cannot read; "
                        "empty the topics (restart the embedded broker) or run a version "
                        "that wrote them",
                    },
                )
                return
            log.info(
                "store rebuilt from face events",
                extra={"partitions": sorted(partitions), "events": dict(restored)},
            )

    def _log_ready(self) -> None:
        settings = self.settings
        log.info(
            "service ready",
            extra={
                "bootstrap_servers": settings.bootstrap_servers,
                "commands_topic": settings.commands_topic,
                "results_topic": settings.results_topic,
                "events_topic": settings.events_topic,
                "model": settings.face_model,
                "detector": settings.face_detector,
                "inference_workers": settings.inference_workers,
            },
        )

    async def _partitions_revoked(self, partitions: set[int]) -> None:
        if self._commands is not None:
            await self._commands.revoked(partitions)

    def _in_flight(self) -> int:
        return self._commands.in_flight() if self._commands is not None else 0

    def _worker_restarts(self) -> int:
        return self.inference.restarts if self.inference is not None else 0

    async def _drain(self) -> None:
        """Before the broker stops: the records under way finish and are committed."""
        if self._commands is not None:
            await self._commands.close(self.settings.shutdown_deadline_s)

    async def readiness(self) -> dict[str, bool]:
        """Ready means: models warm in a live worker, in the consumer group, broker and
        database answering."""
        inference = self.inference
        checks = {
            # Workers that died and cannot start again (memory, a damaged model file)
            # leave every registration failing: an operator must see it.
            "models": self._commands is not None
            and inference is not None
            and inference.workers_ready(),
            "consumer": self._joined,
            "kafka": await self.broker.ping(timeout=_PROBE_TIMEOUT_S),
        }
        if self.settings.uses_embedded_store:
            checks["store"] = self._unrebuilt is None
        else:
            checks["mongodb"] = await self._mongodb_answers()
        return checks

    async def _mongodb_answers(self) -> bool:
        if self.database is None:
            return False
        try:
            await asyncio.wait_for(self.database.command("ping"), _PROBE_TIMEOUT_S)
        except Exception:
            return False
        return True

    @asynccontextmanager
    async def resources(self) -> AsyncIterator[None]:
        """Everything the consumer needs, started in order and closed in reverse."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            if settings.http_port:
                # First, so liveness answers while the models load (readiness says not yet).
                http = HttpEndpoints(
                    settings.http_host, settings.http_port, self.readiness, self.metrics
                )
                try:
                    await http.start()
                except OSError as error:
                    raise StartupFailed(
                        f"cannot listen on {settings.http_host}:{settings.http_port}: "
                        f"{error.strerror or error}",
                        "set HTTP_PORT to a free port (0 turns the endpoints off), or HTTP_HOST "
                        "to an address of this host",
                    ) from error
                stack.push_async_callback(http.close)
            if settings.uses_embedded_kafka:
                embedded = EmbeddedKafka(settings.embedded_kafka_host, settings.embedded_kafka_port)
                stack.push_async_callback(embedded.stop)
                if await embedded.start() and settings.uses_embedded_store:
                    # Its topics start empty: the keys of the faces on the old ones go.
                    FileFaceKeys.reset(settings.embedded_face_keys_file).close()
                await ensure_topics(
                    settings.bootstrap_servers,
                    (
                        settings.commands_topic,
                        settings.results_topic,
                        settings.events_topic,
                        settings.dlq_topic,
                    ),
                    settings.kafka_topic_partitions,
                )
            # Kafka and MongoDB answer before the models load, or start-up says why not.
            await wait_for_kafka(self.broker, settings)
            stack.push_async_callback(self.broker.stop)  # a no-op once the app stopped it
            if settings.image_fetch_allowlist:
                log.warning(
                    "IMAGE_FETCH_ALLOWLIST lets image URLs reach these non-public networks",
                    extra={"allowlist": list(settings.image_fetch_allowlist)},
                )
            opened, self.database = await stack.enter_async_context(open_store(settings))
            stores = self.stores = replace(opened, persons=self._wrap_store(opened.persons))
            pipeline = await stack.enter_async_context(
                open_pipeline(
                    settings,
                    stores,
                    results=KafkaJsonPublisher(self.broker, settings.results_topic),
                    events=KafkaJsonPublisher(self.broker, settings.events_topic),
                    dead_letters=KafkaDeadLetters(self.broker, settings.dlq_topic),
                )
            )
            self._commands = CommandFlow(
                pipeline.handling, max_in_flight=settings.max_records_in_flight
            )
            self.inference = pipeline.inference
            try:
                yield
            finally:
                self._commands = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        async with self.resources():
            await self.broker.start()
            try:
                yield self
            finally:
                await self._drain()
                await self.broker.stop()

    def app(self) -> FastStream:
        app = FastStream(self.broker, lifespan=self.resources)
        app.on_shutdown(self._drain)
        return app
