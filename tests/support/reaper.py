"""Nothing the suite starts outlives it.

A service under test starts brokers and inference workers in sessions of their own (so that
a "pod kill" can be simulated), and a killed service leaves its embedded broker running
on purpose. The test process makes itself a child subreaper (Linux PR_SET_CHILD_SUBREAPER):
whatever its descendants leave orphaned becomes its child instead of init's, so at the end
of the run every process still below it can be found and killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def dying_with_parent(command: list[str]) -> list[str]:
    """`command` made to get SIGKILL when the test process dies, even by kill -9, when nothing
    of the suite is left to clean up after it. util-linux's setpriv sets PR_SET_PDEATHSIG
    and execs: no Python runs in the forked child of this threaded process."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *command] if setpriv else command


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            # The command name may hold spaces and parentheses: fields follow the last ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, p in parents.items() if p == parent]
        found += children
        frontier += children
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return "?"


# multiprocessing's helper lives as long as the test process by design, and ends with it.
_OWN_HELPERS = ("multiprocessing.resource_tracker",)


def kill_leftovers() -> list[str]:
    """SIGKILL every process still below this one; returns what they were."""
    leftovers = [
        pid
        for pid in descendants(os.getpid())
        if not any(helper in command_line(pid) for helper in _OWN_HELPERS)
    ]
    left = [f"{pid} {command_line(pid)[:120]}" for pid in leftovers]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass
    return left
