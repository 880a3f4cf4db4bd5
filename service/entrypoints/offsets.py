"""Which offsets may be committed when records finish out of order.

Records of one partition are taken in offset order but finish in any order: a throttled
command is answered at once, an admitted one after inference. A partition may only be
committed up to its oldest record still under way, or a crash would skip that record.
"""

from __future__ import annotations


class OffsetLedger:
    def __init__(self) -> None:
        self._pending: dict[int, set[int]] = {}
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    def taken(self, partition: int, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def done(self, partition: int, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None:
            pending.discard(offset)

    def in_flight(self) -> int:
        return sum(len(pending) for pending in self._pending.values())

    def position(self, partition: int) -> int | None:
        """The offset to commit: the oldest record under way, or the next one to come."""
        if partition not in self._next:
            return None
        pending = self._pending.get(partition)
        return min(pending) if pending else self._next[partition]

    def uncommitted(self, partitions: set[int] | None = None) -> dict[int, int]:
        """Positions that moved since `committed` was last told of them."""
        moved = {}
        for partition in self._next if partitions is None else partitions & self._next.keys():
            position = self.position(partition)
            if position is not None and position != self._committed.get(partition):
                moved[partition] = position
        return moved

    def committed(self, positions: dict[int, int]) -> None:
        self._committed.update(positions)

    def forget(self, partition: int) -> None:
        for table in (self._pending, self._next, self._committed):
            table.pop(partition, None)
