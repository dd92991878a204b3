"""The twin's nodes yield the CPU to the machine's own processes, as remote machines would.

A twin emulates many machines on a few cores, next to the tools under test (the suite, clush, a
benchmark's SSH pool), which on a real cluster never share a core with the nodes. Left alone, each
emulated SSH session is its own session, hence under autogroup scheduling its own scheduler group with
the weight of a whole program: 32 busy sessions would leave a local process 1/34 of the machine. So all
node processes of a twin run in one CPU cgroup of low weight (cgroup v2 ``cpu.weight``, v1
``cpu.shares``; autogroups only exist in the root group), and at ``nice`` 10 where no cgroup can be made.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

NICE = 10
V2_ROOT, V1_ROOT = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
V2_WEIGHT, V1_SHARES = "10", "102"  # a tenth of a default group (100 / 1024)


def make_group(name: str) -> Path | None:
    """A fresh low-weight CPU cgroup ``name``; None where cgroups cannot be written (not root, no controller)."""
    with contextlib.suppress(OSError):
        if "cpu" in (V2_ROOT / "cgroup.subtree_control").read_text().split():
            return _make(V2_ROOT / name, "cpu.weight", V2_WEIGHT)
    with contextlib.suppress(OSError):
        if (V1_ROOT / "cpu.shares").is_file():
            return _make(V1_ROOT / name, "cpu.shares", V1_SHARES)
    return None


def _make(path: Path, weight_file: str, weight: str) -> Path | None:
    remove_group(path)  # a crashed twin's leftover of the same name
    try:
        path.mkdir()
        (path / weight_file).write_text(weight)
    except OSError:
        remove_group(path)
        return None
    return path


def remove_group(path: Path | None, timeout: float = 5.0) -> None:
    """Remove the cgroup once its processes are gone (they leave it as they exit)."""
    if path is None:
        return
    deadline = time.monotonic() + timeout
    while path.exists():
        try:
            path.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def join(group: bytes | None) -> None:
    """In a node's process, between fork and exec (plain os calls only): move into ``group``'s
    ``cgroup.procs`` and lower the priority."""
    with contextlib.suppress(OSError):
        os.nice(NICE)
    if group is None:
        return
    try:
        fd = os.open(group, os.O_WRONLY)
        try:
            os.write(fd, b"0\n")  # 0: the writing process
        finally:
            os.close(fd)
    except OSError:
        pass
