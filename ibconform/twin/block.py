"""Address blocks: each running twin owns one block of loopback addresses, claimed with a lock file.

Block ``b`` (0..99) holds ``127.<100+b>.0.1`` onwards, one address per node
(``address(b, i)``); ``127.<100+b>.255.254`` is left for the twin's own services (the Kubernetes
API). A block is claimed by ``flock`` on ``<run dir>/block-<b>.lock``, which the kernel releases when
the owning process dies however it dies, so a twin killed with SIGKILL never blocks the next one. A
block whose node addresses are still bound on :22 (a straggler) is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ibconform.twin.errors import TwinError

BLOCKS = 100
PER_BLOCK = 250 * 255     # node addresses in one block


def address(block: int, index: int) -> str:
    """The loopback address of node ``index`` (0-based) in ``block``: 127.<100+block>.<hi>.<1..250>."""
    if not 0 <= block < BLOCKS or not 0 <= index < PER_BLOCK:
        raise ValueError(f"no address for node {index} of block {block}")
    return f"127.{100 + block}.{index // 250}.{index % 250 + 1}"


def service_address(block: int) -> str:
    return f"127.{100 + block}.255.254"


def run_dir() -> Path:
    """Where the lock files live: /run/ibconform-twin for root, else under the temp dir."""
    if os.geteuid() == 0 and os.access("/run", os.W_OK):
        path = Path("/run/ibconform-twin")
    else:
        path = Path(tempfile.gettempdir()) / f"ibconform-twin-run-{os.getuid()}"
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def _bindable(ip: str, port: int = 22) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


@dataclass
class Block:
    """A claimed block; ``release()`` (or the death of this process) frees it."""

    index: int
    fd: int | None

    def address(self, i: int) -> str:
        return address(self.index, i)

    @property
    def service_address(self) -> str:
        return service_address(self.index)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def try_lock(index: int) -> Block | None:
    """Lock block ``index`` if no one holds it (to clean up after a dead twin), else None."""
    fd = os.open(run_dir() / f"block-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Block(index, fd)


def claim(nodes: int) -> Block:
    """Claim the first free block with room for ``nodes`` addresses, all of them free on :22."""
    if nodes > PER_BLOCK:
        raise TwinError(f"a twin holds at most {PER_BLOCK} nodes, the scenario has {nodes}")
    folder = run_dir()
    busy = []
    for b in range(BLOCKS):
        fd = os.open(folder / f"block-{b}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        taken = next((address(b, i) for i in range(nodes) if not _bindable(address(b, i))), None)
        if taken is not None:
            busy.append(f"{taken}:22")
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return Block(b, fd)
    hint = f" ({len(busy)} blocks unlocked but bound, e.g. {busy[0]})" if busy else ""
    raise TwinError(f"no free twin address block among {BLOCKS} in {folder}{hint}: run 'ibconform twin down' "
                    "on twins left running")
