"""Table-driven tests of ibconform.parsers.iplink against captured 'ip link show' VF lines.

Rows marked "composed" follow iproute2's print_vfinfo (ip/ipaddress.c) for variants with no public
capture: the pre-5.5 'vf N MAC ...' form, an 'ip -s' capture, a PF without VFs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings

from ibconform.parsers.guid import ZERO_GUID
from ibconform.parsers.iplink import VfInfo, parse_vf_lines
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample

ADMIN_GUID = "ip-link-vf-admin-guid-before-after-mlx5-patch-2020"
ZERO_ENABLE = "ip-link-vf-zero-guid-link-state-enable-openshift-sriov-issue941"
ETHERNET = "sysfs-infiniband-udevadm-and-sriov-numvfs-terrencemiao-blog"

PF_ADDRESS = "00:00:00:08:fe:80:00:00:00:00:00:00:52:54:00:c0:fe:12:34:55"
IB_BROADCAST = "00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff"


def before_and_after(name: str) -> tuple[str, str]:
    """The two 'ip link show' outputs of the mlx5 patch mail: before and after setting the GUIDs."""
    text = sample(name)
    before, after = text.split("- After setting administrative GUID:")
    return before, after


@dataclass(frozen=True)
class Vf:
    """What a row expects of one VF line."""

    vf: int
    link_type: str | None
    address: str
    node_guid: str | None
    port_guid: str | None
    link_state: str | None
    spoof_checking: bool | None = False
    trust: bool | None = False
    query_rss: bool | None = False
    pf: str | None = None
    other: tuple[str, ...] = ()


def case(text: str, *vfs: Vf, id: str) -> object:
    return pytest.param(text, vfs, id=id)


CASES = [
    # The mail wraps each VF line after 'brd ...ff,' and has no PF header with an index ('ib0: <...>').
    case(before_and_after(ADMIN_GUID)[0],
         Vf(0, "infiniband", PF_ADDRESS, ZERO_GUID, ZERO_GUID, "auto"), id="mlx5-patch-before-unset-wrapped"),
    case(before_and_after(ADMIN_GUID)[1],
         Vf(0, "infiniband", PF_ADDRESS, "11:00:af:21:cb:05:11:00", "22:11:af:21:cb:05:11:00", "auto"),
         id="mlx5-patch-after-admin-guid-wrapped"),
    case(sample(ZERO_ENABLE),
         Vf(5, "infiniband", "00:00:0c:79:fe:80:00:00:00:00:00:00:a0:88:c2:03:00:d6:49:a2", ZERO_GUID, ZERO_GUID,
            "enable"), id="openshift-941-unset-link-state-enable"),
    case(sample(ETHERNET),
         *(Vf(n, "ether", "00:00:00:00:00:00", None, None, "auto", pf="enp1s0np0") for n in range(8)),
         id="cx4-ethernet-pf-no-guids"),
    # Composed: iproute2 before 5.5 (and kernels without ndo_get_vf_guid) print MAC for IB VFs too.
    case("4: ib0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 4092 qdisc mq state UP mode DEFAULT group default qlen 256\n"
         f"    link/infiniband {PF_ADDRESS} brd {IB_BROADCAST}\n"
         "    vf 0 MAC 00:00:00:00:00:00, spoof checking off, link-state auto\n"
         "    vf 1 MAC 00:00:00:00:00:00, vlan 12, qos 3, tx rate 100 (Mbps), spoof checking on, link-state disable\n",
         Vf(0, None, "00:00:00:00:00:00", None, None, "auto", trust=None, query_rss=None, pf="ib0"),
         Vf(1, None, "00:00:00:00:00:00", None, None, "disable", spoof_checking=True, trust=None, query_rss=None,
            pf="ib0", other=("vlan 12", "qos 3", "tx rate 100 (Mbps)")), id="composed-old-iproute2-mac-form"),
    # Composed: 'ip -s link show' adds counter lines under each VF; a second PF follows.
    case("2: ibp24s0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 4092 qdisc mq state UP mode DEFAULT\n"
         f"    link/infiniband {PF_ADDRESS} brd {IB_BROADCAST}\n"
         f"    vf 0     link/infiniband {PF_ADDRESS} brd {IB_BROADCAST}, spoof checking off, "
         "NODE_GUID 0A:1B:2C:3D:4E:5F:60:71, PORT_GUID 0a:1b:2c:3d:4e:5f:60:71, link-state auto, trust off, "
         "query_rss off\n"
         "    RX: bytes  packets  mcast   bcast \n    0          0        0       0       \n"
         "    TX: bytes  packets \n    0          0        \n"
         "3: ibp64s0: <BROADCAST,MULTICAST> mtu 4092 qdisc noop state DOWN mode DEFAULT\n"
         f"    vf 0     link/infiniband {PF_ADDRESS} brd {IB_BROADCAST}, spoof checking off, "
         "NODE_GUID 00:00:00:00:00:00:00:00, PORT_GUID 00:00:00:00:00:00:00:00, link-state disable, trust on, "
         "query_rss off\n",
         Vf(0, "infiniband", PF_ADDRESS, "0a:1b:2c:3d:4e:5f:60:71", "0a:1b:2c:3d:4e:5f:60:71", "auto", pf="ibp24s0"),
         Vf(0, "infiniband", PF_ADDRESS, ZERO_GUID, ZERO_GUID, "disable", trust=True, pf="ibp64s0"),
         id="composed-two-pfs-with-stats"),
    case("2: ibp24s0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 4092 qdisc mq state UP mode DEFAULT\n"
         f"    link/infiniband {PF_ADDRESS} brd {IB_BROADCAST}\n", id="composed-pf-without-vfs"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse_vf_lines(text: str, expected: tuple[Vf, ...]) -> None:
    vfs = parse_vf_lines(text)
    assert [Vf(v.vf, v.link_type, v.address, v.node_guid, v.port_guid, v.link_state, v.spoof_checking, v.trust,
               v.query_rss, v.pf, v.other) for v in vfs] == list(expected)


def test_wrapped_line_is_joined_into_one_raw_line() -> None:
    vf, = parse_vf_lines(before_and_after(ADMIN_GUID)[1])
    assert vf.raw.startswith("vf 0 ") and vf.raw.endswith("query_rss off") and "\n" not in vf.raw
    assert "ff:ff:ff:ff, spoof checking off" in vf.raw


@pytest.mark.parametrize(("name", "zero"), [(ZERO_ENABLE, True), (ETHERNET, None)])
def test_guids_zero(name: str, zero: bool | None) -> None:
    assert {vf.guids_zero for vf in parse_vf_lines(sample(name))} == {zero}


def test_after_setting_the_guids_they_are_not_zero() -> None:
    vf: VfInfo
    vf, = parse_vf_lines(before_and_after(ADMIN_GUID)[1])
    assert vf.guids_zero is False


@pytest.mark.parametrize(
    "text",
    [
        "", "\n", "garbage", "link/infiniband 00:11 brd ff:ff",
        "vf 0", "vf x link/ether 00:00:00:00:00:00", "vf 0 link/ether", "vf 0 MAC",
        "vf 0 link/infiniband 00:00 brd ff:ff, NODE_GUID 00:00:00:00, PORT_GUID 00:00:00:00:00:00:00:00",
        "vf 0 link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff, , trust off",
        "vf 0 link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff trust off",
    ],
)
def test_raises_parse_error_with_raw_text(text: str) -> None:
    assert_refused(parse_vf_lines, text)


FRAGMENTS = ["vf 0", "vf 12     link/infiniband", f" {PF_ADDRESS}", " brd", f" {IB_BROADCAST}", ",",
             " spoof checking off", " NODE_GUID 00:00:00:00:00:00:00:00", " PORT_GUID 11:22", " link-state enable",
             " trust on", " MAC 00:00:00:00:00:00", "3: ib0: <UP>", "\n", "    "]


@settings(max_examples=200)
@given(garbage(FRAGMENTS))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    vfs = parsed_or_refused(parse_vf_lines, text)
    if vfs is None:
        return
    assert all(isinstance(vf, VfInfo) for vf in vfs)
