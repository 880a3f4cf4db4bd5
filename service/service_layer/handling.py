"""From a command record to its answer: decided at intake, worked once, delivered until taken.

Throttling and validation are decided for a whole poll, in order, before any image is
fetched, so a refused command never waits behind inference. An admitted command goes to the
message bus once; what it must publish (a dead-letter copy, face events, the result) is
then delivered in order, each message retried until the broker takes it. A broker that
stays away delays the answer; it never makes a command run twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from service.contracts.messages import Result
from service.domain.commands import Command, RegisterFace, Scope
from service.domain.errors import ErrorCode, MessageTooLarge, Rejected
from service.domain.ids import identity_key
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
from service.service_layer.messagebus import MessageBus
from service.service_layer.outcome import Outcome, failed, unexpected_failure
from service.service_layer.ports import DeadLetters, MessagePublisher
from service.service_layer.retry import RetriesExhausted, RetryPolicy
from service.service_layer.vector_cache import VectorCache
from service.timings import timed

log = logging.getLogger("service.commands")


@dataclass(frozen=True)
class Delivery:
    """One message an answer publishes; `stage` names its timing."""

    stage: str
    send: Callable[[], Awaitable[None]]


@dataclass
class Answer:
    envelope: Envelope
    command: Command | None
    outcome: Outcome
    deliveries: list[Delivery] = field(default_factory=list)
    received: float = 0.0  # time.perf_counter() when its poll was taken


@dataclass(frozen=True)
class Decision:
    """One record as intake left it. `work` runs it once; `scope` (None for a refusal)
    tells the edge what it must wait for."""

    record: IncomingRecord
    scope: Scope | None
    work: Callable[[], Awaitable[Answer]]


class PartitionThrottle:
    """The limiters (one per action, as each API has its own budget), seen per partition: a
    record delivered again gets the decision it got the first time, and a partition that
    moves away takes its users' state with it."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._limiters = {action: UserRateLimiter(limit) for action, limit in limits.items()}
        self._decided: defaultdict[int, dict[int, bool]] = defaultdict(dict)
        self._users: defaultdict[int, set[str]] = defaultdict(set)

    def admit(self, owner: str, action: str, record: IncomingRecord) -> bool:
        decided = self._decided[record.partition]
        if record.offset not in decided:
            limiter = self._limiters[action]
            decided[record.offset] = limiter.admit(owner, record.timestamp_ms)
            observe_limiter(decided[record.offset])
            self._users[record.partition].add(owner)
            self._forget_old_decisions(decided)
        return decided[record.offset]

    def forget_partition(self, partition: int) -> None:
        self._decided.pop(partition, None)
        for user in self._users.pop(partition, set()):
            for limiter in self._limiters.values():
                limiter.forget_user(user)

    @staticmethod
    def _forget_old_decisions(decided: dict[int, bool], keep: int = 50_000) -> None:
        # Redelivery only repeats records after the last commit: old ones can go.
        if len(decided) > 2 * keep:
            for offset in sorted(decided)[:-keep]:
                del decided[offset]


@dataclass(frozen=True)
class IntakeRules:
    system_category_keys: frozenset[str]
    max_command_bytes: int
    check_key_partition: bool = True


_TOO_LARGE_PAUSE_S = 5.0


class CommandHandling:
    def __init__(
        self,
        bus: MessageBus,
        throttle: PartitionThrottle,
        rules: IntakeRules,
        results: MessagePublisher,
        events: MessagePublisher,
        dead_letters: DeadLetters,
        retry: RetryPolicy,
        vectors: VectorCache | None = None,
    ) -> None:
        self._bus = bus
        self._vectors = vectors
        self._throttle = throttle
        self._rules = rules
        self._results = results
        self._events = events
        self._dead_letters = dead_letters
        self._retry = retry

    def decide(self, records: Sequence[IncomingRecord]) -> list[Decision]:
        """The records with throttling and validation decided now, in order."""
        received = time.perf_counter()
        return [self._decide(record, received) for record in records]

    def forget_partition(self, partition: int) -> None:
        self._throttle.forget_partition(partition)
        if self._vectors is not None:
            # Its users' libraries may be changed elsewhere from now on.
            self._vectors.forget()

    async def deliver(self, answer: Answer) -> None:
        """Each message in order, each retried until taken; then the outcome is logged."""
        for delivery in answer.deliveries:
            with timed(answer.outcome.timings_ms, delivery.stage):
                await self._until_taken(answer, delivery)
        answer.outcome.timings_ms["total"] = (time.perf_counter() - answer.received) * 1000
        _log_outcome(answer)

    async def _until_taken(self, answer: Answer, delivery: Delivery) -> None:
        replaced = False
        while True:
            try:
                await self._retry.run(delivery.send)
                return
            except MessageTooLarge as error:
                if delivery.stage != "publish" or replaced:
                    # An event or a copy cannot be swapped for another: what makes them is
                    # bounded so that this never happens; if it does, it is said loudly.
                    log.error(
                        "message too large for Kafka; trying again",
                        extra={"stage": delivery.stage, "error": str(error)},
                    )
                    await asyncio.sleep(_TOO_LARGE_PAUSE_S)
                    continue
                # A result Kafka cannot take must not hold its partition for good: the
                # command is answered with what went wrong instead.
                log.error("result too large for Kafka", extra={"error": str(error)})
                delivery, replaced = self._too_large(answer, error), True
            except RetriesExhausted:
                # The answer must not be lost: this message is tried again, and the
                # partition's commits wait for it meanwhile. Nothing before it reruns.
                record = answer.envelope.record
                log.exception(
                    "message not published; trying again",
                    extra={
                        "stage": delivery.stage,
                        "partition": record.partition,
                        "offset": record.offset,
                    },
                )
                await asyncio.sleep(self._retry.base_delay_s)

    def _too_large(self, answer: Answer, error: MessageTooLarge) -> Delivery:
        outcome = answer.outcome
        outcome.code = ErrorCode.INTERNAL
        outcome.message = f"errorMsg:the answer is too large for one Kafka record ({error})"
        result = failed(answer.envelope.request_id, outcome.code, outcome.message)
        return Delivery("publish", partial(self._results.publish, answer.envelope.owner, result))

    def _decide(self, record: IncomingRecord, received: float) -> Decision:
        envelope = open_envelope(record, self._rules.max_command_bytes)
        try:
            command = self._admit(envelope)
        except Rejected as refusal:
            return Decision(record, None, partial(self._refuse, envelope, refusal, received))
        except Exception as error:
            # A bug met by one record must not stall its partition: it is answered and
            # logged with its traceback.
            log.exception("intake failed", extra={"request_id": envelope.request_id})
            failure = unexpected_failure(error)
            return Decision(record, None, partial(self._failed, envelope, failure, received))
        return Decision(record, Scope.of(command), partial(self._work, envelope, command, received))

    def _admit(self, envelope: Envelope) -> Command:
        """The key first, then its partition, then the limiter, then the fields: a record on
        the wrong partition never counts in a window kept for that partition's users."""
        owner = envelope.owner
        if owner is not None:
            if self._rules.check_key_partition and (misplaced := wrong_partition(envelope)):
                observe_partition_mismatch()
                raise misplaced
            if not self._throttle.admit(owner, envelope.action, envelope.record):
                raise Rejected(
                    ErrorCode.THROTTLED, f"the user's {envelope.action} rate is over its limit"
                )
        return parse_command(envelope, self._rules.system_category_keys)

    async def _refuse(self, envelope: Envelope, refusal: Rejected, received: float) -> Answer:
        outcome = Outcome(code=refusal.code, message=refusal.message)
        answer = self._answer(envelope, None, outcome, received)
        if isinstance(refusal, Unreadable):
            # The copy goes first: once a result is out, the record may be committed.
            copy = partial(self._dead_letter, envelope.record, refusal)
            answer.deliveries.insert(0, Delivery("dead_letter", copy))
        return answer

    async def _failed(self, envelope: Envelope, failure: Outcome, received: float) -> Answer:
        return self._answer(envelope, None, failure, received)

    async def _work(self, envelope: Envelope, command: Command, received: float) -> Answer:
        outcome = await self._bus.handle(command)
        answer = self._answer(envelope, command, outcome, received)
        if outcome.event is not None:
            # Before the result: a crash in between re-publishes the identical event.
            send = partial(self._events.publish, command.owner, outcome.event)
            answer.deliveries.insert(0, Delivery("event", send))
        return answer

    def _answer(
        self, envelope: Envelope, command: Command | None, outcome: Outcome, received: float
    ) -> Answer:
        result = _result(envelope, outcome)
        send = partial(self._results.publish, envelope.owner, result)
        return Answer(envelope, command, outcome, [Delivery("publish", send)], received)

    async def _dead_letter(self, record: IncomingRecord, refusal: Unreadable) -> None:
        await self._dead_letters.send(record, refusal)
        log.warning(
            "record dead-lettered",
            extra={
                "code": refusal.code.value,
                "reason": refusal.message,
                "partition": record.partition,
                "offset": record.offset,
            },
        )


def intake_rules(
    system_category_ids: Collection[str], max_command_bytes: int, check_key_partition: bool
) -> IntakeRules:
    return IntakeRules(
        frozenset(identity_key(c) for c in system_category_ids),
        max_command_bytes,
        check_key_partition,
    )


def _result(envelope: Envelope, outcome: Outcome) -> Result:
    if outcome.result is not None:
        return outcome.result
    code = outcome.code or ErrorCode.INTERNAL
    return failed(envelope.request_id, code, outcome.message)


def _log_outcome(answer: Answer) -> None:
    envelope, command, outcome = answer.envelope, answer.command, answer.outcome
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
            "action": type(command).__name__ if command else None,
            "image_url": (
                redact_url(command.image_url) if isinstance(command, RegisterFace) else None
            ),
            "timings_ms": {k: round(v, 1) for k, v in outcome.timings_ms.items()},
        },
    )
