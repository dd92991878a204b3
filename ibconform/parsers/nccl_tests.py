"""Parse nccl-tests output (``all_reduce_perf`` and the other ``*_perf`` programs).

The banner (``# nccl-tests version``, ``# nThread ... nGpus ...``, ``# Using devices`` and one
``#  Rank`` line per rank), a results table, and a footer (``# Out of bounds values : 0 OK``,
``# Avg bus bandwidth    : 70.742``). The table's header names its columns: ``size count type redop
[root]``, then ``time algbw busbw #wrong`` (legacy builds: ``error``) once out-of-place and once in-place,
``i_min i_max i_p99 i_cv%`` in each with ``-I 1``, ``timestamp`` at the end with ``-S 1``. Rows are read
by those names, split on whitespace, never by offsets. Other lines (NCCL's own log) are ignored.

>>> run = parse_nccl_tests('''#  size  count  type  redop  root  time  algbw  busbw #wrong  time  algbw  busbw #wrong
...   8589934592  2147483648  float  sum  -1  86026  99.85  187.22  N/A  86106  99.76  187.05  N/A
... # Out of bounds values : 0 OK
... # Avg bus bandwidth    : 56.3994
... ''')
>>> row = run.rows[0]
>>> row.size, row.out_of_place.busbw, row.in_place.wrong, run.avg_bus_bandwidth[0].value
(8589934592, 187.22, None, 56.3994)
>>> run.busbw_at_largest_size
187.05
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ibconform.errors import ParseError

_VERSION = re.compile(r"#\s*nccl-tests version (?P<version>\S+)")
_COLLECTIVE = re.compile(r"#\s*Collective test starting: (?P<name>\S+)")
_PARAMETERS = re.compile(r"#\s*nThread .*")
_PARAMETER = re.compile(r"(?P<key>[A-Za-z]+(?: [A-Za-z]+)*):? (?P<value>[^\s:]+)(?=\s|$)")
_RANK = re.compile(r"#\s*Rank\s+(?P<rank>[0-9]+)(?:\s+Group\s+(?P<group>[0-9]+))?\s+Pid\s+(?P<pid>[0-9]+)\s+on\s+"
                   r"(?P<host>.+?)\s+device\s+(?P<device>[0-9]+)\s+\[(?P<bus>[^\]]*)\]\s*(?P<name>.*?)\s*")
_OUT_OF_BOUNDS = re.compile(r"#\s*Out of bounds values\s*: (?P<count>[0-9]+)\s*(?P<verdict>OK|FAILED)?\s*")
_AVG_BUSBW = re.compile(r"#\s*Avg bus bandwidth\s*: (?P<value>\S+)\s*(?P<check>OK|FAILED)?\s*")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf|nan)")
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")

_PREAMBLE = ("size", "count", "type", "redop", "root")
_TIME = ("time", "cputime")
_WRONG = ("#wrong", "error")


@dataclass(frozen=True)
class RankDevice:
    """``#  Rank  0 Group  0 Pid 6899 on <host> device  0 [0000:04:00] NVIDIA H100 80GB HBM3``; legacy builds
    print no ``Group`` (``None``). ``bus_id`` as printed (``0000:04:00``, or ``0x42`` in some builds)."""

    rank: int
    group: int | None
    pid: int
    host: str
    device: int
    bus_id: str
    name: str


@dataclass(frozen=True)
class Measurement:
    """One placement's columns of a row: time (us; ``cputime`` with ``-C 1``), algbw and busbw (GB/s),
    wrong elements (``None`` for ``N/A``, validation off), and any other column by its header name."""

    time_us: float
    algbw: float
    busbw: float
    wrong: int | None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultRow:
    """One results row; ``root`` is ``None`` in legacy builds, ``in_place`` ``None`` when the header has
    one placement only."""

    size: int
    count: int
    type: str
    redop: str
    root: int | None
    out_of_place: Measurement | None
    in_place: Measurement | None
    timestamp: str | None
    raw: str


@dataclass(frozen=True)
class AvgBusBandwidth:
    """``# Avg bus bandwidth : <value> [OK|FAILED]`` (the verdict only with a ``-G`` threshold)."""

    value: float
    check: str | None


@dataclass(frozen=True)
class NcclTestsRun:
    """Everything one output holds. Several ranks (a non-MPI build under mpirun) each print a banner,
    table and footer: rows and footers keep one item per line printed, so count them."""

    version: str | None
    collective: str | None
    parameters: dict[str, str]
    devices: tuple[RankDevice, ...]
    columns: tuple[str, ...]
    rows: tuple[ResultRow, ...]
    out_of_bounds: tuple[int, ...]
    avg_bus_bandwidth: tuple[AvgBusBandwidth, ...]

    @property
    def largest_size(self) -> int | None:
        return max((row.size for row in self.rows), default=None)

    @property
    def busbw_at_largest_size(self) -> float | None:
        """The lowest busbw (GB/s) printed for the largest message size, out-of-place or in-place, over
        every row of that size; ``None`` without rows."""
        largest = self.largest_size
        values = [m.busbw for row in self.rows if row.size == largest
                  for m in (row.out_of_place, row.in_place) if m is not None]
        return min(values, default=None)


@dataclass(frozen=True)
class _Header:
    names: tuple[str, ...]
    preamble: tuple[str, ...]
    places: tuple[tuple[str, ...], ...]
    timestamp: bool

    @property
    def width(self) -> int:
        return len(self.preamble) + sum(len(p) for p in self.places) + (2 if self.timestamp else 0)


def parse_nccl_tests(text: str) -> NcclTestsRun:
    """Parse nccl-tests stdout (with or without NCCL's log mixed in).

    Raises ``ParseError`` when the text has none of banner, header and footer, when a header does not
    name ``size count type redop [root]`` then ``time algbw busbw #wrong`` groups, when a row comes
    before any header, and when a row does not fit its header (the message names the line).
    """
    version = collective = None
    parameters: dict[str, str] = {}
    devices: list[RankDevice] = []
    header: _Header | None = None
    columns: tuple[str, ...] = ()
    rows: list[ResultRow] = []
    out_of_bounds: list[int] = []
    averages: list[AvgBusBandwidth] = []
    for physical in text.splitlines():
        line = physical.strip()
        if line.startswith("#"):
            tokens = line[1:].split()
            if match := _VERSION.match(line):
                version = version or match["version"]
            elif match := _COLLECTIVE.match(line):
                collective = collective or match["name"]
            elif _PARAMETERS.fullmatch(line):
                if not parameters:
                    parameters = {m["key"]: m["value"] for m in _PARAMETER.finditer(line[1:].strip())}
            elif match := _RANK.fullmatch(line):
                devices.append(RankDevice(rank=int(match["rank"]), group=_int_or_none(match["group"]),
                                          pid=int(match["pid"]), host=match["host"], device=int(match["device"]),
                                          bus_id=match["bus"], name=match["name"]))
            elif tokens[:2] == ["size", "count"]:
                header = _header(tuple(tokens), line, text)
                columns = header.names
            elif match := _OUT_OF_BOUNDS.fullmatch(line):
                out_of_bounds.append(int(match["count"]))
            elif match := _AVG_BUSBW.fullmatch(line):
                if not _NUMBER.fullmatch(match["value"]):
                    raise ParseError(f"nccl-tests: Avg bus bandwidth is not a number: {line[:80]!r}", raw=text)
                averages.append(AvgBusBandwidth(value=float(match["value"]), check=match["check"]))
            continue
        tokens = line.split()
        if len(tokens) < 2 or not (_UINT.fullmatch(tokens[0]) and _UINT.fullmatch(tokens[1])):
            continue
        if header is None:
            raise ParseError(f"nccl-tests: result row before any column header: {line[:100]!r}", raw=text)
        rows.append(_row(tokens, header, line, text))
    if not (parameters or header or out_of_bounds or averages):
        raise ParseError("nccl-tests: no banner ('# nThread ...'), column header or footer", raw=text)
    return NcclTestsRun(version=version, collective=collective, parameters=parameters, devices=tuple(devices),
                        columns=columns, rows=tuple(rows), out_of_bounds=tuple(out_of_bounds),
                        avg_bus_bandwidth=tuple(averages))


def _header(names: tuple[str, ...], line: str, text: str) -> _Header:
    timestamp = names[-1:] == ("timestamp",)
    body = names[:-1] if timestamp else names
    split = next((i for i, name in enumerate(body) if name in _TIME), len(body))
    preamble, rest = body[:split], body[split:]
    places: list[tuple[str, ...]] = []
    for name in rest:
        if name in _TIME:
            places.append(())
        places[-1] += (name,)
    good = (preamble in (_PREAMBLE, _PREAMBLE[:4]) and 1 <= len(places) <= 2
            and all({"algbw", "busbw"} <= set(p) and sum(n in _WRONG for n in p) == 1 and len(set(p)) == len(p)
                    for p in places))
    if not good:
        raise ParseError("nccl-tests: expected a header 'size count type redop [root]' then one or two "
                         f"'time algbw busbw #wrong ...' groups, got {line[:160]!r}", raw=text)
    return _Header(names=names, preamble=preamble, places=tuple(places), timestamp=timestamp)


def _row(tokens: list[str], header: _Header, line: str, text: str) -> ResultRow:
    if len(tokens) != header.width:
        raise ParseError(f"nccl-tests: row has {len(tokens)} values for the {header.width} of its header: "
                         f"{line[:160]!r}", raw=text)
    cells = dict(zip(header.preamble, tokens, strict=False))
    root = cells.get("root")
    if root is not None and not _INT.fullmatch(root):
        raise ParseError(f"nccl-tests: root is not a number in {line[:160]!r}", raw=text)
    at = len(header.preamble)
    measurements: list[Measurement] = []
    for place in header.places:
        values = tokens[at:at + len(place)]
        at += len(place)
        measurements.append(_measurement(dict(zip(place, values, strict=True)), line, text))
    return ResultRow(size=int(cells["size"]), count=int(cells["count"]), type=cells["type"], redop=cells["redop"],
                     root=int(root) if root is not None else None, out_of_place=measurements[0],
                     in_place=measurements[1] if len(measurements) > 1 else None,
                     timestamp=" ".join(tokens[at:]) if header.timestamp else None, raw=line)


def _measurement(cells: dict[str, str], line: str, text: str) -> Measurement:
    numbers: dict[str, float] = {}
    wrong: int | None = None
    for name, value in cells.items():
        if name in _WRONG and value == "N/A":
            continue
        if not _NUMBER.fullmatch(value):
            raise ParseError(f"nccl-tests: {name} is not a number ({value[:20]!r}) in {line[:160]!r}", raw=text)
        if name in _WRONG:
            count = float(value)  # '%6g': large counts print as 1.2e+06
            if not (math.isfinite(count) and count >= 0):
                raise ParseError(f"nccl-tests: {name} is not a count ({value[:20]!r}) in {line[:160]!r}", raw=text)
            wrong = int(count)
        else:
            numbers[name] = float(value)
    time_name = next(name for name in cells if name in _TIME)
    return Measurement(time_us=numbers.pop(time_name), algbw=numbers.pop("algbw"), busbw=numbers.pop("busbw"),
                       wrong=wrong, extra=numbers)


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)
