"""Table-driven tests of ibconform.parsers.limits against captured /proc/<pid>/limits, ulimit and
/proc/<pid>/status output.

No public capture shows a process holding cap_ipc_lock: that row is the captured mask with bit 14 set,
the mask a container gets with 'capabilities.add: [IPC_LOCK]'.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings

from ibconform.errors import ParseError
from ibconform.parsers.limits import (
    CAP_IPC_LOCK,
    Capabilities,
    MemlockLimit,
    has_capability,
    parse_capabilities,
    parse_memlock_limit,
    parse_ulimit_l,
)
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample, sections

PADDED_65536 = "proc-limits-max-locked-memory-65536-container-pid1-trailing-spaces"
UNLIMITED = "proc-limits-max-locked-memory-unlimited-no-trailing-spaces"
ULIMIT = "ulimit-l-container-defaults-and-unlimited-multi-source"
CAPS = "capsh-print-and-proc-status-cap-docker-default-no-ipc-lock"


def limits_file(name: str) -> str:
    """The file's text: the capture without its shell prompt line."""
    return sample(name).split("\n", 1)[1]


def ulimit_outputs(section: int) -> list[str]:
    """What 'ulimit -l' printed in a section of the multi-source capture: the line after each command."""
    lines = sections(sample(ULIMIT), "=== ")[section].splitlines()
    return [lines[i + 1] for i, line in enumerate(lines) if line.rstrip().endswith("ulimit -l")]


def test_captures_keep_their_padding() -> None:
    assert all(line.endswith(" ") for line in limits_file(PADDED_65536).splitlines() if line.startswith("Max locked"))
    assert not any(line.endswith(" ") for line in limits_file(UNLIMITED).splitlines())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(limits_file(PADDED_65536), MemlockLimit(65536, 65536), id="container-pid1-64k-padded"),
        pytest.param(limits_file(UNLIMITED), MemlockLimit(None, None), id="systemd-limitmemlock-infinity"),
        pytest.param(next(line for line in limits_file(PADDED_65536).splitlines() if line.startswith("Max locked")),
                     MemlockLimit(65536, 65536), id="row-alone"),
        # Composed: the 8 MiB default of newer systemd, soft below hard.
        pytest.param("Max locked memory         8388608              unlimited            bytes\n",
                     MemlockLimit(8388608, None), id="composed-8m-soft-unlimited-hard"),
    ],
)
def test_parse_memlock_limit(text: str, expected: MemlockLimit) -> None:
    assert parse_memlock_limit(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(ulimit_outputs(0)[0], 65536, id="gardenlinux-128-container"),
        pytest.param(sections(sample(ULIMIT), "=== ")[1], 65536, id="gardenlinux-170-ulimit-a-row"),
        pytest.param(ulimit_outputs(2)[0], 4096216, id="qdrant-1885-host"),
        pytest.param(ulimit_outputs(2)[1], 8192, id="qdrant-1885-docker-8m"),
        pytest.param(sections(sample(ULIMIT), "=== ")[3], None, id="docker-1099-ulimit-Ha-unlimited"),
        pytest.param("unlimited\n", None, id="composed-unlimited"),
    ],
)
def test_parse_ulimit_l(text: str, expected: int | None) -> None:
    assert parse_ulimit_l(text) == expected


def test_ulimit_in_prose_is_not_output() -> None:
    # nccl-tests issue 206 quotes the value inside a sentence: that is not what ulimit prints.
    prose = sections(sample(ULIMIT), "=== ")[4]
    assert "8192" in prose
    with pytest.raises(ParseError):
        parse_ulimit_l(prose)


DOCKER_DEFAULT = 0x00000000A80425FB


def test_docker_default_capabilities_lack_ipc_lock() -> None:
    caps = parse_capabilities(sample(CAPS))
    assert caps == Capabilities(inheritable=0, permitted=DOCKER_DEFAULT, effective=DOCKER_DEFAULT,
                                bounding=DOCKER_DEFAULT, ambient=0)
    assert (caps.ipc_lock_effective, caps.ipc_lock_permitted, caps.ipc_lock_bounding) == (False, False, False)
    # capsh --print in the same capture agrees: cap_ipc_lock is in the dropped set.
    assert "!cap_ipc_lock" in sample(CAPS)


def test_ipc_lock_added() -> None:
    added = re.sub("a80425fb", "a80465fb", sample(CAPS).split("\n\n", 1)[0])
    caps = parse_capabilities(added)
    assert caps.effective == DOCKER_DEFAULT | 1 << CAP_IPC_LOCK == 0xA80465FB
    assert caps.ipc_lock_effective is True


def test_missing_rows_read_as_unknown() -> None:
    caps = parse_capabilities("CapEff:\t0000000000004000\n")
    assert (caps.ipc_lock_effective, caps.ipc_lock_permitted, caps.inheritable) == (True, None, None)
    assert has_capability(1 << 14, CAP_IPC_LOCK) and not has_capability((1 << 14) - 1, CAP_IPC_LOCK)


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("", parse_memlock_limit), ("Max open files 1024 4096 files", parse_memlock_limit),
        ("Max locked memory 65536", parse_memlock_limit), ("Max locked memory 64k 64k bytes", parse_memlock_limit),
        ("Max locked memory 65536 65536 kbytes", parse_memlock_limit),
        ("Max locked memory 1 1 bytes\nMax locked memory 2 2 bytes", parse_memlock_limit),
        ("", parse_ulimit_l), ("-1", parse_ulimit_l), ("64k", parse_ulimit_l), ("$ ulimit -l\n65536", parse_ulimit_l),
        ("Unlimited", parse_ulimit_l), ("٣", parse_ulimit_l),
        ("", parse_capabilities), ("CapEff: zz", parse_capabilities), ("CapEff:\t00000000000000000", parse_capabilities),
        ("CapEff:\t1\nCapEff:\t2", parse_capabilities), ("Cap: 1", parse_capabilities),
    ],
)
def test_raises_parse_error_with_raw_text(text: str, parse: Callable[[str], object]) -> None:
    assert_refused(parse, text)


FRAGMENTS = ["Max locked memory", " ", "65536", "unlimited", "bytes", "\n", "max locked memory       (kbytes, -l) ",
             "CapEff:\t", "CapPrm:\t", "00000000a80425fb", "Max open files"]


@pytest.mark.parametrize("parse", [parse_memlock_limit, parse_ulimit_l, parse_capabilities])
@settings(max_examples=200)
@given(text=garbage(FRAGMENTS, max_size=100))
def test_arbitrary_text_raises_only_parse_error(parse: Callable[[str], object], text: str) -> None:
    parsed_or_refused(parse, text)
