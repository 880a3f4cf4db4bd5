"""Records through the real wiring (`bootstrap` with fakes of the ports) to their answers,
and a broker that refuses answers: only the refused message is sent again."""

from __future__ import annotations

import json
from collections.abc import Sequence

from service.bootstrap import bootstrap
from service.domain.errors import ErrorCode, Rejected
from service.domain.partitioning import key_partition
from service.entrypoints.command_flow import CommandFlow
from service.service_layer.handling import CommandHandling
from service.service_layer.intake import IncomingRecord
from service.settings import Settings
from tests.fakes import (
    CountingAnalyser,
    CountingFetcher,
    MemoryStore,
    RecordingDeadLetters,
    RecordingPublisher,
    memory_stores,
)

USER = b"user-1"
PARTITIONS = 4
BODY = {"CategoryId": "Cat-1", "PersonId": "P1", "ImageUrl": "https://img.example/a.jpg"}


class Wired:
    def __init__(self, analyser: CountingAnalyser | None = None) -> None:
        self.store = MemoryStore()
        self.fetcher = CountingFetcher()
        self.analyser = analyser or CountingAnalyser()
        self.results = RecordingPublisher()
        self.events = RecordingPublisher()
        self.dead_letters = RecordingDeadLetters()
        self.handling: CommandHandling = bootstrap(
            Settings(retry_attempts=2, retry_base_delay_s=0),
            stores=memory_stores(self.store),
            fetcher=self.fetcher,
            analyser=self.analyser,
            results=self.results,
            events=self.events,
            dead_letters=self.dead_letters,
            weights_sha256="sha",
        )
        self.commits: list[dict[int, int]] = []
        self.flow = CommandFlow(self.handling, max_in_flight=100)

    async def commit(self, positions: dict[int, int]) -> None:
        self.commits.append(positions)

    async def take(self, records: Sequence[IncomingRecord]) -> None:
        await self.flow.take(records, self.commit)


def record(offset: int, value: bytes) -> IncomingRecord:
    partition = key_partition(USER, PARTITIONS)
    return IncomingRecord("cmds", partition, offset, 0, USER, value, PARTITIONS)


def command(request_id: str) -> bytes:
    return json.dumps({"RequestId": request_id, **BODY}).encode()


async def test_a_command_goes_through_the_real_wiring_to_its_event_and_result() -> None:
    wired = Wired()

    await wired.take([record(0, command("R1"))])
    await wired.results.until(lambda: len(wired.results.published) == 1)

    [result] = wired.results.dumps()
    [event] = wired.events.dumps()
    assert result["RequestId"] == "R1" and result["FaceId"] == event["FaceId"]
    [person] = wired.store.persons.values()
    assert [image.face_id for image in person.images] == [result["FaceId"]]
    await wired.flow.close(1)
    assert wired.commits[-1] == {record(0, b"").partition: 1}


async def test_while_the_broker_refuses_results_nothing_is_fetched_or_analysed_again() -> None:
    # A refused image stores nothing: redoing its command would fetch and analyse it again.
    wired = Wired(CountingAnalyser(refusal=Rejected(ErrorCode.NO_FACE, "no face found")))
    wired.results.refusing = True

    await wired.take([record(0, command("R1")), record(1, b"not json")])
    await wired.results.until(lambda: wired.results.refused >= 40)
    assert wired.commits == []  # nothing answered: nothing committed
    wired.results.refusing = False
    await wired.results.until(lambda: len(wired.results.published) == 2)
    await wired.flow.close(1)

    assert wired.fetcher.calls == 1
    assert wired.analyser.calls == 1
    assert len(wired.dead_letters.sent) == 1
    codes = {str(r["RequestId"]): str(r["Code"]) for r in wired.results.dumps()}
    assert codes["R1"] == "InvalidImage.NoFace"
    assert sorted(codes.values()) == ["InvalidImage.NoFace", "InvalidParameter.Message"]
    assert wired.commits[-1] == {record(0, b"").partition: 2}


async def test_an_event_taken_before_the_broker_refused_the_result_is_not_sent_again() -> None:
    wired = Wired()
    wired.results.refusing = True

    await wired.take([record(0, command("R1"))])
    await wired.results.until(lambda: wired.results.refused >= 20)
    assert len(wired.events.published) == 1  # out before the result: a crash re-sends both
    wired.results.refusing = False
    await wired.results.until(lambda: len(wired.results.published) == 1)
    await wired.flow.close(1)

    assert len(wired.events.published) == 1
    assert (wired.fetcher.calls, wired.analyser.calls) == (1, 1)


async def test_an_unreadable_records_dead_letter_copy_goes_out_before_its_result() -> None:
    wired = Wired()
    wired.results.refusing = True

    await wired.take([record(0, b"not json")])
    await wired.results.until(lambda: wired.results.refused >= 5)

    # Once the result is out the record may be committed: the copy must already be there.
    assert len(wired.dead_letters.sent) == 1
    wired.results.refusing = False
    await wired.results.until(lambda: len(wired.results.published) == 1)
    await wired.flow.close(1)
    assert len(wired.dead_letters.sent) == 1
