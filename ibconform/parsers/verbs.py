"""Parse ``ibv_devinfo`` and ``ibv_devices`` (rdma-core ``libibverbs/examples``).

``ibv_devinfo`` prints ``hca_id: <dev>``, TAB-indented ``key: value`` device fields, then per port
``port: <n>`` and the port's fields. Terminals expand the TABs (values from column 40 and 48), pastes
collapse them: every line is split on its first ``:`` and stripped, never read by column.

>>> out = parse_devinfo('''hca_id: mlx5_7
...     node_guid:    0000:0000:0000:0000
...     vendor_part_id:    4126
...     port: 1
...     state:    PORT_INIT (2)
...     port_lid:    65535
... ''')
>>> dev = out.devices[0]
>>> dev.hca_id, dev.node_guid, dev.vendor_part_id, dev.ports[0].state_code, dev.ports[0].port_lid
('mlx5_7', '00:00:00:00:00:00:00:00', 4126, 2, 65535)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ibconform.errors import ParseError
from ibconform.parsers.guid import normalize_guid

# A field name as ibv_devinfo prints it: 'node_guid', 'GID[  0]', 'cq moderation caps'.
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(?:\[\s*[0-9]+\])?")
_NAMED_CODE = re.compile(r"(\S+(?: \S+)*) \(([0-9]+)\)")  # 'PORT_ACTIVE (4)', 'InfiniBand (0)'
_UINT = re.compile(r"[0-9]+")
_HEX = re.compile(r"0x[0-9A-Fa-f]+")
# What ibv_devinfo prints on stderr instead of devices (devinfo.c).
_ERRORS = ("No IB devices found", "Failed to get IB devices list", "Failed to open device",
           "Failed to query device props", "Failed to query port", "Invalid port requested for device")
_NOT_FOUND = re.compile(r"IB device '[^']*' wasn't found")
_LIBRARY_MESSAGE = re.compile(r"lib[a-z0-9_-]+: .*")  # 'libibverbs: Warning: couldn't open config directory ...'

_IBV_DEVICES_HEADER = re.compile(r"device\s+node GUID")
_IBV_DEVICES_RULE = re.compile(r"-+\s+-+")
_IBV_DEVICES_ROW = re.compile(r"(\S+)\s+([0-9A-Fa-f]{16})")


@dataclass(frozen=True)
class VerbsPort:
    """One ``port: N`` block. ``state`` is the name (``PORT_ACTIVE``), ``state_code`` the number in
    parentheses (``4``); numbers are ``None`` when not printed or not numbers. ``fields`` keeps every
    ``key: value`` of the block as printed (stripped)."""

    port: int
    state: str | None
    state_code: int | None
    sm_lid: int | None
    port_lid: int | None
    link_layer: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class VerbsDevice:
    """One ``hca_id:`` block; ``transport`` without its code (``InfiniBand``). GUIDs are canonical
    (``xx:..:xx``), ``None`` when absent or not a GUID (a mangled paste; ``fields`` keeps the text).
    ``vendor_part_id`` is decimal (4129 = 0x1021 ConnectX-7 PF, 4126 = 0x101e mlx5 VF)."""

    hca_id: str
    transport: str | None
    fw_ver: str | None
    node_guid: str | None
    sys_image_guid: str | None
    vendor_id: int | None
    vendor_part_id: int | None
    board_id: str | None
    phys_port_cnt: int | None
    ports: tuple[VerbsPort, ...]
    fields: dict[str, str]


@dataclass(frozen=True)
class Devinfo:
    """Everything ``ibv_devinfo`` printed: devices in order (a paste of two runs lists a device twice),
    its error lines (``No IB devices found``) and the libraries' messages (``libibverbs: Warning: ...``)."""

    devices: tuple[VerbsDevice, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def no_devices(self) -> bool:
        """True when verbs sees no device: ``No IB devices found`` and nothing listed."""
        return not self.devices and "No IB devices found" in self.errors


@dataclass(frozen=True)
class DeviceGuid:
    """One ``ibv_devices`` row: the device and its node GUID (canonical)."""

    device: str
    node_guid: str


@dataclass
class _Block:
    fields: dict[str, str] = field(default_factory=dict)
    ports: list[tuple[int, dict[str, str]]] = field(default_factory=list)


def parse_devinfo(text: str) -> Devinfo:
    """Parse ``ibv_devinfo [-v]`` output (stdout and stderr together).

    Lines before the first ``hca_id:`` other than errors and library messages (prompts) are ignored, as
    are lines without a ``key:`` inside a block (``-v`` flag lists). Raises ``ParseError`` when the text
    holds no ``hca_id:`` and no ibv_devinfo error, or when a ``port:`` or ``hca_id:`` value is malformed.
    """
    blocks: list[tuple[str, _Block]] = []
    errors: list[str] = []
    warnings: list[str] = []
    for physical in text.splitlines():
        line = physical.strip()
        if line.startswith(_ERRORS) or _NOT_FOUND.fullmatch(line):
            errors.append(line)
            continue
        if _LIBRARY_MESSAGE.fullmatch(line):
            warnings.append(line)
            continue
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or not _KEY.fullmatch(key):
            continue
        if key == "hca_id":
            if not value or any(c.isspace() for c in value):
                raise ParseError(f"ibv_devinfo: expected 'hca_id: <device>', got {line[:80]!r}", raw=text)
            blocks.append((value, _Block()))
            continue
        if not blocks:
            continue
        block = blocks[-1][1]
        if key == "port":
            if not _UINT.fullmatch(value):
                raise ParseError(f"ibv_devinfo: expected 'port: <number>', got {line[:80]!r}", raw=text)
            block.ports.append((int(value), {}))
        elif block.ports:
            block.ports[-1][1].setdefault(key, value)
        else:
            block.fields.setdefault(key, value)
    if not blocks and not errors:
        raise ParseError("ibv_devinfo: no 'hca_id:' block and no ibv_devinfo error line", raw=text)
    return Devinfo(devices=tuple(_device(hca_id, block) for hca_id, block in blocks), errors=tuple(errors),
                   warnings=tuple(warnings))


def parse_ibv_devices(text: str) -> tuple[DeviceGuid, ...]:
    """Parse ``ibv_devices``: a ``device  node GUID`` header, a dash rule, then ``<dev> <16 hex>`` rows.

    Widths and indentation differ between rdma-core versions, so rows are split on whitespace. Rows of
    every table in the text are returned in order; a table ends at the first line that is not a row.
    Raises ``ParseError`` when there is no header.

    >>> parse_ibv_devices("    device          \\t   node GUID\\n    ------          \\t----------------\\n"
    ...                   "    mlx5_0          \\t506b4b0300285028\\n")
    (DeviceGuid(device='mlx5_0', node_guid='50:6b:4b:03:00:28:50:28'),)
    """
    rows: list[DeviceGuid] = []
    saw_header = in_table = False
    for physical in text.splitlines():
        line = physical.strip()
        if _IBV_DEVICES_HEADER.fullmatch(line):
            saw_header, in_table = True, True
            continue
        if not in_table or _IBV_DEVICES_RULE.fullmatch(line):
            continue
        row = _IBV_DEVICES_ROW.fullmatch(line)
        if row:
            rows.append(DeviceGuid(device=row[1], node_guid=normalize_guid(row[2])))
        else:
            in_table = False
    if not saw_header:
        raise ParseError("ibv_devices: no 'device  node GUID' header", raw=text)
    return tuple(rows)


def _device(hca_id: str, block: _Block) -> VerbsDevice:
    f = block.fields
    transport = f.get("transport")
    named = _NAMED_CODE.fullmatch(transport) if transport else None
    return VerbsDevice(hca_id=hca_id, transport=named[1] if named else transport, fw_ver=f.get("fw_ver"),
                       node_guid=_guid(f.get("node_guid")), sys_image_guid=_guid(f.get("sys_image_guid")),
                       vendor_id=_number(f.get("vendor_id")), vendor_part_id=_number(f.get("vendor_part_id")),
                       board_id=f.get("board_id"), phys_port_cnt=_number(f.get("phys_port_cnt")),
                       ports=tuple(_port(number, fields) for number, fields in block.ports), fields=dict(f))


def _port(number: int, fields: dict[str, str]) -> VerbsPort:
    state = fields.get("state")
    named = _NAMED_CODE.fullmatch(state) if state else None
    return VerbsPort(port=number, state=named[1] if named else state, state_code=int(named[2]) if named else None,
                     sm_lid=_number(fields.get("sm_lid")), port_lid=_number(fields.get("port_lid")),
                     link_layer=fields.get("link_layer"), fields=dict(fields))


def _number(value: str | None) -> int | None:
    """Decimal or ``0x`` hex, as ibv_devinfo prints its numbers; ``None`` otherwise."""
    if value is None:
        return None
    if _UINT.fullmatch(value):
        return int(value)
    if _HEX.fullmatch(value):
        return int(value, 16)
    return None


def _guid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_guid(value)
    except ParseError:
        return None
