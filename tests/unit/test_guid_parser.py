"""Table-driven tests of ibconform.parsers.guid: GUIDs as real tools printed them, one row per capture.

No public capture of a sysfs node_guid file was found; ibv_devinfo prints the same '%04x:%04x:%04x:%04x'
form (rdma-core guid_str, the kernel's sysfs show function), so its values stand in for the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibconform.errors import ParseError
from ibconform.parsers.guid import (
    ZERO_GUID,
    ipoib_address_guid,
    is_zero_guid,
    normalize_guid,
    parse_sysfs_guid,
    reverse_guid,
)
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample

DEVINFO_PF = "ibv_devinfo-cx7-pf-port-down-container-deepep-issue60"
DEVINFO_VF = "ibv_devinfo-cx7-vf-port-init-zero-node-guid-network-operator-issue1646"
IBSTAT_VF = "ibstat-vf-in-pod-state-down-linkup-network-operator-issue249"
IBSTAT_ZERO = "ibstat-vf-zero-node-guid-ethernet-sriov-operator-issue267"
IBV_DEVICES = "ibv_devices-vf-zero-guid-openshift-sriov-device-plugin-issue20"
IP_LINK_ADMIN = "ip-link-vf-admin-guid-before-after-mlx5-patch-2020"
NODE_STATE = "k8s-sriovnetworknodestate-ib-vf-guid-and-ipoib-mac-describe-no-25.10-sriov-operator-issue1046"


def printed(name: str, label: str, nth: int = 0) -> str:
    """The value after '<label>' (':' optional) on the nth line that has it."""
    values = re.findall(rf"^\s*{re.escape(label)}:?\s+(\S+)", sample(name), flags=re.M)
    return values[nth]


REAL = [
    pytest.param(printed(DEVINFO_PF, "node_guid"), "58:a2:e1:03:00:2a:09:b8", False, id="ibv_devinfo-cx7-pf"),
    pytest.param(printed(DEVINFO_PF, "sys_image_guid", 1), "58:a2:e1:03:00:2a:0e:38", False, id="ibv_devinfo-cx7-pf-2"),
    pytest.param(printed(DEVINFO_VF, "node_guid"), ZERO_GUID, True, id="ibv_devinfo-vf-unset"),
    pytest.param(printed(IBSTAT_VF, "Node GUID"), "9a:ec:dd:e4:e1:e6:42:ba", False, id="ibstat-vf"),
    pytest.param(printed(IBSTAT_VF, "System image GUID"), "04:3f:72:03:00:df:3e:00", False, id="ibstat-vf-sysimage"),
    pytest.param(printed(IBSTAT_ZERO, "Node GUID"), ZERO_GUID, True, id="ibstat-vf-unset"),
    pytest.param(printed(IBSTAT_ZERO, "Port GUID"), "98:38:54:ff:fe:b4:df:3e", False, id="ibstat-roce-port"),
    pytest.param(printed(IBV_DEVICES, "mlx5_0"), "50:6b:4b:03:00:28:50:28", False, id="ibv_devices-pf"),
    pytest.param(printed(IBV_DEVICES, "mlx5_2"), ZERO_GUID, True, id="ibv_devices-vf-unset"),
    pytest.param(printed(IP_LINK_ADMIN, "ip link set ib0 vf 0 node_guid"), "11:00:af:21:cb:05:11:00", False,
                 id="ip-link-set-node-guid"),
    pytest.param(printed(NODE_STATE, "GUID"), "14:bc:13:5e:c9:6d:bf:32", False, id="node-state-vf-guid"),
]


@pytest.mark.parametrize(("text", "canonical", "zero"), REAL)
def test_real_guids(text: str, canonical: str, zero: bool) -> None:
    assert normalize_guid(text) == canonical
    assert normalize_guid(f" {text}\n") == canonical
    assert is_zero_guid(text) is zero


@pytest.mark.parametrize("nth", [0, 1])
def test_devinfo_values_parse_as_sysfs_files(nth: int) -> None:
    for label in ("node_guid", "sys_image_guid"):
        value = printed(DEVINFO_PF, label, nth)
        assert parse_sysfs_guid(f"{value}\n") == normalize_guid(value)


def test_the_four_printed_forms_are_one_guid() -> None:
    forms = ["11:00:af:21:cb:05:11:00", "1100:af21:cb05:1100", "0x1100AF21CB051100", "1100af21cb051100"]
    assert {normalize_guid(form) for form in forms} == {"11:00:af:21:cb:05:11:00"}


# SriovNetworkNodeState of sriov-network-operator issue 1046: per VF the operator's 'GUID:' and the VF
# netdev's IPoIB 'Mac:'; the PF's Mac ends with the PF's port GUID in its usual order (NVIDIA OUI 5c:25:73).
def node_state_pairs() -> list[tuple[str, str]]:
    text = sample(NODE_STATE)
    return re.findall(r"GUID:\s+(\S+)\n\s+Mac:\s+(\S+)", text)


def test_operator_vf_guids_read_reversed_in_the_vf_ipoib_address() -> None:
    pairs = node_state_pairs()
    assert len(pairs) == 2
    for guid, mac in pairs:
        assert ipoib_address_guid(mac) == reverse_guid(guid)
        assert ipoib_address_guid(mac) != normalize_guid(guid)


def test_pf_ipoib_address_ends_with_its_port_guid_in_order() -> None:
    macs = re.findall(r"^\s+Mac:\s+(\S+)$", sample(NODE_STATE), flags=re.M)
    full = [mac for mac in macs if mac.count(":") == 19 and mac.startswith("00:00:10:47")]
    assert [ipoib_address_guid(mac) for mac in full] == ["5c:25:73:03:00:bf:a3:20", "5c:25:73:03:00:bf:a1:90"]


def test_cut_ipoib_address_is_refused() -> None:
    # The first PF Mac of the capture was cut by the index after 12 bytes.
    with pytest.raises(ParseError):
        ipoib_address_guid("00:00:10:47:fe:80:00:00:00:00:00:00")


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        (printed(DEVINFO_VF, "sys_image_guid"), normalize_guid),  # 'a088::c203:005b:370c', mangled in the paste
        (printed(DEVINFO_VF, "sys_image_guid"), parse_sysfs_guid),
        ("0x1100af21cb0511", normalize_guid), ("1100af21cb05110", normalize_guid), ("11:00:af:21:cb:05:11", normalize_guid),
        ("11-00-af-21-cb-05-11-00", normalize_guid), ("", normalize_guid), ("0x", normalize_guid),
        ("gggg:0000:0000:0000", normalize_guid), ("١١٠٠af21cb051100", normalize_guid),
        ("0x1100af21cb051100", parse_sysfs_guid), ("11:00:af:21:cb:05:11:00", parse_sysfs_guid),
        ("1100:af21:cb05:1100\n1100:af21:cb05:1100", parse_sysfs_guid),
        ("11:00:af:21:cb:05:11:00", ipoib_address_guid),
    ],
)
def test_raises_parse_error_with_raw_text(text: str, parse: Callable[[str], object]) -> None:
    assert_refused(parse, text)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_form_of_a_guid_normalises_alike(number: int) -> None:
    digits = f"{number:016x}"
    canonical = normalize_guid(digits)
    groups = ":".join(digits[i:i + 4] for i in range(0, 16, 4))
    assert normalize_guid(f"0x{digits.upper()}") == canonical == normalize_guid(canonical) == parse_sysfs_guid(groups)
    assert reverse_guid(reverse_guid(canonical)) == canonical
    assert is_zero_guid(canonical) is (number == 0)


@pytest.mark.parametrize("parse", [normalize_guid, parse_sysfs_guid, ipoib_address_guid, is_zero_guid, reverse_guid])
@settings(max_examples=200)
@given(text=garbage(max_size=40, extra=st.from_regex(r"\s*(0x)?[0-9a-fA-F:]{0,60}\s*", fullmatch=True)))
def test_arbitrary_text_raises_only_parse_error(parse: Callable[[str], object], text: str) -> None:
    parsed_or_refused(parse, text)
