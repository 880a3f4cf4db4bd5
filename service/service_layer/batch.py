"""One poll of the commands topic: answer the cheap refusals at once, then do the work.

Throttling and validation are decided for the whole batch before any image is fetched, so
a refused command never waits behind inference. Admitted commands of one person keep their
partition order (the 10-image cap, duplicate and match checks depend on it); commands of
different persons run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial

from pydantic import BaseModel

from service.contracts.face_events import face_registered
from service.contracts.messages import RegisterFailed, RegisterResult, RegisterSucceeded
from service.domain.commands import RegisterFace
from service.domain.errors import ErrorCode, Rejected
from service.domain.limiter import UserRateLimiter
from service.logs import redact_url
from service.metrics import observe_limiter, observe_outcome, observe_partition_mismatch
from service.service_layer.intake import (
    Envelope,
    IncomingRecord,
    Unreadable,
    open_envelope,
    parse_command,
    wrong_partition,
)
from service.service_layer.ports import DeadLetters, MessagePublisher
from service.service_layer.register import Outcome, RegisterFaceHandler, unexpected_failure
from service.service_layer.retry import RetryPolicy
from service.timings import timed

log = logging.getLogger("service.commands")


@dataclass(frozen=True)
class Job:
    """One record's work. Jobs of the same person run in partition order (the 10-image cap,
    duplicate and match checks depend on it); `person` is None for a refusal."""

    record: IncomingRecord
    person: tuple[str, str, str] | None
    run: Callable[[], Awaitable[Outcome]]


class PartitionThrottle:
    """The limiter, seen per partition: a record delivered again gets the decision it got
    the first time, and a partition that moves away takes its users' state with it."""

    def __init__(self, limit: int) -> None:
        self._limiter = UserRateLimiter(limit)
        self._decided: defaultdict[int, dict[int, bool]] = defaultdict(dict)
        self._users: defaultdict[int, set[str]] = defaultdict(set)

    def admit(self, owner: str, record: IncomingRecord) -> bool:
        decided = self._decided[record.partition]
        if record.offset not in decided:
            decided[record.offset] = self._limiter.admit(owner, record.timestamp_ms)
            observe_limiter(decided[record.offset])
            self._users[record.partition].add(owner)
            self._forget_old_decisions(decided)
        return decided[record.offset]

    def forget_partition(self, partition: int) -> None:
        self._decided.pop(partition, None)
        for user in self._users.pop(partition, set()):
            self._limiter.forget_user(user)

    @staticmethod
    def _forget_old_decisions(decided: dict[int, bool], keep: int = 50_000) -> None:
        # Redelivery only repeats records after the last commit: old ones can go.
        if len(decided) > 2 * keep:
            for offset in sorted(decided)[:-keep]:
                del decided[offset]


class CommandBatchProcessor:
    def __init__(
        self,
        handler: RegisterFaceHandler,
        throttle: PartitionThrottle,
        results: MessagePublisher,
        events: MessagePublisher,
        dead_letters: DeadLetters,
        retry: RetryPolicy,
        system_category_keys: Collection[str],
        max_command_bytes: int,
        check_key_partition: bool = True,
    ) -> None:
        self._handler = handler
        self._throttle = throttle
        self._results = results
        self._events = events
        self._dead_letters = dead_letters
        self._retry = retry
        self._system_category_keys = frozenset(system_category_keys)
        self._max_command_bytes = max_command_bytes
        self._check_key_partition = check_key_partition

    async def process(self, records: Sequence[IncomingRecord]) -> list[Outcome]:
        """Returns once every record of the batch has had its result published.

        Raises only when a result could not be published within the retry budget; the
        batch is then redone. A TaskGroup cancels the other persons' work first, so no
        leftover task races the redo.
        """
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(_in_order(chain)) for chain in _chains(self.intake(records))]
        return [outcome for run in runs for outcome in run.result()]

    def intake(self, records: Sequence[IncomingRecord]) -> list[Job]:
        """The records as jobs, with throttling and validation decided now, in order."""
        received = time.perf_counter()
        return [self._job(record, received) for record in records]

    def _job(self, record: IncomingRecord, received: float) -> Job:
        envelope = open_envelope(record, self._max_command_bytes)
        try:
            command = self._admit(envelope)
        except Rejected as refusal:
            return Job(record, None, partial(self._refuse, envelope, refusal, received))
        except Exception as error:
            # A bug met by one record must not stall its partition: it is answered and
            # logged with its traceback.
            log.exception("intake failed", extra={"request_id": envelope.request_id})
            failure = unexpected_failure(error)
            return Job(record, None, partial(self._answered, envelope, None, failure, received))
        return Job(record, command.person_ref, partial(self._register, envelope, command, received))

    async def _refuse(self, envelope: Envelope, refusal: Rejected, received: float) -> Outcome:
        if isinstance(refusal, Unreadable):
            # The copy goes first: once a result is out, the record may be committed.
            await self._dead_letter(envelope.record, refusal)
        outcome = Outcome(code=refusal.code, message=refusal.message)
        return await self._answered(envelope, None, outcome, received)

    async def _register(
        self, envelope: Envelope, command: RegisterFace, received: float
    ) -> Outcome:
        outcome = await self._handler.handle(command)
        if outcome.image is not None:
            # Before the result: a crash in between re-publishes the identical event.
            event = face_registered(command, outcome.image)
            await self._publish(self._events, command.owner, event, outcome, "event")
        return await self._answered(envelope, command, outcome, received)

    def forget_partition(self, partition: int) -> None:
        self._throttle.forget_partition(partition)

    async def _dead_letter(self, record: IncomingRecord, refusal: Unreadable) -> None:
        await self._retry.run(lambda: self._dead_letters.send(record, refusal))
        log.warning(
            "record dead-lettered",
            extra={
                "code": refusal.code.value,
                "reason": refusal.message,
                "partition": record.partition,
                "offset": record.offset,
            },
        )

    def _admit(self, envelope: Envelope) -> RegisterFace:
        """The key first, then its partition, then the limiter, then the fields: a record on
        the wrong partition never counts in a window kept for that partition's users."""
        owner = envelope.owner
        if owner is not None:
            if self._check_key_partition and (misplaced := wrong_partition(envelope)):
                observe_partition_mismatch()
                raise misplaced
            if not self._throttle.admit(owner, envelope.record):
                raise Rejected(ErrorCode.THROTTLED, "the user's request rate is over its limit")
        return parse_command(envelope, self._system_category_keys)

    async def _answered(
        self,
        envelope: Envelope,
        command: RegisterFace | None,
        outcome: Outcome,
        received: float,
    ) -> Outcome:
        result = _result(envelope, command, outcome)
        await self._publish(self._results, envelope.owner, result, outcome, "publish")
        outcome.timings_ms["total"] = (time.perf_counter() - received) * 1000
        _log_outcome(envelope, command, outcome)
        return outcome

    async def _publish(
        self,
        publisher: MessagePublisher,
        owner: str | None,
        message: BaseModel,
        outcome: Outcome,
        stage: str,
    ) -> None:
        with timed(outcome.timings_ms, stage):
            await self._retry.run(lambda: publisher.publish(owner, message))


def _result(envelope: Envelope, command: RegisterFace | None, outcome: Outcome) -> RegisterResult:
    if outcome.code is None and command is not None and outcome.face_id is not None:
        return RegisterSucceeded(
            RequestId=envelope.request_id,
            FaceId=outcome.face_id,
            CategoryId=command.category.display,
            PersonId=command.person.display,
        )
    code = outcome.code or ErrorCode.INTERNAL
    return RegisterFailed(
        RequestId=envelope.request_id,
        Code=code.value,
        Message=outcome.message,
        HttpStatusCode=code.http_status,
    )


def _chains(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs of one person in partition order; every refusal on its own."""
    chains: dict[object, list[Job]] = {}
    for index, job in enumerate(jobs):
        chains.setdefault(job.person if job.person is not None else index, []).append(job)
    return list(chains.values())


async def _in_order(chain: Sequence[Job]) -> list[Outcome]:
    return [await job.run() for job in chain]


def _log_outcome(envelope: Envelope, command: RegisterFace | None, outcome: Outcome) -> None:
    record = envelope.record
    code = outcome.code.value if outcome.code else "OK"
    observe_outcome(code, outcome.timings_ms)
    log.info(
        "command done",
        extra={
            "request_id": envelope.request_id,
            "user": envelope.owner,
            "code": code,
            "face_id": outcome.face_id,
            "stored": outcome.stored,
            "partition": record.partition,
            "offset": record.offset,
            "image_url": redact_url(command.image_url) if command else None,
            "timings_ms": {k: round(v, 1) for k, v in outcome.timings_ms.items()},
        },
    )
