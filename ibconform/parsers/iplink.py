"""Parse the ``vf N`` lines of ``ip link show <pf>`` (iproute2 ``print_vfinfo``).

One line per VF under its PF: ``vf <N>``, the link-layer address, then ``, ``-separated items::

    vf 5     link/infiniband 00:00:0c:79:...:49:a2 brd 00:ff:...:ff:ff, spoof checking off,
    NODE_GUID 00:00:00:00:00:00:00:00, PORT_GUID 00:00:00:00:00:00:00:00, link-state enable, trust off, query_rss off

(one physical line in a terminal; mails and docs wrap it after a comma, and the parser joins such lines).
Only iproute2 5.5+ on a kernel that reports VF GUIDs prints ``NODE_GUID``/``PORT_GUID``; older stacks
print ``vf N MAC xx:xx:xx:xx:xx:xx, ...`` with no GUID, which reads as unknown (``None``), not as zero.
The ``link/infiniband`` address on a VF line is the PF's (IPoIB copies it), never the VF's own.

>>> vf, = parse_vf_lines("    vf 0     link/infiniband 00:00:00:08:fe:80:00:00:00:00:00:00:52:54:00:c0:fe:12:34:55"
...     " brd 00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff, spoof checking off,"
...     " NODE_GUID 11:00:af:21:cb:05:11:00, PORT_GUID 22:11:af:21:cb:05:11:00, link-state auto, trust off")
>>> vf.vf, vf.node_guid, vf.link_state, vf.trust
(0, '11:00:af:21:cb:05:11:00', 'auto', False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.errors import ParseError
from ibconform.parsers.guid import is_zero_guid, normalize_guid

_VF_START = re.compile(r"vf [0-9]+\b")
_VF_HEAD = re.compile(
    r"vf (?P<vf>[0-9]+)\s+"
    r"(?:link/(?P<type>[\w-]+) (?P<address>[0-9A-Fa-f:]+)(?: (?:brd|peer) (?P<broadcast>[0-9A-Fa-f:]+))?"
    r"|MAC (?P<mac>[0-9A-Fa-f:]+))"
    r"(?P<rest>(?:,.*)?)")
# "2: ibp24s0: <BROADCAST,...>" or "5: ib0.8001@ib0: <...>": the interface whose VFs follow.
_INTERFACE = re.compile(r"[0-9]+: ([^\s:@]+)(?:@[^\s:]+)?: <")
_ON_OFF = {"on": True, "off": False}
_FLAGS = {"spoof checking": "spoof_checking", "trust": "trust", "query_rss": "query_rss"}
_LINK_STATES = ("auto", "enable", "disable")


@dataclass(frozen=True)
class VfInfo:
    """One ``vf N`` line.

    ``node_guid``/``port_guid`` are canonical (``xx:..:xx``), ``None`` when the line carries none (an older
    iproute2 or kernel: unknown, not zero). ``address`` is the link-layer address as printed; on an IB PF it
    is the PF's own address, not the VF's. ``link_type`` is ``None`` for the old ``MAC`` form. Flags are
    ``None`` when not printed. ``other`` keeps the items the parser does not name (vlan, qos, rates).
    """

    pf: str | None
    vf: int
    link_type: str | None
    address: str
    broadcast: str | None
    node_guid: str | None
    port_guid: str | None
    link_state: str | None
    spoof_checking: bool | None
    trust: bool | None
    query_rss: bool | None
    other: tuple[str, ...]
    raw: str

    @property
    def guids_zero(self) -> bool | None:
        """Whether the VF's GUIDs are unset (all zero); ``None`` when the line shows no GUID at all."""
        if self.node_guid is None and self.port_guid is None:
            return None
        return any(guid is not None and is_zero_guid(guid) for guid in (self.node_guid, self.port_guid))


def parse_vf_lines(text: str) -> tuple[VfInfo, ...]:
    """Every ``vf N`` line of ``ip link show [<pf>]`` output, in order, each with the interface above it.

    Lines other than interface headers and VF lines (addresses, ``ip -s`` counters, prompts) are ignored.
    A VF line that ends in ``,`` continues on the next line. Raises ``ParseError`` when a VF line is
    malformed, and when the text holds neither a VF line nor an interface header (``2: ib0: <...>``):
    a PF without VFs gives ``()``.
    """
    vfs: list[VfInfo] = []
    pf: str | None = None
    saw_interface = False
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        header = _INTERFACE.match(line)
        if header:
            pf, saw_interface = header[1], True
            continue
        if not _VF_START.match(line):
            continue
        while line.endswith(",") and i < len(lines) and lines[i] and not _starts_entry(lines[i]):
            line = f"{line} {lines[i]}"
            i += 1
        vfs.append(_parse_vf(line, pf, text))
    if not vfs and not saw_interface:
        raise ParseError("ip link: no 'vf N' line and no interface header ('N: <name>: <...>')", raw=text)
    return tuple(vfs)


def _starts_entry(line: str) -> bool:
    return bool(_VF_START.match(line) or _INTERFACE.match(line))


def _parse_vf(line: str, pf: str | None, text: str) -> VfInfo:
    head = _VF_HEAD.fullmatch(line)
    if not head:
        raise ParseError(f"ip link: expected 'vf N link/<type> <addr> [brd <addr>], ...' or 'vf N MAC <addr>, ...', "
                         f"got {line[:120]!r}", raw=text)
    guids: dict[str, str] = {}
    flags: dict[str, bool] = {}
    link_state: str | None = None
    other: list[str] = []
    for item in (part.strip() for part in head["rest"].split(",")[1:]):
        name, _, value = item.rpartition(" ")
        if name in ("NODE_GUID", "PORT_GUID"):
            guids[name] = _guid(value, line, text)
        elif name == "link-state" and value in _LINK_STATES:
            link_state = value
        elif name in _FLAGS and value in _ON_OFF:
            flags[_FLAGS[name]] = _ON_OFF[value]
        elif item:
            other.append(item)
        else:
            raise ParseError(f"ip link: empty item in VF line {line[:120]!r}", raw=text)
    return VfInfo(pf=pf, vf=int(head["vf"]), link_type=head["type"], address=head["address"] or head["mac"],
                  broadcast=head["broadcast"], node_guid=guids.get("NODE_GUID"), port_guid=guids.get("PORT_GUID"),
                  link_state=link_state, spoof_checking=flags.get("spoof_checking"), trust=flags.get("trust"),
                  query_rss=flags.get("query_rss"), other=tuple(other), raw=line)


def _guid(value: str, line: str, text: str) -> str:
    try:
        return normalize_guid(value)
    except ParseError:
        raise ParseError(f"ip link: VF GUID {value[:40]!r} is not 8 colon-separated bytes in {line[:120]!r}",
                         raw=text) from None
