"""The VF judges (ibconform/vfs.py) on rows taken from real captures, and the node script's VF records run by a
real ``sh`` on a VF tree made in a temporary folder.

Each table row names the capture (tests/samples/) it comes from; "composed" rows follow the formats those
captures and the cited sources show, for variants with no public capture.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ibconform import vfs
from ibconform.collect import nodescript
from ibconform.errors import ParseError
from ibconform.parsers import guid, iplink, sysfs
from ibconform.vfs import GuidOwner, Vf, VfPort

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
BOUND = dict(driver="mlx5_core", rdma_devices=("mlx5_16",), uverbs=("uverbs14",), umad=("umad14",))


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def _ip_vf(name: str, index: int = 0) -> iplink.VfInfo:
    return iplink.parse_vf_lines(sample(name))[index]


def _vf_from_ip(line: iplink.VfInfo) -> Vf:
    return Vf(line.vf, "0000:18:00.1", **BOUND,
              node_guids={"ip link": line.node_guid} if line.node_guid else {},
              port_guids={"ip link": line.port_guid} if line.port_guid else {})


@pytest.mark.parametrize(("capture", "index", "zeros"), [
    # the operator did not set VF 5's GUIDs: both zero
    ("ip-link-vf-zero-guid-link-state-enable-openshift-sriov-issue941.txt", 0,
     ["node GUID 00:00:00:00:00:00:00:00 (ip link)", "port GUID 00:00:00:00:00:00:00:00 (ip link)"]),
    # the mlx5 patch mail: before `ip link set ib0 vf 0 node_guid/port_guid` both zero, after neither
    ("ip-link-vf-admin-guid-before-after-mlx5-patch-2020.txt", 0,
     ["node GUID 00:00:00:00:00:00:00:00 (ip link)", "port GUID 00:00:00:00:00:00:00:00 (ip link)"]),
    ("ip-link-vf-admin-guid-before-after-mlx5-patch-2020.txt", 1, []),
])
def test_zero_guids_from_ip_link_lines(capture, index, zeros):
    assert vfs.zero_guids(_vf_from_ip(_ip_vf(capture, index))) == zeros


@pytest.mark.parametrize(("capture", "pattern", "zero"), [
    # ibstat of a VF whose node GUID nobody set (its port GUID is set): only the node GUID is zero
    ("ibstat-vf-zero-node-guid-ethernet-sriov-operator-issue267.txt", r"Node GUID: (0x[0-9a-f]{16})", True),
    ("ibstat-vf-zero-node-guid-ethernet-sriov-operator-issue267.txt", r"System image GUID: (0x[0-9a-f]{16})", False),
    # ibv_devices: the VFs mlx5_2 and mlx5_3 unset, the PFs mlx5_0 and mlx5_1 not
    ("ibv_devices-vf-zero-guid-openshift-sriov-device-plugin-issue20.txt", r"mlx5_2 ([0-9a-f]{16})", True),
    ("ibv_devices-vf-zero-guid-openshift-sriov-device-plugin-issue20.txt", r"mlx5_0 ([0-9a-f]{16})", False),
    # ibv_devinfo inside a pod given a ConnectX-7 VF: node_guid 0000:0000:0000:0000, port INIT
    ("ibv_devinfo-cx7-vf-port-init-zero-node-guid-network-operator-issue1646.txt", r"node_guid:\s+([0-9a-f:]{19})", True),
])
def test_a_zero_rdma_node_guid_in_any_tool_form_is_a_zero_guid(capture, pattern, zero):
    value = guid.normalize_guid(re.search(pattern, sample(capture))[1])
    vf = Vf(0, "0000:18:00.1", **BOUND, node_guids={"node_guid": value}, port_guids={"ip link": "02:00:00:00:00:00:00:01"})
    assert vfs.zero_guids(vf) == (["node GUID 00:00:00:00:00:00:00:00 (node_guid)"] if zero else [])


def test_a_guid_is_believed_from_ip_link_then_sriov_then_node_guid():
    vf = Vf(0, "0000:18:00.1", **BOUND, node_guids={"node_guid": "aa:00:00:00:00:00:00:01", "sriov": "bb:00:00:00:00:00:00:01"})
    assert vf.guid("node") == "bb:00:00:00:00:00:00:01"
    assert Vf(0, "0000:18:00.1", **BOUND).guid("port") is None      # iproute2 < 5.5, inbox driver: unknown


@pytest.mark.parametrize(("vf", "problem"), [
    (Vf(0, "0000:18:00.1", **BOUND), None),
    (Vf(5, "0000:5e:00.6", None), "driver expected mlx5_core vs unbound"),
    (Vf(5, "0000:5e:00.6", "vfio-pci"), "driver expected mlx5_core vs vfio-pci"),
    (Vf(5, "0000:5e:00.6", "mlx5_core"), "RDMA device expected vs none (no infiniband/mlx5_N under the VF)"),
    (Vf(5, "0000:5e:00.6", "mlx5_core", ("mlx5_21",), (), ("umad19",)),
     "uverbs char device expected vs none for mlx5_21"),
])
def test_binding_problem(vf, problem):
    assert vfs.binding_problem(vf) == problem


def _states(capture: str) -> list[str]:
    return [sysfs.parse_port_state(m[1]).name for m in re.finditer(r"ports/1/state: (.+)", sample(capture))]


@pytest.mark.parametrize(("vf_state", "pf_state", "guid_zero", "problem"), [
    # every port state of an H100 node's RDMA devices (sysfs capture) is ACTIVE: no problem
    *[(state, "ACTIVE", False, None) for state in _states("sysfs-infiniband-h100-cx7-ndr-gpud-testdata.txt")],
    # composed from ibstat-vf-in-pod-state-down-linkup-network-operator-issue249.txt: VF Down, PF Active
    ("DOWN", "ACTIVE", False, "expected ACTIVE vs DOWN while the PF port is ACTIVE"),
    ("INIT", "ACTIVE", True, "expected ACTIVE vs INIT: its GUID is zero (vf_guids_set)"),
    ("DOWN", "DOWN", False, "expected ACTIVE vs DOWN (the PF port is DOWN)"),
    (None, None, False, "expected ACTIVE vs unreadable (the PF port is unreadable)"),
])
def test_port_problem(vf_state, pf_state, guid_zero, problem):
    assert vfs.port_problem(VfPort("mlx5_16", "1", vf_state), pf_state, guid_zero) == problem


def test_the_sm_is_blamed_only_when_every_vf_port_is_down_beside_an_active_pf():
    assert vfs.sm_without_virtualization(["mlx5_16/1 of VF 0 expected ACTIVE vs DOWN while the PF port is ACTIVE"])
    assert not vfs.sm_without_virtualization(["mlx5_16/1 of VF 0 expected ACTIVE vs DOWN (the PF port is DOWN)"])
    assert not vfs.sm_without_virtualization([])


def test_duplicates_name_the_other_vf_once_with_both_kinds():
    guid_a, guid_b = "02:00:00:00:00:00:00:0a", "02:00:00:00:00:00:00:0b"
    mine = vfs.owners("dgx022", "ibp24s0", [Vf(0, "0000:18:00.1", **BOUND, node_guids={"ip link": guid_a},
                                               port_guids={"ip link": guid_a})])
    other = vfs.owners("dgx023", "ibp24s0", [Vf(0, "0000:18:00.1", **BOUND, node_guids={"ip link": guid_a},
                                                port_guids={"ip link": guid_a}),
                                             Vf(1, "0000:18:00.2", **BOUND, node_guids={"ip link": guid_b})])
    fleet: dict[str, list[GuidOwner]] = {}
    for found in (mine, other):
        for key, owners in found.items():
            fleet.setdefault(key, []).extend(owners)
    assert vfs.duplicates(mine, fleet) == [
        f"{guid_a} of dgx022 ibp24s0 VF 0 (0000:18:00.1) node GUID also dgx023 ibp24s0 VF 0 (0000:18:00.1) node and "
        "port GUID"]
    assert vfs.duplicates(mine, mine) == []      # a VF's node and port GUID may be equal
    assert vfs.owners("n", "p", [Vf(0, "x", **BOUND, node_guids={"ip link": guid.ZERO_GUID})]) == {}


@pytest.mark.parametrize(("text", "mode"), [("Y\n", "shared"), ("N\n", "exclusive")])
def test_netns_mode_reads_the_module_parameter(text, mode):
    assert sysfs.parse_netns_mode(text) == mode


def test_the_netns_modes_are_the_ones_rdma_system_prints():
    printed = re.findall(r"^\s+netns (\w+) copy-on-fork on$",
                         sample("rdma-system-netns-shared-exclusive-and-rdma-link-in-pod-spiderpool-docs.txt"), re.M)
    assert printed == ["shared", "exclusive"]     # `rdma system` before and after `rdma system set netns exclusive`
    assert set(printed) == set(sysfs.NETNS_MODES.values())
    with pytest.raises(ParseError, match=r"expected Y \(shared\) or N \(exclusive\), got '1'"):
        sysfs.parse_netns_mode("1\n")


# -- the node script's VF records, run by sh ------------------------------------------------------------------

def _run(tmp_path: Path, body: str) -> nodescript.NodeOutput:
    boundary = nodescript.new_boundary()
    prelude = nodescript._PRELUDE % {"boundary": boundary, "timeout": "5", "ip_timeout": nodescript.IP_TIMEOUT_S}
    script = f"{prelude}\nrec host -; echo h; end 0\n{body}\nrec done -; end 0\n"
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, cwd=tmp_path, timeout=30,
                         check=True).stdout
    return nodescript.split(out, boundary)


def test_the_vf_records_read_links_files_and_commands_as_they_are(tmp_path):
    pf = tmp_path / "pf"
    (tmp_path / "vf0" / "infiniband" / "mlx5_16" / "ports" / "1").mkdir(parents=True)
    (tmp_path / "vf1").mkdir()
    pf.mkdir()
    (pf / "virtfn0").symlink_to("../vf0")
    (pf / "virtfn1").symlink_to("../vf1")
    (tmp_path / "vf0" / "driver").symlink_to("../../../../bus/pci/drivers/mlx5_core")   # vf1: unbound
    (tmp_path / "vf0" / "infiniband" / "mlx5_16" / "node_guid").write_text("7bc4:3bf2:e7dc:5cd7\n")
    (tmp_path / "vf0" / "infiniband" / "mlx5_16" / "ports" / "1" / "state").write_text("4: ACTIVE\n")
    out = _run(tmp_path, f"vfl {pf}\nfor v in {pf}/virtfn*; do [ -L \"$v\" ] && val \"$v\"/infiniband/*/node_guid "
                         f"\"$v\"/infiniband/*/ports/*/state; done\n"
                         "cmd 'ip link show ibp24s0' printf 'vf 0 line\\n'\ncmd 'failing' sh -c 'echo no >&2; exit 1'\n"
                         "cmd 'absent' /nonexistent/ip")
    assert out.links == {f"{pf}/virtfn0": "../vf0", f"{pf}/virtfn1": "../vf1",
                         f"{pf}/virtfn0/driver": "../../../../bus/pci/drivers/mlx5_core"}
    assert out.files == {f"{pf}/virtfn0/infiniband/mlx5_16/node_guid": "7bc4:3bf2:e7dc:5cd7\n",
                         f"{pf}/virtfn0/infiniband/mlx5_16/ports/1/state": "4: ACTIVE\n"}
    # an unmatched glob is read as its own path: unreadable, with the shell's error
    assert set(out.unreadable) == {f"{pf}/virtfn1/infiniband/*/node_guid", f"{pf}/virtfn1/infiniband/*/ports/*/state"}
    assert out.commands == {"ip link show ibp24s0": ("vf 0 line\n", 0), "failing": ("no\n", 1),
                            "absent": (out.commands["absent"][0], 127)}


def test_links_records_keep_only_links_under_their_folder(tmp_path):
    boundary = nodescript.new_boundary()
    text = (f"{boundary} host -\nh\n{boundary} end 0\n{boundary} links /sys/x\n/sys/x/virtfn0\t../a\n"
            f"/etc/passwd\t../../b\nno tab here\n{boundary} end 0\n{boundary} done -\n{boundary} end 0\n")
    assert nodescript.split(text, boundary).links == {"/sys/x/virtfn0": "../a"}
