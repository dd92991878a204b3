"""Table-driven tests of ibconform.parsers.verbs against captured ibv_devinfo and ibv_devices output.

Rows marked "composed" follow rdma-core's printf formats (libibverbs/examples/devinfo.c, device_list.c)
for shapes with no public capture: a VF in PORT_ACTIVE, 'ibv_devinfo -v', a missing device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings

from ibconform.parsers.guid import ZERO_GUID
from ibconform.parsers.verbs import DeviceGuid, Devinfo, parse_devinfo, parse_ibv_devices
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample

PF_PORT_DOWN = "ibv_devinfo-cx7-pf-port-down-container-deepep-issue60"
VF_PORT_INIT = "ibv_devinfo-cx7-vf-port-init-zero-node-guid-network-operator-issue1646"
NO_DEVICES = "ibv_devinfo-no-ib-devices-found-missing-provider-infra-controller-pr5251"
IBV_DEVICES = "ibv_devices-vf-zero-guid-openshift-sriov-device-plugin-issue20"


@dataclass(frozen=True)
class Port:
    port: int
    state: str | None
    state_code: int | None
    sm_lid: int | None
    port_lid: int | None
    link_layer: str | None


@dataclass(frozen=True)
class Dev:
    hca_id: str
    node_guid: str | None
    sys_image_guid: str | None
    vendor_part_id: int | None
    fw_ver: str | None
    ports: tuple[Port, ...] = ()


def summary(out: Devinfo) -> list[Dev]:
    return [Dev(d.hca_id, d.node_guid, d.sys_image_guid, d.vendor_part_id, d.fw_ver,
                tuple(Port(p.port, p.state, p.state_code, p.sm_lid, p.port_lid, p.link_layer) for p in d.ports))
            for d in out.devices]


def tabbed(*lines: str) -> str:
    """ibv_devinfo's own output: TAB-indented as devinfo.c prints it."""
    return "".join(f"{line}\n" for line in lines)


CX7_PF_DOWN = Dev("mlx5_0", "58:a2:e1:03:00:2a:09:b8", "58:a2:e1:03:00:2a:09:b8", 4129, "28.39.2048",
                  (Port(1, "PORT_DOWN", 1, 0, 65535, "InfiniBand"),))
CX7_PF_CUT = Dev("mlx5_1", "58:a2:e1:03:00:2a:0e:38", "58:a2:e1:03:00:2a:0e:38", 4129, "28.39.2048")
# The paste lost the layout ('port: 1' at the device's indent), mangled sys_image_guid ('a088::c203:...',
# read as unknown) and shows 'port_id' where ibv_devinfo prints 'port_lid' (read as unknown).
CX7_VF_INIT = Dev("mlx5_7", ZERO_GUID, None, 4126, "28.39.3004", (Port(1, "PORT_INIT", 2, 4, None, "InfiniBand"),))
CX7_VF_CUT = Dev("mlx5_7", ZERO_GUID, None, 4126, "28.39.3004")

CASES = [
    pytest.param(sample(PF_PORT_DOWN), [CX7_PF_DOWN, CX7_PF_CUT], (), (), id="deepep-60-cx7-pf-port-down"),
    pytest.param(sample(VF_PORT_INIT), [CX7_VF_INIT, CX7_VF_CUT], (), (), id="network-operator-1646-vf-init-paste"),
    pytest.param(sample(NO_DEVICES), [], ("No IB devices found",),
                 ("libibverbs: Warning: couldn't open config directory '/etc/libibverbs.d'.",),
                 id="infra-controller-5251-no-provider"),
    # Composed: a CX-7 VF whose GUID the operator set, brought up by the SM (no public capture of it).
    pytest.param(tabbed("hca_id:\tmlx5_12", "\ttransport:\t\t\tInfiniBand (0)", "\tfw_ver:\t\t\t\t28.39.2048",
                        "\tnode_guid:\t\t\t0a1b:2c3d:4e5f:6071", "\tsys_image_guid:\t\t\t58a2:e103:002a:09b8",
                        "\tvendor_id:\t\t\t0x02c9", "\tvendor_part_id:\t\t\t4126", "\thw_ver:\t\t\t\t0x0",
                        "\tboard_id:\t\t\tMT_0000000838", "\tphys_port_cnt:\t\t\t1", "\t\tport:\t1",
                        "\t\t\tstate:\t\t\tPORT_ACTIVE (4)", "\t\t\tmax_mtu:\t\t4096 (5)",
                        "\t\t\tactive_mtu:\t\t4096 (5)", "\t\t\tsm_lid:\t\t\t1", "\t\t\tport_lid:\t\t87",
                        "\t\t\tport_lmc:\t\t0x00", "\t\t\tlink_layer:\t\tInfiniBand", ""),
                 [Dev("mlx5_12", "0a:1b:2c:3d:4e:5f:60:71", "58:a2:e1:03:00:2a:09:b8", 4126, "28.39.2048",
                      (Port(1, "PORT_ACTIVE", 4, 1, 87, "InfiniBand"),))], (), (), id="composed-vf-port-active"),
    # Composed: '-v' adds flag lists without a key and GID lines whose values hold ':'.
    pytest.param(tabbed("hca_id:\tmlx5_0", "\tnode_guid:\t\t\t58a2:e103:002a:09b8", "\tmax_mr_size:\t\t\t0xffffffffffffffff",
                        "\tdevice_cap_flags:\t\t0x25e1361", "\t\t\t\t\tBAD_PKEY_CNTR", "\t\t\t\t\tSYS_IMAGE_GUID",
                        "\tcompletion timestamp_mask:\t\t\t0x7fffffffffffffff", "\t\tport:\t1",
                        "\t\t\tstate:\t\t\tPORT_ACTIVE (4)", "\t\t\tsm_lid:\t\t\t1", "\t\t\tport_lid:\t\t2",
                        "\t\t\tlink_layer:\t\tInfiniBand", "\t\t\tphys_state:\t\tLINK_UP (5)",
                        "\t\t\tGID[  0]:\t\tfe80:0000:0000:0000:58a2:e103:002a:09b8", ""),
                 [Dev("mlx5_0", "58:a2:e1:03:00:2a:09:b8", None, None, None,
                      (Port(1, "PORT_ACTIVE", 4, 1, 2, "InfiniBand"),))], (), (), id="composed-verbose"),
    pytest.param("IB device 'mlx5_9' wasn't found\n", [], ("IB device 'mlx5_9' wasn't found",), (),
                 id="composed-device-not-found"),
]


@pytest.mark.parametrize(("text", "devices", "errors", "warnings"), CASES)
def test_parse_devinfo(text: str, devices: list[Dev], errors: tuple[str, ...], warnings: tuple[str, ...]) -> None:
    out = parse_devinfo(text)
    assert summary(out) == devices
    assert out.errors == errors
    assert out.warnings == warnings
    assert out.no_devices is (not devices and "No IB devices found" in errors)


def test_fields_keep_every_printed_value() -> None:
    dev = parse_devinfo(sample(PF_PORT_DOWN)).devices[0]
    assert dev.transport == "InfiniBand" and dev.board_id == "MT_0000000838" and dev.vendor_id == 0x02C9
    assert dev.fields["hw_ver"] == "0x0" and dev.phys_port_cnt == 1
    assert dev.ports[0].fields["active_mtu"] == "4096 (5)"
    vf = parse_devinfo(sample(VF_PORT_INIT)).devices[0]
    assert vf.fields["sys_image_guid"] == "a088::c203:005b:370c" and vf.ports[0].fields["port_id"] == "65535"


def test_verbose_keys() -> None:
    dev = parse_devinfo(CASES[4].values[0]).devices[0]
    assert dev.fields["completion timestamp_mask"] == "0x7fffffffffffffff"
    assert dev.ports[0].fields["GID[  0]"] == "fe80:0000:0000:0000:58a2:e103:002a:09b8"
    assert "BAD_PKEY_CNTR" not in dev.fields


SERVER = [DeviceGuid("mlx5_2", ZERO_GUID), DeviceGuid("mlx5_0", "50:6b:4b:03:00:28:50:28"),
          DeviceGuid("mlx5_3", ZERO_GUID), DeviceGuid("mlx5_1", "50:6b:4b:03:00:28:50:34")]
CLIENT = [DeviceGuid("mlx5_0", "24:8a:07:03:00:4b:f0:a8"), DeviceGuid("mlx5_1", ZERO_GUID)]


def test_parse_ibv_devices_capture() -> None:
    # Two runs in one capture (server, client): the rows of both tables, in order.
    server, client = sample(IBV_DEVICES).split("**on client side**")
    assert list(parse_ibv_devices(server)) == SERVER
    assert list(parse_ibv_devices(client)) == CLIENT
    assert list(parse_ibv_devices(sample(IBV_DEVICES))) == SERVER + CLIENT


def test_parse_ibv_devices_as_printed() -> None:
    # Composed from device_list.c: '    %-16s\t   node GUID', '    %-16s\t----------------', rows '    %-16s\t%016llx'.
    text = (f"    {'device':<16}\t   node GUID\n    {'------':<16}\t----------------\n"
            f"    {'mlx5_0':<16}\t58a2e103002a09b8\n    {'mlx5_12':<16}\t0000000000000000\n")
    assert parse_ibv_devices(text) == (DeviceGuid("mlx5_0", "58:a2:e1:03:00:2a:09:b8"), DeviceGuid("mlx5_12", ZERO_GUID))
    assert parse_ibv_devices(text.split("mlx5_0")[0].rstrip(" ")) == ()


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("", parse_devinfo), ("garbage\n", parse_devinfo), ("hca_id:\n", parse_devinfo),
        ("hca_id: mlx5 0\n", parse_devinfo), ("hca_id: mlx5_0\n\tport: one\n", parse_devinfo),
        ("transport: InfiniBand (0)\n", parse_devinfo),
        ("", parse_ibv_devices), ("mlx5_0 0000000000000000\n", parse_ibv_devices), ("No IB devices found\n", parse_ibv_devices),
    ],
)
def test_raises_parse_error_with_raw_text(text: str, parse: Callable[[str], object]) -> None:
    assert_refused(parse, text)


FRAGMENTS = ["hca_id:", " mlx5_0", "\tnode_guid:", " 0000:0000:0000:0000", "\t\tport:", " 1", "\tstate:",
             " PORT_ACTIVE (4)", "\tsm_lid:\t", "65535", "No IB devices found", "libibverbs: Warning: x",
             "device\t   node GUID", "------\t----------------", "mlx5_0\t506b4b0300285028", "\n", ":", " "]


@pytest.mark.parametrize("parse", [parse_devinfo, parse_ibv_devices])
@settings(max_examples=200)
@given(text=garbage(FRAGMENTS))
def test_arbitrary_text_raises_only_parse_error(parse: Callable[[str], object], text: str) -> None:
    parsed_or_refused(parse, text)
