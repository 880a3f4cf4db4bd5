"""CPU time spent by processes while something runs, read from Linux /proc.

Wall-clock throughput on two shared cores says little about where the cores went: the
service's workers compete with its broker, its own event loop and the benchmark's client.
Core-seconds per process, read before and after a measured loop, say it directly.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

BENCH = "bench client"  # this process: the Kafka or HTTP client and the image server
MACHINE = "whole machine"  # every process, ours or not: shows what else was running


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads); NaN once it has exited, so a worker
    replaced mid-loop spoils its sum instead of silently counting less."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return math.nan
    # The command name may hold spaces and parentheses: fields follow the last ')', and
    # utime and stime are fields 14 and 15 of the whole line.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """Core-seconds every CPU spent on anything but idling or waiting for I/O."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    # guest and guest_nice are already counted in user and nice.
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_S


Roles = Mapping[str, Sequence[int]]


def snapshot(roles: Roles) -> dict[str, float]:
    reading = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}
    reading[BENCH] = own_cpu_seconds()
    reading[MACHINE] = machine_busy_seconds()
    return reading


@contextmanager
def cpu_spent(roles: Roles) -> Iterator[dict[str, float]]:
    """Core-seconds each role's processes (plus this process and the whole machine) spend
    inside the block; the dict is filled when the block ends."""
    spent: dict[str, float] = {}
    before = snapshot(roles)
    yield spent
    after = snapshot(roles)
    spent.update({role: after[role] - before[role] for role in before})


def per_item_ms(spent: Mapping[str, float], items: int) -> dict[str, float]:
    return {role: seconds * 1000 / items for role, seconds in spent.items()}
