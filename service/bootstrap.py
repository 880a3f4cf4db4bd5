"""The composition root: every adapter is built here from Settings, nowhere else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

from service.adapters.face_embedder import Embedding, runtime_name
from service.adapters.image_fetcher import FetchLimits, HttpImageFetcher
from service.adapters.inference_pool import EngineConfig, InferencePool
from service.adapters.model_weights import MissingWeights, PlacedWeights, place_weights
from service.adapters.mtcnn_networks import MtcnnNetworks
from service.adapters.public_address import AddressPolicy
from service.domain.commands import (
    ListPersons,
    RegisterFace,
    SearchFaces,
    TagPerson,
    UnregisterFaces,
)
from service.domain.faces import FacePolicy
from service.domain.person import ModelProvenance
from service.service_layer.handling import CommandHandling, PartitionThrottle, intake_rules
from service.service_layer.journaled import JournaledAnswers
from service.service_layer.listing import ListPersonsHandler
from service.service_layer.messagebus import MessageBus
from service.service_layer.ports import (
    DeadLetters,
    FaceAnalyser,
    ImageFetcher,
    MessagePublisher,
    Stores,
)
from service.service_layer.register import MatchPolicy, RegisterFaceHandler
from service.service_layer.retry import RetryPolicy
from service.service_layer.search import SearchFacesHandler
from service.service_layer.tag import TagPersonHandler
from service.service_layer.unregister import UnregisterFacesHandler
from service.service_layer.vector_cache import VectorCache
from service.settings import Settings

log = logging.getLogger("service")


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.retry_attempts, settings.retry_base_delay_s)


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
