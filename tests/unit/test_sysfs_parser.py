"""Table-driven tests of ibconform.parsers.sysfs against captured sysfs values.

The gpud fixture prints one 'path: content' per line and its files have no trailing newline; real sysfs
files end with one, so every real value is tried both ways.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibconform.errors import ParseError
from ibconform.parsers.sysfs import PortRate, PortState, parse_fw_ver, parse_port_state, parse_rate, parse_uint

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GPUD_H100 = "sysfs-infiniband-h100-cx7-ndr-gpud-testdata"
TERRENCEMIAO = "sysfs-infiniband-udevadm-and-sriov-numvfs-terrencemiao-blog"
CLASS = "/sys/class/infiniband"


def sample(name: str) -> str:
    """The captured text of tests/samples/<name>.txt without its '# source:' line."""
    source, _, text = (SAMPLES / f"{name}.txt").read_text().partition("\n")
    assert source.startswith("# source:"), f"{name}.txt: line 1 should be its '# source:' comment"
    return text


def gpud_value(path: str) -> str:
    """The content of ``path`` in the gpud snapshot ('<path>: <content>' lines)."""
    for line in sample(GPUD_H100).splitlines():
        if line.startswith(f"{path}: "):
            return line[len(path) + 2:]
    raise KeyError(path)


def echoed_value(path: str) -> str:
    """The value a blog transcript wrote with 'echo N > <path>'."""
    match = re.search(rf"echo (\S+) > {re.escape(path)}$", sample(TERRENCEMIAO), re.MULTILINE)
    assert match, path
    return match[1]


REAL = [
    pytest.param(gpud_value(f"{CLASS}/mlx5_0/fw_ver"), parse_fw_ver, "28.41.1000", id="cx7-fw_ver"),
    pytest.param(gpud_value(f"{CLASS}/mlx5_bond_0/fw_ver"), parse_fw_ver, "32.38.3056", id="bf3-bond-fw_ver"),
    pytest.param(gpud_value(f"{CLASS}/mlx5_0/ports/1/state"), parse_port_state, PortState(4, "ACTIVE"),
                 id="cx7-state-active"),
    pytest.param(gpud_value(f"{CLASS}/mlx5_9/ports/1/phys_state"), parse_port_state, PortState(5, "LinkUp"),
                 id="cx7-phys_state-linkup"),
    pytest.param(gpud_value(f"{CLASS}/mlx5_0/ports/1/rate"), parse_rate, PortRate(400.0, "4X", "NDR"),
                 id="cx7-rate-ndr400"),
    pytest.param(gpud_value(f"{CLASS}/mlx5_bond_0/ports/1/rate"), parse_rate, PortRate(200.0, "2X", "NDR"),
                 id="bf3-bond-rate-2x-ndr"),
    pytest.param(echoed_value(f"{CLASS}/mlx5_0/device/sriov_numvfs"), parse_uint, 8, id="cx4-sriov_numvfs"),
]


@pytest.mark.parametrize("newline", ["", "\n"], ids=["fixture", "real-file"])
@pytest.mark.parametrize(("text", "parse", "expected"), REAL)
def test_real_values(text: str, parse: Callable[[str], object], expected: object, newline: str) -> None:
    assert parse(text + newline) == expected


@pytest.mark.parametrize(
    ("attribute", "parse"),
    [("fw_ver", parse_fw_ver), ("ports/1/state", parse_port_state), ("ports/1/phys_state", parse_port_state),
     ("ports/1/rate", parse_rate)],
)
def test_every_gpud_value_parses(attribute: str, parse: Callable[[str], object]) -> None:
    values = [line.split(": ", 1)[1] for line in sample(GPUD_H100).splitlines()
              if line.split(": ", 1)[0].endswith(f"/{attribute}")]
    assert len(values) == 9  # mlx5_0/1/4-9 and mlx5_bond_0
    for value in values:
        parse(value + "\n")


# Kernel formats (drivers/infiniband/core/sysfs.c): state "%d: %s", phys_state "%u: %s",
# rate "%d%s Gb/sec (%dX%s)"; sriov_* "%u\n".
@pytest.mark.parametrize(
    ("text", "parse", "expected"),
    [
        ("1: DOWN\n", parse_port_state, PortState(1, "DOWN")),
        ("2: INIT", parse_port_state, PortState(2, "INIT")),
        ("5: ACTIVE_DEFER\n", parse_port_state, PortState(5, "ACTIVE_DEFER")),
        ("3: Disabled\n", parse_port_state, PortState(3, "Disabled")),
        ("2: Polling\n", parse_port_state, PortState(2, "Polling")),
        ("7: Phy Test\n", parse_port_state, PortState(7, "Phy Test")),
        ("0: <unknown>\n", parse_port_state, PortState(0, "<unknown>")),
        ("2.5 Gb/sec (1X SDR)\n", parse_rate, PortRate(2.5, "1X", "SDR")),
        ("25 Gb/sec (1X EDR)\n", parse_rate, PortRate(25.0, "1X", "EDR")),
        ("40 Gb/sec (4X FDR10)\n", parse_rate, PortRate(40.0, "4X", "FDR10")),
        ("10 Gb/sec (4X)\n", parse_rate, PortRate(10.0, "4X", None)),
        ("10 Gb/sec\n", parse_rate, PortRate(10.0, None, None)),
        ("0\n", parse_uint, 0),
        ("127\n", parse_uint, 127),
        ("  16  \n", parse_uint, 16),
        ("2.42.5000\n", parse_fw_ver, "2.42.5000"),
    ],
)
def test_kernel_formats(text: str, parse: Callable[[str], object], expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("", parse_uint), ("\n", parse_uint), ("-1\n", parse_uint), ("abc", parse_uint), ("8 9", parse_uint),
        ("0x8", parse_uint), ("1e3", parse_uint), ("٣", parse_uint),
        ("", parse_port_state), ("ACTIVE", parse_port_state), ("4:", parse_port_state),
        ("x: ACTIVE", parse_port_state), ("4: ACTIVE\n5: LinkUp", parse_port_state),
        ("", parse_rate), ("400", parse_rate), ("400 Gb/s (4X NDR)", parse_rate), ("400 Gb/sec (NDR)", parse_rate),
        ("Rate: 400", parse_rate), ("fast Gb/sec", parse_rate),
        ("", parse_fw_ver), ("28", parse_fw_ver), ("28.41.", parse_fw_ver), ("v28.41.1000", parse_fw_ver),
        ("28.41.1000 (MT_0000000838)", parse_fw_ver),
    ],
)
def test_raises_parse_error_with_raw_text(text: str, parse: Callable[[str], object]) -> None:
    with pytest.raises(ParseError) as raised:
        parse(text)
    assert raised.value.raw == text


@pytest.mark.parametrize("parse", [parse_uint, parse_port_state, parse_rate, parse_fw_ver])
@given(text=st.one_of(st.text(), st.from_regex(r"\s*[0-9.]{1,6}:? ?[A-Za-z/ ()0-9X]{0,20}\s*", fullmatch=True)))
def test_arbitrary_text_raises_only_parse_error(parse: Callable[[str], object], text: str) -> None:
    try:
        parse(text)
    except ParseError as exc:
        assert exc.raw == text
