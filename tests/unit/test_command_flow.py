"""The flow's promises: refusals are answered without waiting for admitted work, a person's
commands run in order, a command over a whole library waits for the user's earlier commands
and holds back the later ones, and a partition is committed only past finished records."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.domain.commands import Scope
from service.entrypoints.command_flow import CommandFlow, Handling
from service.entrypoints.offsets import OffsetLedger
from service.service_layer.handling import Answer, Decision
from service.service_layer.intake import Envelope, IncomingRecord
from service.service_layer.outcome import Outcome


class ScriptedHandling:
    """Each record's work waits on a gate named by its value: `ann-1` is a command of
    person ann, `ALL-1` one over the whole library, anything else a refusal."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.finished: list[str] = []
        self.forgotten: list[int] = []

    def decide(self, records: Sequence[IncomingRecord]) -> list[Decision]:
        return [self._decision(r) for r in records]

    async def deliver(self, answer: Answer) -> None:
        self.finished.append(str(answer.envelope.body))

    def forget_partition(self, partition: int) -> None:
        self.forgotten.append(partition)

    def _decision(self, record: IncomingRecord) -> Decision:
        name = (record.value or b"").decode()
        scope = None
        if name.startswith("ALL"):
            scope = Scope(owner="u", exclusive=True)
        elif "-" in name:
            scope = Scope(owner="u", person=("u", "c", name.split("-")[0]))
        gate = self.gates.setdefault(name, asyncio.Event())

        async def work() -> Answer:
            self.started.append(name)
            await gate.wait()
            return Answer(Envelope(record, "u", name, name), None, Outcome())

        return Decision(record, scope, work)


class Commits:
    def __init__(self) -> None:
        self.calls: list[dict[int, int]] = []
        self.position: dict[int, int] = {}

    async def __call__(self, positions: dict[int, int]) -> None:
        self.calls.append(positions)
        self.position.update(positions)


def records(partition: int, first: int, *names: str) -> list[IncomingRecord]:
    return [
        IncomingRecord("cmds", partition, first + i, 0, b"user", name.encode())
        for i, name in enumerate(names)
    ]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def flow(handling: Handling, max_in_flight: int = 100) -> CommandFlow:
    return CommandFlow(handling, max_in_flight=max_in_flight)


async def waiting_for_room(
    commands: CommandFlow, commits: Commits, *names: str
) -> asyncio.Task[None]:
    """A poll that fills the flow: its `take` is still waiting for room."""
    taking = asyncio.create_task(commands.take(records(0, 0, *names), commits))
    await settle()
    assert not taking.done()
    return taking


async def test_a_later_record_finishes_first_but_the_commit_waits_for_the_earlier_one() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(0, 10, "slow", "quick"), commits)
    scripted.gates["quick"].set()
    await settle()
    assert scripted.finished == ["quick"]
    assert commits.position.get(0, 10) == 10  # offset 10 is still under way
    scripted.gates["slow"].set()
    await settle()
    assert commits.position[0] == 12
    await commands.close(1)


async def test_one_persons_commands_run_in_partition_order_across_polls() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(0, 0, "ann-1"), commits)
    await commands.take(records(0, 1, "ann-2", "bob-1"), commits)
    scripted.gates["ann-2"].set()
    scripted.gates["bob-1"].set()
    await settle()
    assert scripted.finished == ["bob-1"]  # ann-2 waits for ann-1, bob does not
    scripted.gates["ann-1"].set()
    await settle()
    assert scripted.finished == ["bob-1", "ann-1", "ann-2"]
    assert commits.position[0] == 3
    await commands.close(1)


async def test_take_returns_only_when_there_is_room() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted, max_in_flight=2)
    taking = await waiting_for_room(commands, commits, "a", "b")
    scripted.gates["a"].set()
    await settle()
    assert taking.done()
    scripted.gates["b"].set()
    await commands.close(1)


async def test_a_revoked_partition_is_cut_short_and_committed_up_to_its_first_unfinished() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(3, 0, "done", "stuck", "after"), commits)
    scripted.gates["done"].set()
    scripted.gates["after"].set()
    await settle()
    await commands.revoked({3})
    assert commits.position[3] == 1  # "stuck" and what follows go to the next owner
    assert scripted.forgotten == [3]
    assert commands.in_flight() == 0
    scripted.gates["stuck"].set()
    await settle()
    assert "stuck" not in scripted.finished


async def test_close_waits_for_work_then_commits_and_takes_nothing_more() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(0, 0, "a"), commits)
    closing = asyncio.create_task(commands.close(5))
    await settle()
    await commands.take(records(0, 1, "late"), commits)
    scripted.gates["a"].set()
    await closing
    assert commits.position[0] == 1
    assert scripted.finished == ["a"]


async def test_a_close_past_its_deadline_leaves_the_unfinished_uncommitted() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(0, 0, "stuck"), commits)
    await commands.close(0.05)
    assert commits.position.get(0, 0) == 0


def test_the_ledger_commits_each_partition_up_to_its_oldest_pending_record() -> None:
    ledger = OffsetLedger()
    for offset in (5, 6, 7):
        ledger.taken(0, offset)
    ledger.taken(1, 40)
    ledger.done(0, 6)
    ledger.done(1, 40)
    assert ledger.uncommitted() == {0: 5, 1: 41}
    ledger.committed({0: 5, 1: 41})
    assert ledger.uncommitted() == {}
    ledger.done(0, 5)
    assert ledger.uncommitted() == {0: 7}
    ledger.done(0, 7)
    assert ledger.uncommitted({0}) == {0: 8}


async def test_a_command_over_the_whole_library_waits_for_the_users_earlier_commands() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.take(records(0, 0, "ann-1", "bob-1", "ALL-1", "ann-2", "refused"), commits)
    await settle()
    assert scripted.started == ["ann-1", "bob-1", "refused"]  # ALL-1 waits, ann-2 behind it
    scripted.gates["refused"].set()
    scripted.gates["ann-1"].set()
    await settle()
    assert "ALL-1" not in scripted.started  # bob-1 is still under way
    scripted.gates["bob-1"].set()
    await settle()
    assert scripted.started[-1] == "ALL-1"
    scripted.gates["ann-2"].set()
    await settle()
    assert "ann-2" not in scripted.started  # held back until the library command is done
    scripted.gates["ALL-1"].set()
    await settle()
    assert scripted.finished == ["refused", "ann-1", "bob-1", "ALL-1", "ann-2"]
    assert commits.position[0] == 5
    await commands.close(1)


async def test_a_poll_waiting_for_room_is_let_go_when_its_partition_is_revoked() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted, max_in_flight=2)
    taking = await waiting_for_room(commands, commits, "a", "b")

    await commands.revoked({0})
    await settle()

    assert taking.done()  # a rebalance under a backlog must not stall the consumer
    assert commands.in_flight() == 0


async def test_records_of_a_revoked_partition_handed_over_late_are_left_to_its_new_owner() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted)
    await commands.revoked({1})

    await commands.take(records(1, 7, "late") + records(2, 0, "kept"), commits)
    await settle()
    assert scripted.started == ["kept"]

    commands.assigned({1})
    await commands.take(records(1, 7, "back"), commits)
    await settle()
    assert scripted.started == ["kept", "back"]
    for gate in scripted.gates.values():
        gate.set()
    await commands.close(1)
    assert 1 in commits.position and commits.position[2] == 1


async def test_a_close_lets_a_poll_waiting_for_room_return() -> None:
    scripted, commits = ScriptedHandling(), Commits()
    commands = flow(scripted, max_in_flight=1)
    taking = await waiting_for_room(commands, commits, "stuck")

    await commands.close(0.01)
    await settle()

    assert taking.done()
