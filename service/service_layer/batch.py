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
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from service.contracts.messages import RegisterFailed, RegisterResult, RegisterSucceeded
from service.domain.commands import RegisterFace
from service.domain.errors import ErrorCode, Rejected
from service.domain.limiter import UserRateLimiter
from service.logs import redact_url
from service.service_layer.intake import Envelope, IncomingRecord, open_envelope, parse_command
from service.service_layer.ports import ResultPublisher
from service.service_layer.register import Outcome, RegisterFaceHandler, unexpected_failure

log = logging.getLogger("service.commands")


@dataclass(frozen=True)
class _Admitted:
    envelope: Envelope
    command: RegisterFace
    received: float


class CommandBatchProcessor:
    def __init__(
        self,
        handler: RegisterFaceHandler,
        limiter: UserRateLimiter,
        publisher: ResultPublisher,
        system_category_keys: Collection[str],
    ) -> None:
        self._handler = handler
        self._limiter = limiter
        self._publisher = publisher
        self._system_category_keys = frozenset(system_category_keys)

    async def process(self, records: Sequence[IncomingRecord]) -> None:
        """Returns once every record of the batch has had its result published.

        Raises only when a result could not be published; the batch is then redone. A
        TaskGroup cancels the other persons' work first, so no leftover task races the redo.
        """
        received = time.perf_counter()
        admitted: list[_Admitted] = []
        refusals: list[tuple[Envelope, Outcome]] = []
        for record in records:
            envelope = open_envelope(record)
            try:
                command = self._admit(envelope)
            except Rejected as refusal:
                refusals.append((envelope, Outcome(code=refusal.code, message=refusal.message)))
                continue
            except Exception as error:
                # A bug met by one record must not stall its partition: it is answered and
                # logged with its traceback.
                log.exception("intake failed", extra={"request_id": envelope.request_id})
                refusals.append((envelope, unexpected_failure(error)))
                continue
            admitted.append(_Admitted(envelope, command, received))
        async with asyncio.TaskGroup() as answers:
            for envelope, outcome in refusals:
                answers.create_task(self._answer(envelope, None, outcome, received))
        async with asyncio.TaskGroup() as persons:
            for group in _by_person(admitted):
                persons.create_task(self._run_in_order(group))

    def _admit(self, envelope: Envelope) -> RegisterFace:
        owner, timestamp_ms = envelope.owner, envelope.record.timestamp_ms
        if owner is not None and not self._limiter.admit(owner, timestamp_ms):
            raise Rejected(ErrorCode.THROTTLED, "the user's request rate is over its limit")
        return parse_command(envelope, self._system_category_keys)

    async def _run_in_order(self, group: list[_Admitted]) -> None:
        for item in group:
            outcome = await self._handler.handle(item.command)
            await self._answer(item.envelope, item.command, outcome, item.received)

    async def _answer(
        self,
        envelope: Envelope,
        command: RegisterFace | None,
        outcome: Outcome,
        received: float,
    ) -> None:
        result: RegisterResult
        if outcome.code is None and command is not None and outcome.face_id is not None:
            result = RegisterSucceeded(
                RequestId=envelope.request_id,
                FaceId=outcome.face_id,
                CategoryId=command.category.display,
                PersonId=command.person.display,
            )
        else:
            code = outcome.code or ErrorCode.INTERNAL
            result = RegisterFailed(
                RequestId=envelope.request_id,
                Code=code.value,
                Message=outcome.message,
                HttpStatusCode=code.http_status,
            )
        with _publish_timer(outcome):
            await self._publisher.publish(envelope.owner, result)
        outcome.timings_ms["total"] = (time.perf_counter() - received) * 1000
        _log_outcome(envelope, command, outcome)


def _by_person(admitted: list[_Admitted]) -> list[list[_Admitted]]:
    groups: dict[tuple[str, str, str], list[_Admitted]] = {}
    for item in admitted:
        groups.setdefault(item.command.person_ref, []).append(item)
    return list(groups.values())


class _publish_timer:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self._outcome.timings_ms["publish"] = (time.perf_counter() - self._start) * 1000


def _log_outcome(envelope: Envelope, command: RegisterFace | None, outcome: Outcome) -> None:
    record = envelope.record
    log.info(
        "command done",
        extra={
            "request_id": envelope.request_id,
            "user": envelope.owner,
            "code": outcome.code.value if outcome.code else "OK",
            "face_id": outcome.face_id,
            "stored": outcome.stored,
            "partition": record.partition,
            "offset": record.offset,
            "image_url": redact_url(command.image_url) if command else None,
            "timings_ms": {k: round(v, 1) for k, v in outcome.timings_ms.items()},
        },
    )
