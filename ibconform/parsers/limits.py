"""Parse what decides whether a process may pin memory for RDMA: its locked-memory limit and its
capabilities (``CAP_IPC_LOCK`` lifts the limit).

- ``/proc/<pid>/limits``: a table whose ``Max locked memory`` row gives the soft and hard limits in
  BYTES (or ``unlimited``). Older kernels pad every row with trailing spaces; rows are split on whitespace.
- ``ulimit -l`` (the shell's soft limit) in KiB, or ``unlimited``; ``ulimit -a`` prints it in the row
  ``max locked memory       (kbytes, -l) <n>``.
- ``/proc/<pid>/status``: ``CapInh``/``CapPrm``/``CapEff``/``CapBnd``/``CapAmb``, 16 hex digits each.

Unlimited reads as ``None``.

>>> parse_memlock_limit("Max locked memory         65536                65536                bytes     \\n")
MemlockLimit(soft_bytes=65536, hard_bytes=65536)
>>> parse_ulimit_l("unlimited\\n") is None
True
>>> parse_capabilities("CapEff:\\t00000000a80425fb\\n").ipc_lock_effective
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.errors import ParseError

#: Bit of CAP_IPC_LOCK in the capability masks (linux include/uapi/linux/capability.h).
CAP_IPC_LOCK = 14

_MEMLOCK_ROW = re.compile(r"Max locked memory\s+(?P<soft>\S+)\s+(?P<hard>\S+)(?:\s+(?P<units>\S+))?")
_ULIMIT_A_ROW = re.compile(r"max locked memory\s+\(kbytes, -l\)\s+(?P<value>\S+)")
_LIMIT = re.compile(r"[0-9]+|unlimited")
_CAP_ROW = re.compile(r"(?P<name>Cap(?:Inh|Prm|Eff|Bnd|Amb)):\s*(?P<mask>\S*)")
_MASK = re.compile(r"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True)
class MemlockLimit:
    """The ``Max locked memory`` row of ``/proc/<pid>/limits``: bytes, ``None`` when unlimited."""

    soft_bytes: int | None
    hard_bytes: int | None


@dataclass(frozen=True)
class Capabilities:
    """The capability masks of ``/proc/<pid>/status``; a mask is ``None`` when its row is missing."""

    inheritable: int | None
    permitted: int | None
    effective: int | None
    bounding: int | None
    ambient: int | None

    @property
    def ipc_lock_effective(self) -> bool | None:
        """Whether CAP_IPC_LOCK is in the effective set (``None`` when ``CapEff`` is missing)."""
        return None if self.effective is None else has_capability(self.effective, CAP_IPC_LOCK)

    @property
    def ipc_lock_permitted(self) -> bool | None:
        return None if self.permitted is None else has_capability(self.permitted, CAP_IPC_LOCK)

    @property
    def ipc_lock_bounding(self) -> bool | None:
        return None if self.bounding is None else has_capability(self.bounding, CAP_IPC_LOCK)


def has_capability(mask: int, bit: int) -> bool:
    """Whether capability ``bit`` is set in ``mask``.

    >>> has_capability(0xa80465fb, CAP_IPC_LOCK), has_capability(0xa80425fb, CAP_IPC_LOCK)
    (True, False)
    """
    return bool(mask >> bit & 1)


def parse_memlock_limit(text: str) -> MemlockLimit:
    """The ``Max locked memory`` row of ``/proc/<pid>/limits`` (the whole file or the row alone).

    Raises ``ParseError`` when the row is missing, appears twice, has values that are neither a number
    nor ``unlimited``, or units other than ``bytes``.
    """
    rows = [m for line in text.splitlines() if (m := _MEMLOCK_ROW.fullmatch(line.strip()))]
    if len(rows) != 1:
        raise ParseError(f"/proc/<pid>/limits: expected one 'Max locked memory' row, found {len(rows)}", raw=text)
    row = rows[0]
    if row["units"] not in (None, "bytes") or not (_LIMIT.fullmatch(row["soft"]) and _LIMIT.fullmatch(row["hard"])):
        raise ParseError(f"/proc/<pid>/limits: expected 'Max locked memory <n|unlimited> <n|unlimited> bytes', got "
                         f"{row[0][:100]!r}", raw=text)
    return MemlockLimit(soft_bytes=_limit(row["soft"]), hard_bytes=_limit(row["hard"]))


def parse_ulimit_l(text: str) -> int | None:
    """``ulimit -l`` (a bare number of KiB or ``unlimited``) or the ``max locked memory`` row of
    ``ulimit -a``: KiB, ``None`` when unlimited.

    >>> parse_ulimit_l("max locked memory       (kbytes, -l) 65536\\n")
    65536
    """
    value = text.strip()
    row = _ULIMIT_A_ROW.search(value)
    if row and len(_ULIMIT_A_ROW.findall(value)) == 1:
        value = row["value"]
    if not _LIMIT.fullmatch(value):
        raise ParseError(f"ulimit -l: expected a number of KiB or 'unlimited', got {value[:60]!r}", raw=text)
    return _limit(value)


def parse_capabilities(text: str) -> Capabilities:
    """The ``Cap*`` rows of ``/proc/<pid>/status`` (the whole file or ``grep Cap`` of it).

    Raises ``ParseError`` when there is no ``Cap*`` row, a row appears twice, or a mask is not hex.
    """
    masks: dict[str, int] = {}
    for line in text.splitlines():
        row = _CAP_ROW.fullmatch(line.strip())
        if not row:
            continue
        if not _MASK.fullmatch(row["mask"]):
            raise ParseError(f"/proc/<pid>/status: {row['name']} should be hex digits, got {row['mask'][:40]!r}",
                             raw=text)
        if row["name"] in masks:
            raise ParseError(f"/proc/<pid>/status: {row['name']} appears twice", raw=text)
        masks[row["name"]] = int(row["mask"], 16)
    if not masks:
        raise ParseError("/proc/<pid>/status: no CapInh/CapPrm/CapEff/CapBnd/CapAmb row", raw=text)
    return Capabilities(inheritable=masks.get("CapInh"), permitted=masks.get("CapPrm"), effective=masks.get("CapEff"),
                        bounding=masks.get("CapBnd"), ambient=masks.get("CapAmb"))


def _limit(value: str) -> int | None:
    return None if value == "unlimited" else int(value)
