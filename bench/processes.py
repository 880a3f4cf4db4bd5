"""What the benchmark reads of running processes (Linux /proc)."""

from __future__ import annotations

import contextlib
from pathlib import Path

_LISTEN = "0A"  # TCP state in /proc/net/tcp


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def inference_workers(pid: int) -> list[int]:
    """The service's inference workers: its children started by multiprocessing's spawn.
    Its other child is the embedded broker."""
    return [child for child in children(pid) if "multiprocessing.spawn" in command_line(child)]


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on `port` (any address), found from the
    socket's inode in /proc/net/tcp and the process's open files. The embedded broker is
    found this way whoever started it: a service reuses a broker it finds already there."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().name in inodes:
                        return int(entry.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == _LISTEN:
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
