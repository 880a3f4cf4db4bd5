"""Command records flowing through the service without waiting for one another.

The one place that knows Kafka's rules for commands, for live traffic and for replays
alike. Each poll is taken at once: its refusals are answered right away, its admitted
commands wait only for what their scope requires (see `Scope`), and the consumer goes back
to Kafka for more, up to `max_in_flight` records unanswered. Offsets are committed as
records finish, each partition only up to its oldest record still under way; a revoked
partition's work is cut short and committed up to there; a close drains, then commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from service.domain.commands import Scope
from service.entrypoints.offsets import OffsetLedger
from service.service_layer.handling import Answer, Decision
from service.service_layer.intake import IncomingRecord

log = logging.getLogger("service.flow")

Commit = Callable[[dict[int, int]], Awaitable[None]]
Answered = Callable[[Answer], None]


class Handling(Protocol):
    """What the flow needs of the service layer (`CommandHandling`)."""

    def decide(self, records: Sequence[IncomingRecord]) -> list[Decision]: ...

    async def deliver(self, answer: Answer) -> None: ...

    def forget_partition(self, partition: int) -> None: ...


class UserOrder:
    """Which earlier commands of the same user a command must wait for."""

    def __init__(self) -> None:
        self._persons: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._exclusive: asyncio.Task[None] | None = None
        self._all: set[asyncio.Task[None]] = set()

    def before(self, scope: Scope) -> list[asyncio.Task[None]]:
        if scope.exclusive:
            return list(self._all)
        waits = [self._exclusive] if self._exclusive is not None else []
        if scope.person is not None and (tail := self._persons.get(scope.person)):
            waits.append(tail)
        return waits

    def started(self, scope: Scope, task: asyncio.Task[None]) -> None:
        self._all.add(task)
        if scope.exclusive:
            self._exclusive = task
            self._persons.clear()  # each of them comes before this one
        elif scope.person is not None:
            self._persons[scope.person] = task

    def finished(self, task: asyncio.Task[None]) -> None:
        self._all.discard(task)
        if self._exclusive is task:
            self._exclusive = None
        for person, tail in list(self._persons.items()):
            if tail is task:
                del self._persons[person]

    def idle(self) -> bool:
        return not self._all


class CommandFlow:
    def __init__(
        self,
        handling: Handling,
        max_in_flight: int,
        answered: Answered | None = None,
    ) -> None:
        self._handling = handling
        self._max_in_flight = max_in_flight
        self._answered = answered
        self._ledger = OffsetLedger()
        self._users: dict[str, UserOrder] = {}
        self._tasks: dict[int, set[asyncio.Task[None]]] = {}
        self._room = asyncio.Event()
        self._moved = asyncio.Event()
        self._commit: Commit | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._revoked: set[int] = set()
        self.failures = 0  # records whose work raised: held uncommitted, see `_finished`

    def in_flight(self) -> int:
        return self._ledger.in_flight()

    async def take(self, records: Sequence[IncomingRecord], commit: Commit) -> None:
        """Starts the records' work; returns when there is room for the next poll."""
        if self._closing:
            return  # not committed: whoever consumes the partition next takes them again
        self._commit = commit
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_as_records_finish())
        # A poll fetched before a rebalance may be handed over after it: its records of a
        # revoked partition belong to the new owner, and committing them would fail.
        current = [r for r in records if r.partition not in self._revoked]
        for decision in self._handling.decide(current):
            self._start(decision)
        while self._ledger.in_flight() >= self._max_in_flight and not self._closing:
            self._room.clear()
            await self._room.wait()

    def assigned(self, partitions: set[int]) -> None:
        self._revoked -= partitions

    async def revoked(self, partitions: set[int]) -> None:
        """Stops the partitions' work and commits what finished before another consumer
        takes them: it redoes only what was cut short, which is safe by RequestId."""
        cut = [task for p in partitions for task in self._tasks.pop(p, set())]
        for task in cut:
            task.cancel()
        await asyncio.gather(*cut, return_exceptions=True)
        await self._commit_now(partitions)
        for partition in partitions:
            self._ledger.forget(partition)
            self._handling.forget_partition(partition)
        self._revoked |= partitions
        self._room.set()  # a poll waiting for room must not wait for work that is gone

    async def close(self, deadline_s: float | None) -> None:
        """Lets the work under way finish (for up to `deadline_s`), then commits it."""
        self._closing = True
        self._room.set()  # a poll waiting for room takes nothing more: it returns
        running = [task for tasks in self._tasks.values() for task in tasks]
        if running:
            _, late = await asyncio.wait(running, timeout=deadline_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                log.warning("stopped with records unfinished", extra={"records": len(late)})
        await self._commit_now(None)
        if self._committer is not None:
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)

    def _start(self, decision: Decision) -> None:
        record, scope = decision.record, decision.scope
        self._ledger.taken(record.partition, record.offset)
        if scope is None:
            task = asyncio.create_task(self._run(decision, []))
        else:
            order = self._users.setdefault(scope.owner, UserOrder())
            task = asyncio.create_task(self._run(decision, order.before(scope)))
            order.started(scope, task)
        self._tasks.setdefault(record.partition, set()).add(task)
        task.add_done_callback(lambda finished: self._finished(decision, finished))

    async def _run(self, decision: Decision, before: list[asyncio.Task[None]]) -> None:
        if before:
            # The earlier commands first; how they ended does not matter here.
            await asyncio.wait(before)
        answer = await decision.work()
        await self._handling.deliver(answer)
        if self._answered is not None:
            self._answered(answer)

    def _finished(self, decision: Decision, task: asyncio.Task[None]) -> None:
        record, scope = decision.record, decision.scope
        self._tasks.get(record.partition, set()).discard(task)
        if scope is not None and (order := self._users.get(scope.owner)) is not None:
            order.finished(task)
            if order.idle():
                del self._users[scope.owner]
        if task.cancelled():
            return  # cut short by a revocation or a stop: not done, not committed
        if (error := task.exception()) is not None:
            # Work and delivery answer every failure themselves: this is a bug. The record
            # stays uncommitted, so the partition holds here rather than lose it; a replay
            # reports it and fails.
            self.failures += 1
            log.error(
                "record work failed",
                exc_info=error,
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        self._ledger.done(record.partition, record.offset)
        self._room.set()
        self._moved.set()

    async def _commit_as_records_finish(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            await self._commit_now(None)

    async def _commit_now(self, partitions: set[int] | None) -> None:
        positions = self._ledger.uncommitted(partitions)
        if not positions or self._commit is None:
            return
        try:
            await self._commit(positions)
        except Exception as error:
            # A commit that fails (a rebalance under way) is repeated with the next one;
            # records it covered may be redelivered, and are answered the same by RequestId.
            log.warning("offset commit failed", extra={"error": repr(error)})
            return
        self._ledger.committed(positions)
