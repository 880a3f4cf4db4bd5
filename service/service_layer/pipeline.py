"""Command records flowing through the service without waiting for one another.

Each poll is taken at once: its refusals (throttled, invalid, unreadable) are answered
right away, its admitted commands join their person's queue, and the consumer goes back to
Kafka for more, so a throttled command is never answered behind inference. Offsets are
committed as records finish, each partition only up to its oldest record still under way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from service.service_layer.batch import CommandBatchProcessor, Job
from service.service_layer.intake import IncomingRecord
from service.service_layer.offsets import OffsetLedger

log = logging.getLogger("service.pipeline")

Commit = Callable[[dict[int, int]], Awaitable[None]]


class CommandPipeline:
    def __init__(
        self,
        processor: CommandBatchProcessor,
        max_in_flight: int,
        retry_delay_s: float,
    ) -> None:
        self._processor = processor
        self._max_in_flight = max_in_flight
        self._retry_delay_s = retry_delay_s
        self._ledger = OffsetLedger()
        self._tails: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._tasks: dict[int, set[asyncio.Task[None]]] = {}
        self._room = asyncio.Event()
        self._moved = asyncio.Event()
        self._commit: Commit | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closing = False

    def in_flight(self) -> int:
        return self._ledger.in_flight()

    async def take(self, records: Sequence[IncomingRecord], commit: Commit) -> None:
        """Starts the records' work; returns when there is room for the next poll."""
        if self._closing:
            return  # not committed: whoever consumes the partition next takes them again
        self._commit = commit
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_as_records_finish())
        for job in self._processor.intake(records):
            self._start(job)
        while self._ledger.in_flight() >= self._max_in_flight:
            self._room.clear()
            await self._room.wait()

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
            self._processor.forget_partition(partition)

    async def close(self, deadline_s: float) -> None:
        """Lets the work under way finish for up to `deadline_s`, then commits it."""
        self._closing = True
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

    def _start(self, job: Job) -> None:
        record = job.record
        self._ledger.taken(record.partition, record.offset)
        before = self._tails.get(job.person) if job.person is not None else None
        task = asyncio.create_task(self._run(job, before))
        self._tasks.setdefault(record.partition, set()).add(task)
        if job.person is not None:
            self._tails[job.person] = task
        task.add_done_callback(lambda finished: self._finished(job, finished))

    async def _run(self, job: Job, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            # The same person's earlier command first; how it ended does not matter here.
            await asyncio.wait([before])
        while True:
            try:
                await job.run()
                return
            except Exception:
                # Only publishing raises, once its retries are spent: the result must not
                # be lost, and the partition's commits wait for it meanwhile.
                log.exception(
                    "result not published; trying again",
                    extra={"partition": job.record.partition, "offset": job.record.offset},
                )
                await asyncio.sleep(self._retry_delay_s)

    def _finished(self, job: Job, task: asyncio.Task[None]) -> None:
        record = job.record
        self._tasks.get(record.partition, set()).discard(task)
        if job.person is not None and self._tails.get(job.person) is task:
            del self._tails[job.person]
        if task.cancelled():
            return  # cut short by a revocation or a stop: not done, not committed
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
