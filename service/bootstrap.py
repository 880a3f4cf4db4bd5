"""The composition root: every adapter is built here from Settings, nowhere else."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from service.adapters import mongo
from service.adapters.broker_connection import (
    BrokerUnreachable,
    ProducerIdRefused,
    connect_broker,
)
from service.adapters.dead_letters import KafkaDeadLetters
from service.adapters.embedded_kafka import EmbeddedKafka, ensure_topics
from service.adapters.event_log import UnreadableEvent, read_face_events
from service.adapters.face_embedder import Embedding, runtime_name
from service.adapters.face_keys import FileFaceKeys, MongoFaceKeys
from service.adapters.image_fetcher import FetchLimits, HttpImageFetcher
from service.adapters.inference_pool import EngineConfig, InferencePool
from service.adapters.journal import MongoJournal
from service.adapters.model_weights import MissingWeights, PlacedWeights, place_weights
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.adapters.person_store import MongoPersonStore
from service.adapters.public_address import AddressPolicy
from service.adapters.result_publisher import KafkaJsonPublisher
from service.adapters.sealing import SealBroken
from service.domain.commands import (
    ListPersons,
    RegisterFace,
    SearchFaces,
    TagPerson,
    UnregisterFaces,
)
from service.domain.faces import FacePolicy
from service.domain.person import ModelProvenance
from service.entrypoints.command_flow import CommandFlow, Commit
from service.entrypoints.consumer import CommandPartitions, subscribe_commands
from service.entrypoints.http_endpoints import HttpEndpoints
from service.metrics import LiveCounts, service_registry
from service.service_layer.handling import CommandHandling, PartitionThrottle, intake_rules
from service.service_layer.intake import IncomingRecord
from service.service_layer.journaled import JournaledAnswers
from service.service_layer.listing import ListPersonsHandler
from service.service_layer.messagebus import MessageBus
from service.service_layer.ports import (
    DeadLetters,
    FaceAnalyser,
    FaceKeys,
    ImageFetcher,
    MessagePublisher,
    PersonStore,
    Stores,
)
from service.service_layer.register import MatchPolicy, RegisterFaceHandler
from service.service_layer.restore import apply_face_events
from service.service_layer.retry import RetryPolicy
from service.service_layer.search import SearchFacesHandler
from service.service_layer.startup import StartupFailed
from service.service_layer.tag import TagPersonHandler
from service.service_layer.unregister import UnregisterFacesHandler
from service.service_layer.vector_cache import VectorCache
from service.settings import Settings

log = logging.getLogger("service")

_PROBE_TIMEOUT_S = 1.0


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.retry_attempts, settings.retry_base_delay_s)


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[tuple[Stores, Any]]:
    """The stores and their database, indexes created."""
    uri = settings.mongodb_uri.get_secret_value() if settings.mongodb_uri else None
    try:
        client, database = mongo.open_database(uri, settings.mongodb_database)
    except mongo.BadUri as error:
        raise StartupFailed(
            f"MONGODB_URI cannot be used: {error}",
            "correct MONGODB_URI (mongodb://host:port/... or mongodb+srv://... whose DNS "
            "records exist)",
        ) from error
    closing: list[Callable[[], None]] = []
    try:
        if uri is None:
            log.warning("no MONGODB_URI: faces are kept in process memory and NOT persisted")
        else:
            await wait_for_mongodb(database, uri, settings)
        persons, journal = MongoPersonStore(database), MongoJournal(database)
        for indexed in (persons, journal):
            await retry_policy(settings).run(indexed.ensure_indexes)
        keys: FaceKeys
        if uri is None:
            file_keys = FileFaceKeys(
                settings.embedded_face_keys_file, synced=not settings.uses_embedded_kafka
            )
            closing.append(file_keys.close)
            keys = file_keys
        else:
            mongo_keys = MongoFaceKeys(database)
            await retry_policy(settings).run(mongo_keys.ensure_indexes)
            keys = mongo_keys
        yield Stores(persons=persons, journal=journal, keys=keys), database
    finally:
        for close in closing:
            close()
        client.close()


async def wait_for_kafka(broker: KafkaBroker, settings: Settings) -> None:
    """The broker's producer and admin client connected, waiting for a broker that is
    still starting; its subscribers do not start here."""
    servers = settings.bootstrap_servers
    try:
        await connect_broker(
            broker,
            settings.startup_timeout_s,
            on_retry=lambda reason, pause_s: log.info(
                "Kafka does not answer yet",
                extra={
                    "bootstrap_servers": servers,
                    "reason": reason,
                    "retry_in_s": round(pause_s, 2),
                },
            ),
        )
    except BrokerUnreachable as error:
        raise kafka_unreachable(settings, str(error)) from error
    except ProducerIdRefused as error:
        raise StartupFailed(
            f"the Kafka broker at {servers} refused InitProducerId ({error}): "
            "it does not offer idempotent producers",
            "set KAFKA_ENABLE_IDEMPOTENCE=false to start without the idempotent producer",
        ) from error


def kafka_unreachable(settings: Settings, last: str) -> StartupFailed:
    return StartupFailed(
        f"Kafka at {settings.bootstrap_servers} did not answer within "
        f"{settings.startup_timeout_s:g} s (last: {last})",
        "check KAFKA_BOOTSTRAP_SERVERS and that the broker runs and is reachable from here; "
        "STARTUP_TIMEOUT_S sets how long start-up waits",
    )


async def wait_for_mongodb(database: Any, uri: str, settings: Settings) -> None:
    """MongoDB answers a ping, waiting for a server that is still starting."""
    hosts = mongo.hosts(uri)
    try:
        await mongo.wait_for_ping(
            database,
            settings.startup_timeout_s,
            on_retry=lambda pause_s: log.info(
                "MongoDB does not answer yet",
                extra={"hosts": hosts, "retry_in_s": round(pause_s, 2)},
            ),
        )
    except mongo.MongoUnreachable as error:
        raise StartupFailed(
            f"MongoDB at {hosts} did not answer within {settings.startup_timeout_s:g} s"
            + (f" (last: {error})" if str(error) else ""),
            "check MONGODB_URI and that MongoDB runs and is reachable from here; "
            "STARTUP_TIMEOUT_S sets how long start-up waits",
        ) from error
    except mongo.MongoRefused as error:
        raise StartupFailed(
            f"MongoDB at {hosts} refused the service: {error}",
            "check the user, password and authSource in MONGODB_URI, and the user's roles "
            "on MONGODB_DATABASE",
        ) from error


def bootstrap(
    settings: Settings,
    *,
    stores: Stores,
    fetcher: ImageFetcher,
    analyser: FaceAnalyser,
    results: MessagePublisher,
    events: MessagePublisher,
    dead_letters: DeadLetters,
    weights_sha256: str,
) -> CommandHandling:
    """The use cases wired to the ports they are given: the real adapters in the service
    and in replays, fakes in unit tests."""
    retry = retry_policy(settings)
    answers = JournaledAnswers(stores.journal, retry)
    vectors = VectorCache(stores.persons)
    # One bound on the images in memory, for registrations and searches alike.
    slots = asyncio.Semaphore(settings.max_images_in_memory)
    register = RegisterFaceHandler(
        store=stores.persons,
        journal=stores.journal,
        keys=stores.keys,
        fetcher=fetcher,
        analyser=analyser,
        provenance=ModelProvenance(
            model=settings.face_model,
            detector=settings.face_detector,
            weights_sha256=weights_sha256,
            runtime=runtime_name(settings.face_embedder_runtime),
        ),
        match=MatchPolicy(settings.face_match_enabled, settings.face_match_max_distance),
        retry=retry,
        slots=slots,
        vectors=vectors,
        answer_retention_s=settings.answer_retention_s,
    )
    unregister = UnregisterFacesHandler(stores.persons, stores.keys, answers, vectors)
    tag = TagPersonHandler(stores.persons, stores.keys, answers)
    listing = ListPersonsHandler(stores.persons, answers, settings.answer_retention_s)
    search = SearchFacesHandler(
        stores.persons,
        fetcher,
        analyser,
        vectors,
        answers,
        retry,
        slots,
        match_distance=settings.face_match_max_distance,
        answer_retention_s=settings.answer_retention_s,
    )
    return CommandHandling(
        bus=MessageBus(
            {
                RegisterFace: register.handle,
                UnregisterFaces: unregister.handle,
                TagPerson: tag.handle,
                ListPersons: listing.handle,
                SearchFaces: search.handle,
            }
        ),
        throttle=PartitionThrottle(settings.rate_limits),
        rules=intake_rules(
            settings.system_category_ids,
            settings.max_command_bytes,
            settings.kafka_check_key_partition,
        ),
        results=results,
        events=events,
        dead_letters=dead_letters,
        retry=retry,
        vectors=vectors,
    )


@dataclass
class Pipeline:
    """Everything that turns command records into results, for the service and replays."""

    handling: CommandHandling
    inference: InferencePool


@asynccontextmanager
async def open_pipeline(
    settings: Settings,
    stores: Stores,
    results: MessagePublisher,
    events: MessagePublisher,
    dead_letters: DeadLetters,
) -> AsyncIterator[Pipeline]:
    async with AsyncExitStack() as stack:
        weights = await asyncio.to_thread(
            partial(
                place_weights,
                settings.deepface_home,
                settings.face_model,
                settings.face_detector,
                model_graph=settings.face_embedder_runtime == "onnxruntime",
                detector_graphs=settings.face_detector_runtime == "onnxruntime",
            )
        )
        inference = InferencePool(
            _engine_config(settings, weights), workers=settings.inference_workers
        )
        stack.push_async_callback(inference.close)
        log.info(
            "loading models",
            extra={
                "model": settings.face_model,
                "detector": settings.face_detector,
                "inference_workers": settings.inference_workers,
            },
        )
        await inference.start()
        fetcher = image_fetcher(settings)
        stack.push_async_callback(fetcher.close)
        handling = bootstrap(
            settings,
            stores=stores,
            fetcher=fetcher,
            analyser=inference,
            results=results,
            events=events,
            dead_letters=dead_letters,
            weights_sha256=weights.model_weights_sha256,
        )
        yield Pipeline(handling=handling, inference=inference)


def image_fetcher(settings: Settings) -> HttpImageFetcher:
    return HttpImageFetcher(
        FetchLimits(
            connect_timeout_s=settings.image_connect_timeout_s,
            first_byte_timeout_s=settings.image_first_byte_timeout_s,
            read_timeout_s=settings.image_read_timeout_s,
            total_timeout_s=settings.image_total_timeout_s,
            max_bytes=settings.image_max_bytes,
        ),
        allowed_ports=settings.image_fetch_ports,
        policy=AddressPolicy.from_cidrs(settings.image_fetch_allowlist),
    )


def _engine_config(settings: Settings, weights: PlacedWeights) -> EngineConfig:
    if weights.model_weights is None:
        raise MissingWeights(f"no weights file for {settings.face_model!r}")
    return EngineConfig(
        detector_name=settings.face_detector,
        policy=FacePolicy(
            min_confidence=settings.face_min_confidence,
            min_size_px=settings.face_min_size_px,
            max_yaw_degrees=settings.face_max_yaw_degrees,
            max_roll_degrees=settings.face_max_roll_degrees,
        ),
        max_pixels=settings.image_max_pixels,
        detect_max_side_px=settings.face_detect_max_side_px,
        deepface_home=str(settings.deepface_home),
        embedding=Embedding(
            runtime=settings.face_embedder_runtime,
            weights=weights.model_weights,
            graph=weights.model_graph,
        ),
        detection=MtcnnNetworks(settings.face_detector_runtime, weights.detector_graphs),
    )


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
