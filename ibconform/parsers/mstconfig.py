"""Parse ``mstconfig`` / ``mlxconfig`` ``q`` and ``set`` output (mstflint and MFT, every column format).

The table is read by tokens, never by offsets: the header label positions drift between releases
(16-, 20- and 33-wide value columns) and a value wider than its column pushes the rest to the right.
A row is ``[*][RO] NAME v1 [v2 [v3]]``; the values map right-aligned onto the header's columns.

A ``Configurations:`` table with no device header before it (``q | grep``/``egrep`` captures, excerpts)
is kept as a device whose header fields are all ``None``.

>>> q = parse_query('''
... Device #1:
... ----------
...
... Device type:    ConnectX3
... Device:         09:00.0
...
... Configurations:                              Next Boot
...          NUM_OF_VFS                          8
... ''')
>>> q.devices[0].device_type, q.devices[0].params["NUM_OF_VFS"].next_boot
('ConnectX3', '8')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ibconform.errors import ParseError

# The header's value columns in the only order mstflint prints them (printConfHeader).
_COLUMN_ORDER = ("Default", "Current", "Next Boot", "New")
_ROW_FIELD = {"Default": "default", "Current": "current", "Next Boot": "next_boot", "New": "new"}

_DEVICE_BLOCK = re.compile(r"Device #[0-9]+:")
# Case matters: mlxfwmanager prints 'Device Type:' and 'PCI Device Name:' in its own blocks.
_HEADER_FIELD = re.compile(r"(Device type|Name|Description|Device|PCI device):(.*)")
_BLOCK_STARTERS = ("Device type", "Device", "PCI device")
_TOOL_MESSAGE = re.compile(r"-([A-Z])-(.*)")  # -E- error, -I- info, -W- warning, -D- debug
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+(?:\.\.[0-9]+)?\])?")
_VALUE_TOKEN = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_NOTE_PREFIX = "Device Firmware does not support reading"
_LEGEND_PREFIX = "The '"  # "The '*' shows ..." / "The 'RO' shows ..."

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")
_LABELLED_NUMBER = re.compile(r"[^\s()]+\((0x[0-9a-fA-F]+|[0-9]+)\)")
_ARRAY_SUMMARY = re.compile(r"Array\[[0-9]+\.\.[0-9]+\]")


@dataclass(frozen=True)
class ParamRow:
    """One table row; values are the raw tokens as printed (``"16"``, ``"True(1)"``, ``"N/A"``)."""

    name: str
    default: str | None
    current: str | None
    next_boot: str | None
    new: str | None
    modified: bool
    read_only: bool
    raw: str


@dataclass(frozen=True)
class MstconfigDevice:
    """One ``Device #N:`` block (or a headerless table); header fields are ``None`` when not printed."""

    device: str | None
    device_type: str | None
    name: str | None
    description: str | None
    columns: tuple[str, ...]
    params: dict[str, ParamRow]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class MstconfigQuery:
    """Every device table in the output, plus every ``-E-`` message (prefix stripped) in order."""

    devices: tuple[MstconfigDevice, ...]
    errors: tuple[str, ...]


@dataclass
class _Block:
    fields: dict[str, str | None] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    params: dict[str, ParamRow] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def freeze(self) -> MstconfigDevice:
        device = self.fields.get("Device", self.fields.get("PCI device"))
        return MstconfigDevice(device=device, device_type=self.fields.get("Device type"),
                               name=self.fields.get("Name"), description=self.fields.get("Description"),
                               columns=self.columns or (), params=dict(self.params), notes=tuple(self.notes))


# Where the scanner is: no device, a device header, its table rows, or after its table (notes, legend).
_OUTSIDE, _HEADER, _TABLE, _AFTER = "outside", "header", "table", "after"


def parse_query(text: str) -> MstconfigQuery:
    """Parse ``mstconfig/mlxconfig [-e] q ...`` or ``set`` output (stdout+stderr).

    Lines outside a device block (shell prompts, mlxfwmanager output, ``-I-`` lines, prompts) are ignored.
    Raises ``ParseError(msg, raw=text)`` when the text holds neither a ``Configurations:`` table nor an
    ``-E-`` line (garbage, empty, cut before the header), when a header lists unknown columns, and when
    a line inside a table is not a row (the message names the line).
    """
    blocks: list[_Block] = []
    errors: list[str] = []
    block: _Block | None = None
    state = _OUTSIDE
    error_goes_on = False  # "-E- Failed to query some of the TLVs:" continues on indented lines

    def start_block() -> _Block:
        blocks.append(_Block())
        return blocks[-1]

    for physical in text.splitlines():
        line = physical.rstrip()
        stripped = line.strip()

        if error_goes_on and stripped and line[:1].isspace():
            errors[-1] = f"{errors[-1]} {stripped}"
            continue
        error_goes_on = False

        message = _TOOL_MESSAGE.fullmatch(stripped)
        if message:
            if message[1] == "E":
                errors.append(message[2].strip())
                error_goes_on = errors[-1].endswith(":")
            if state == _TABLE:
                state = _AFTER
            continue

        if _DEVICE_BLOCK.fullmatch(stripped):
            block, state = start_block(), _HEADER
            continue

        if stripped.startswith("Configurations:"):
            columns = _parse_columns(stripped, text)
            if block is None or state != _HEADER:  # a headerless table: grep/egrep captures, excerpts
                block = start_block()
            block.columns, state = columns, _TABLE
            continue

        if stripped.startswith(_NOTE_PREFIX):
            if block is not None and state in (_TABLE, _AFTER):
                block.notes.append(stripped)
                state = _AFTER
            continue

        header = _HEADER_FIELD.fullmatch(stripped)
        if header:
            label, value = header[1], header[2].strip() or None
            if label in _BLOCK_STARTERS and (block is None or state != _HEADER or label in block.fields):
                block, state = start_block(), _HEADER  # e.g. 'Device type:' kept by grep without 'Device #1:'
            if block is not None and state == _HEADER and label not in block.fields:
                block.fields[label] = value
                continue
            # a Name:/Description: line outside a device header belongs to nobody: fall through

        if state == _HEADER:
            if stripped and set(stripped) != {"-"}:
                block, state = None, _OUTSIDE  # not an mstconfig header line: this block is over
            continue

        if state == _TABLE:
            if not stripped or stripped.startswith(_LEGEND_PREFIX) or _is_prompt(stripped):
                state = _AFTER
                continue
            assert block is not None and block.columns is not None
            row = _parse_row(line, block.columns, text)
            if row.name in block.params:
                raise ParseError(f"mstconfig table: row {row.name} appears twice: {line!r}", raw=text)
            block.params[row.name] = row
            continue

        if state == _AFTER and stripped and not stripped.startswith(_LEGEND_PREFIX):
            block, state = None, _OUTSIDE

    devices = tuple(b.freeze() for b in blocks if b.fields or b.columns is not None)
    if not errors and not any(b.columns is not None for b in blocks):
        raise ParseError("mstconfig output holds no 'Configurations:' table and no '-E-' line", raw=text)
    return MstconfigQuery(devices=devices, errors=tuple(errors))


def value_number(token: str | None) -> int | None:
    """The number in a value token: ``'True(1)'`` -> 1, ``'16'`` -> 16, ``'0x10'`` -> 16.

    ``None``, ``'N/A'`` and array summaries (``'Array[0..7]'``) give ``None``; anything else raises
    ``ParseError``. The number in parentheses wins over the label (hand-edited docs disagree on labels).

    >>> value_number("IB(1)"), value_number("N/A")
    (1, None)
    """
    if token is None:
        return None
    text = token.strip()
    if text == "N/A" or _ARRAY_SUMMARY.fullmatch(text):
        return None
    labelled = _LABELLED_NUMBER.fullmatch(text)
    number = labelled[1] if labelled else text
    if not _NUMBER.fullmatch(number):
        raise ParseError(f"mstconfig value: expected a number, LABEL(n), N/A or Array[..], got {token!r}",
                         raw=token)
    return int(number, 16) if number.startswith("0x") else int(number)


def _parse_columns(header: str, text: str) -> tuple[str, ...]:
    """The value-column labels after ``Configurations:``, checked against mstflint's fixed order."""
    words = header[len("Configurations:"):].split()
    labels: list[str] = []
    while words:
        word = words.pop(0)
        if word == "Next" and words[:1] == ["Boot"]:
            word = f"Next {words.pop(0)}"
        labels.append(word)
    in_order = labels == [label for label in _COLUMN_ORDER if label in labels]
    # mstflint always prints the next-boot column, labelled 'Default' only by labelNextAsDefault.
    if not (in_order and ("Next Boot" in labels or labels == ["Default"])):
        raise ParseError(f"mstconfig header: expected [Default] [Current] Next Boot [New], got {header!r}",
                         raw=text)
    return tuple(labels)


def _parse_row(line: str, columns: tuple[str, ...], text: str) -> ParamRow:
    tokens = line.split()
    marker = ""
    if tokens[0] in ("*", "*RO") or (tokens[0] == "RO" and _PARAM_NAME.fullmatch(" ".join(tokens[1:2]))):
        marker = tokens.pop(0)
    if not tokens or not _PARAM_NAME.fullmatch(tokens[0]):
        raise ParseError(f"mstconfig table: expected '[*][RO] NAME value...' row, got {line!r}", raw=text)
    name, values = tokens[0], tokens[1:]
    if not all(_VALUE_TOKEN.fullmatch(v) for v in values):
        raise ParseError(f"mstconfig table: row {name} has a value that is not printable ASCII: {line!r}",
                         raw=text)
    if not values or len(values) > len(columns):
        raise ParseError(f"mstconfig table: row {name} has {len(values)} value(s) for columns "
                         f"{' / '.join(columns)}: {line!r}", raw=text)
    right_aligned = columns[len(columns) - len(values):]
    cells = {_ROW_FIELD[column]: value for column, value in zip(right_aligned, values, strict=True)}
    return ParamRow(name=name, default=cells.get("default"), current=cells.get("current"),
                    next_boot=cells.get("next_boot"), new=cells.get("new"), modified=marker.startswith("*"),
                    read_only=marker.endswith("RO"), raw=line)


def _is_prompt(line: str) -> bool:
    """``Apply new Configuration? (y/n) [n] : y`` and friends, or ``Applying... Done!``."""
    return "(y/n)" in line or line.startswith("Applying...")
