"""Parse single-value sysfs attributes of RDMA devices and PCI functions.

Real files end with a newline; every parser tolerates surrounding whitespace and raises
``ParseError(msg, raw=text)`` for anything the kernel would not have printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.errors import ParseError

_UINT = re.compile(r"[0-9]+")
# ports/N/state "%d: %s" (ACTIVE, ACTIVE_DEFER, ...); phys_state "%u: %s" (LinkUp, "Phy Test", "<unknown>").
_PORT_STATE = re.compile(r"([0-9]+):[ \t]*([!-~](?:[ !-~]*[!-~])?)")
# ports/N/rate "%d%s Gb/sec (%dX%s)": "400 Gb/sec (4X NDR)", "2.5 Gb/sec (1X SDR)".
_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]+Gb/sec(?:[ \t]+\(([0-9]+X)(?:[ \t]+([A-Za-z0-9]+))?\))?")
_FW_VER = re.compile(r"[0-9]+(?:\.[0-9]+)+")
# /sys/kernel/security/lockdown: every mode, the active one in brackets ("[none] integrity confidentiality")
_LOCKDOWN = re.compile(r"(?:[a-z]+ )*\[([a-z]+)\](?: [a-z]+)*")


@dataclass(frozen=True)
class PortState:
    """``ports/N/state`` or ``ports/N/phys_state``: ``"4: ACTIVE"`` -> ``PortState(4, "ACTIVE")``."""

    code: int
    name: str


@dataclass(frozen=True)
class PortRate:
    """``ports/N/rate``: ``"400 Gb/sec (4X NDR)"`` -> ``PortRate(400.0, "4X", "NDR")``.

    ``width``/``speed`` are ``None`` when the kernel printed no ``(...)`` part or no speed in it.
    """

    gbps: float
    width: str | None
    speed: str | None


def parse_uint(text: str) -> int:
    """A ``"%u\\n"`` attribute such as ``sriov_numvfs`` or ``sriov_totalvfs``.

    >>> parse_uint("8\\n")
    8
    """
    value = text.strip()
    if not _UINT.fullmatch(value):
        raise ParseError(f"sysfs value: expected an unsigned integer, got {value[:40]!r}", raw=text)
    return int(value)


def parse_port_state(text: str) -> PortState:
    """``ports/N/state`` (``"4: ACTIVE"``) or ``ports/N/phys_state`` (``"5: LinkUp"``).

    >>> parse_port_state("4: ACTIVE\\n")
    PortState(code=4, name='ACTIVE')
    """
    match = _PORT_STATE.fullmatch(text.strip())
    if not match:
        raise ParseError(f"sysfs port state: expected '<code>: <NAME>', got {text.strip()[:40]!r}", raw=text)
    return PortState(code=int(match[1]), name=match[2])


def parse_rate(text: str) -> PortRate:
    """``ports/N/rate``: ``"400 Gb/sec (4X NDR)"``, ``"2.5 Gb/sec (1X SDR)"``, ``"10 Gb/sec"``.

    >>> parse_rate("200 Gb/sec (2X NDR)\\n")
    PortRate(gbps=200.0, width='2X', speed='NDR')
    """
    match = _RATE.fullmatch(text.strip())
    if not match:
        raise ParseError(f"sysfs port rate: expected '<N> Gb/sec (<W>X <SPEED>)', got {text.strip()[:40]!r}",
                         raw=text)
    return PortRate(gbps=float(match[1]), width=match[2], speed=match[3])


def parse_fw_ver(text: str) -> str:
    """``fw_ver``: dotted decimal digits, e.g. ``"28.41.1000"``.

    >>> parse_fw_ver("28.41.1000\\n")
    '28.41.1000'
    """
    value = text.strip()
    if not _FW_VER.fullmatch(value):
        raise ParseError(f"sysfs fw_ver: expected dotted digits like 28.41.1000, got {value[:40]!r}", raw=text)
    return value


def parse_lockdown(text: str) -> str:
    """``/sys/kernel/security/lockdown``: the active mode, the one in brackets.

    >>> parse_lockdown("none [integrity] confidentiality\\n")
    'integrity'
    """
    match = _LOCKDOWN.fullmatch(text.strip())
    if not match:
        raise ParseError(f"lockdown: expected modes with the active one in brackets like '[none] integrity', got "
                         f"{text.strip()[:60]!r}", raw=text)
    return match[1]


def parse_link_layer(text: str) -> str:
    """``ports/N/link_layer``: ``InfiniBand`` or ``Ethernet``.

    >>> parse_link_layer("InfiniBand\\n")
    'InfiniBand'
    """
    value = text.strip()
    if value not in ("InfiniBand", "Ethernet"):
        raise ParseError(f"sysfs link_layer: expected InfiniBand or Ethernet, got {value[:40]!r}", raw=text)
    return value


#: ib_core's ``netns_mode`` is a bool module parameter: the kernel prints ``Y`` or ``N`` (``param_get_bool``).
NETNS_MODES = {"Y": "shared", "N": "exclusive"}


def parse_netns_mode(text: str) -> str:
    """``/sys/module/ib_core/parameters/netns_mode``: ``Y`` shared (every RDMA device in every network namespace),
    ``N`` exclusive (each device in one namespace, as ``rdma system set netns exclusive`` makes it).

    >>> parse_netns_mode("N\\n")
    'exclusive'
    """
    value = text.strip()
    if value not in NETNS_MODES:
        raise ParseError(f"ib_core netns_mode: expected Y (shared) or N (exclusive), got {value[:40]!r}", raw=text)
    return NETNS_MODES[value]
