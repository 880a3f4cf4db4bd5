"""Delivery you can trust, with real processes: a hard kill, a SIGTERM, two consumers.

The service runs with the embedded store (no MONGODB_URI) against a broker that outlives
it, so its store must come back from the face events."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from service.adapters.event_log import read_face_events
from service.adapters.face_keys import FileFaceKeys
from service.adapters.journal import MongoJournal
from service.adapters.mongo import open_database
from service.adapters.person_store import MongoPersonStore
from service.service_layer.ports import Stores
from service.service_layer.restore import apply_face_events
from service.service_layer.retry import RetryPolicy
from tests.support import suite_kafka
from tests.support.apache_kafka import ApacheKafka
from tests.support.image_server import ImageServer
from tests.support.images import small_no_face, tom_variants
from tests.support.kafka_client import CommandClient, new_request_id
from tests.support.service_process import ServiceProcess

USERS = 8
PERSONS_PER_USER = 3


@dataclass
class Deployment:
    """Topics, a consumer group and a client: what one test's services share."""

    bootstrap: str
    topics: dict[str, str]
    group: str
    client: CommandClient
    deepface_home: Path
    image_server: ImageServer
    keys_file: Path  # the services' faces' keys, shared as their events topic is

    def service(self, **settings: str) -> ServiceProcess:
        return ServiceProcess(
            ServiceProcess.environment(
                KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
                **suite_kafka.service_env(),
                COMMANDS_TOPIC=self.topics["commands"],
                RESULTS_TOPIC=self.topics["results"],
                EVENTS_TOPIC=self.topics["events"],
                DLQ_TOPIC=self.topics["dlq"],
                KAFKA_GROUP_ID=self.group,
                DEEPFACE_HOME=str(self.deepface_home),
                INFERENCE_WORKERS="1",
                MAX_RECORDS_IN_FLIGHT="40",
                EMBEDDED_FACE_KEYS_FILE=str(self.keys_file),
                **self.image_server.fetch_env(),
                **settings,
            )
        )


@asynccontextmanager
async def deployed(
    kafka: str, deepface_home: Path, image_server: ImageServer
) -> AsyncIterator[Deployment]:
    topics = await suite_kafka.create_topics(kafka, suite_kafka.topic_names())
    suffix = uuid.uuid4().hex[:8]
    client = CommandClient(kafka, topics["commands"], topics["results"], topics["events"])
    await client.start()
    try:
        keys_file = Path(os.environ["EMBEDDED_FACE_KEYS_FILE"]).with_name(f"keys-{suffix}.sqlite")
        yield Deployment(
            kafka, topics, f"group-{suffix}", client, deepface_home, image_server, keys_file
        )
    finally:
        await client.stop()


@pytest_asyncio.fixture
async def deployment(
    kafka: str, deepface_home: Path, image_server: ImageServer
) -> AsyncIterator[Deployment]:
    async with deployed(kafka, deepface_home, image_server) as deployment:
        yield deployment


@dataclass(frozen=True)
class Sent:
    request_id: str
    user: str
    person: str
    url: str


async def send_workload(client: CommandClient, image_server: ImageServer, count: int) -> list[Sent]:
    """Several users and persons: successes, duplicates, no-face images, a full person."""
    tag = uuid.uuid4().hex[:6]
    faces = [
        image_server.serve(f"/{tag}/tom-{i}.jpg", data) for i, data in enumerate(tom_variants())
    ]
    no_face = image_server.serve(f"/{tag}/no-face.jpg", small_no_face())
    plan = [
        (f"user-{tag}-{i % USERS}", f"p{(i // USERS) % PERSONS_PER_USER}", i)
        for i in range(count - 14)
    ]
    plan += [(f"user-{tag}-0", "full-person", i) for i in range(14)]
    sent = []
    for user, person, i in plan:
        url = no_face if i % 23 == 5 else faces[(i // (USERS * PERSONS_PER_USER)) % 16]
        if person == "full-person":
            url = faces[i]
        body = {"RequestId": new_request_id(), "CategoryId": "Lib", "PersonId": person}
        request_id = await client.send(user, {**body, "ImageUrl": url})
        sent.append(Sent(request_id, user, person, url))
    return sent


async def wait_until_answered(client: CommandClient, sent: list[Sent]) -> dict[str, Any]:
    return await client.results_for([s.request_id for s in sent], timeout_s=300)


async def rebuilt_from_events(deployment: Deployment) -> list[dict[str, Any]]:
    client, database = open_database(None, "rebuilt")
    store = MongoPersonStore(database)
    await store.ensure_indexes()
    events = read_face_events(deployment.bootstrap, deployment.topics["events"])
    keys = FileFaceKeys(deployment.keys_file)  # the keys the services wrote
    try:
        await apply_face_events(
            events, Stores(store, MongoJournal(database), keys), RetryPolicy(1, 0)
        )
    finally:
        keys.close()
    persons = [p async for p in database["persons"].find({})]
    client.close()
    return persons


async def assert_delivered_exactly(deployment: Deployment, sent: list[Sent]) -> None:
    client = deployment.client
    results = await wait_until_answered(client, sent)
    await asyncio.sleep(2)  # late duplicates, if any, arrive meanwhile

    # Every command answered; a command answered twice was answered the same way.
    for s in sent:
        answers = client.results[s.request_id]
        assert answers and all(a == answers[0] for a in answers), answers
    # Every face event published twice is the same event.
    for face_id, events in client.events.items():
        assert all(e == events[0] for e in events), face_id

    persons = await rebuilt_from_events(deployment)
    for person in persons:
        images = person["images"]
        assert len(images) <= 10
        assert len({i["face_id"] for i in images}) == len(images)
        assert len({i["image_sha256"] for i in images}) == len(images)
    stored = {i["face_id"] for p in persons for i in p["images"]}
    successes = {r["FaceId"] for r in results.values() if "FaceId" in r}
    assert successes <= stored

    codes = Counter(r.get("Code", "OK") for r in results.values())
    assert codes["OK"] > len(sent) // 2 and codes["InvalidImage.NoFace"] > 0
    assert codes["FaceLimitExceeded"] >= 1
    assert set(codes) <= {
        "OK",
        "InvalidImage.NoFace",
        "FaceLimitExceeded",
        "InvalidImage.FaceMismatch",
    }


async def assert_service_store_has_every_face(
    deployment: Deployment, sent: list[Sent], results: dict[str, Any]
) -> None:
    """The same bytes sent again under a new RequestId must find the stored face: only a
    service whose own store holds that face answers with the original FaceId."""
    client = deployment.client
    probes = {}
    for s in sent:
        face_id = results[s.request_id].get("FaceId")
        if face_id and s.url not in probes:
            body = {"CategoryId": "Lib", "PersonId": s.person, "ImageUrl": s.url}
            probes[s.url] = (await client.send(s.user, body), face_id)
    answers = await client.results_for([request_id for request_id, _ in probes.values()])
    wrong = [
        (url, answers[request_id])
        for url, (request_id, face_id) in probes.items()
        if answers[request_id].get("FaceId") != face_id
    ]
    assert wrong == []


async def test_a_killed_service_loses_nothing_and_stores_nothing_twice(
    deployment: Deployment, image_server: ImageServer
) -> None:
    first = deployment.service()
    await first.start()
    try:
        sent = await send_workload(deployment.client, image_server, count=200)
        await first.wait_for_log(lambda e: first.commands_done() >= 60, timeout_s=240)
        await first.kill_hard()
    finally:
        await first.stop()
    answered_before = sum(1 for s in sent if s.request_id in deployment.client.results)
    assert answered_before < len(sent), "the kill came too late to test anything"

    second = deployment.service()
    await second.start()
    try:
        await assert_delivered_exactly(deployment, sent)
        results = await wait_until_answered(deployment.client, sent)
        await assert_service_store_has_every_face(deployment, sent, results)
    finally:
        await second.stop()


async def test_sigterm_drains_in_time_and_a_restart_completes_the_rest(
    deployment: Deployment, image_server: ImageServer
) -> None:
    deadline_s = 10
    first = deployment.service(SHUTDOWN_DEADLINE_S=str(deadline_s))
    await first.start()
    try:
        sent = await send_workload(deployment.client, image_server, count=120)
        await first.wait_for_log(lambda e: first.commands_done() >= 30, timeout_s=240)
        code = await first.terminate(timeout_s=deadline_s + 15)
    finally:
        await first.stop()
    assert code == 0
    assert any(e.get("message") == "command done" for e in first.logs)

    second = deployment.service()
    await second.start()
    try:
        await assert_delivered_exactly(deployment, sent)
    finally:
        await second.stop()


async def test_two_services_in_one_group_share_the_work_and_answer_once(
    deployment: Deployment, image_server: ImageServer
) -> None:
    one, two = deployment.service(), deployment.service()
    await asyncio.gather(one.start(), two.start())
    try:
        sent = await send_workload(deployment.client, image_server, count=200)
        await assert_delivered_exactly(deployment, sent)
        results = await wait_until_answered(deployment.client, sent)
        await assert_service_store_has_every_face(deployment, sent, results)
        assert one.commands_done() > 0 and two.commands_done() > 0
    finally:
        await asyncio.gather(one.stop(), two.stop())


@pytest.mark.apache_kafka
async def test_a_killed_broker_restarted_on_its_log_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, deepface_home: Path, image_server: ImageServer
) -> None:
    broker = ApacheKafka(tmp_path / "kafka")  # its own: the suite's broker stays up
    await broker.start()
    try:
        async with deployed(broker.bootstrap_servers, deepface_home, image_server) as deployment:
            service = deployment.service()
            await service.start()
            try:
                sent = await send_workload(deployment.client, image_server, count=200)
                await service.wait_for_log(lambda e: service.commands_done() >= 40, 240)
                await broker.kill()
                done_at_kill = service.commands_done()
                await broker.start()

                await assert_delivered_exactly(deployment, sent)
                assert done_at_kill < len(sent), "the kill came too late to test anything"
                assert service.process is not None and service.process.returncode is None
                results = await wait_until_answered(deployment.client, sent)
                await assert_service_store_has_every_face(deployment, sent, results)
            finally:
                await service.stop()
    finally:
        await broker.stop()
