"""The twin's VFs: how it numbers them, the sysfs and `ip link show` it renders for them, and the VF faults.

Pure functions of the scenario's hardware, no root needed; the formats are those the suite's parsers read on
real captures (docs/formats.md#vfs).
"""

from __future__ import annotations

import re

import pytest

from ibconform.parsers import guid, iplink, sysfs
from ibconform.twin import ScenarioError
from ibconform.twin.machines import nodes as node_procs
from ibconform.twin.machines import render
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.scenario import parse as parse_scenario

FAULTS = load_scenario("faults")
SCENARIO = "format: ibconform-twin/v1\ncluster: c\nprofile: dgx-b200\nnodes:\n"


def test_vfs_are_numbered_after_the_pfs_in_pci_order():
    node = FAULTS.nodes["dgx001"]
    vfs = node.vfs()
    assert len(vfs) == 8 * 8
    first = vfs[0]      # 0000:0e:00.x are the mezz ports (no VFs); ibp24s0 is the first PF with VFs
    assert (first.pf, first.index, first.pci, first.rdma, first.uverbs) == ("ibp24s0", 0, "0000:18:00.1", "mlx5_16", 14)
    assert first.pci == render.vf_address("0000:18:00.0", 0)
    assert [v.rdma for v in vfs] == [f"mlx5_{n}" for n in range(16, 80)]
    assert [v.pci for v in node.vfs("ibp64s0")] == [f"0000:40:00.{k}" for k in range(1, 8)] + ["0000:40:01.0"]


def test_vf_guids_are_set_stable_and_unique_across_the_fleet():
    guids = [vf.guid for node in FAULTS.nodes.values() for vf in node.vfs() if node.name not in ("dgx021", "dgx022")]
    assert len(guids) == len(set(guids))
    assert all(guid.normalize_guid(g) == g and 0x01 <= int(g[:2], 16) <= 0xFE for g in guids)
    assert load_scenario("faults").nodes["dgx001"].vfs()[0].guid == FAULTS.nodes["dgx001"].vfs()[0].guid


def test_a_bound_vf_renders_as_real_sysfs_does():
    node = FAULTS.nodes["dgx001"]
    hca, vf = node.devices["ibp24s0"], node.vfs("ibp24s0")[0]
    files, links = render.vf_tree(hca, vf)
    base = "bus/pci/devices/0000:18:00.1"
    assert links[f"{base}/driver"].rsplit("/", 1)[1] == "mlx5_core"
    assert links["bus/pci/devices/0000:18:00.0/virtfn0"] == "../0000:18:00.1"
    assert links["class/infiniband/mlx5_16"] == f"../../{base}/infiniband/mlx5_16"
    assert sysfs.parse_port_state(files[f"{base}/infiniband/mlx5_16/ports/1/state"]).name == "ACTIVE"
    assert files[f"{base}/infiniband_verbs/uverbs14/dev"] == "231:206\n"      # uverbsN is char 231:192+N
    assert files[f"{base}/infiniband_mad/umad14/dev"] == "231:14\n"
    assert files[f"{base}/infiniband_verbs/uverbs14/ibdev"] == "mlx5_16\n"
    assert not any(path.endswith("node_guid") for path in files)             # the node's own: guid_files
    own = render.guid_files(node)
    assert guid.parse_sysfs_guid(own["0000:18:00.1/infiniband/mlx5_16/node_guid"]) == vf.guid
    assert own["0000:18:00.0/sriov/0/node"] == own["0000:18:00.0/sriov/0/port"] == vf.guid + "\n"


def test_ip_link_show_prints_every_vf_line_with_the_vfs_guids():
    node = FAULTS.nodes["dgx001"]
    text = render.ip_link_show(node, node.devices["ibp24s0"])
    assert re.match(r"\d+: ibp24s0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 4092 qdisc mq state UP mode DEFAULT "
                    r"group default qlen 256\n    link/infiniband (?:[0-9a-f]{2}:){19}[0-9a-f]{2} brd 00:ff:ff:ff:ff:12:"
                    r"40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff\n", text)
    lines = iplink.parse_vf_lines(text)
    assert [(v.pf, v.vf, v.node_guid, v.port_guid, v.link_state) for v in lines] == [
        ("ibp24s0", vf.index, vf.guid, vf.guid, "auto") for vf in node.vfs("ibp24s0")]


@pytest.mark.parametrize(("name", "iface", "index", "state", "zero", "bound"), [
    ("dgx021", "ibp64s0", 0, "INIT", True, True),       # vf-zero-guid: no SM activates a port without a GUID
    ("dgx024", "ibp94s0", 5, "ACTIVE", False, False),   # vf-unbound
    ("dgx025", "ibp24s0", 0, "DOWN", False, True),      # vf-port-down: the SM serves no virtual port
    ("dgx006", "ibp220s0", 0, "DOWN", False, True),     # port-down: the VFs follow their PF
])
def test_vf_faults_change_what_the_node_serves(name, iface, index, state, zero, bound):
    node = FAULTS.nodes[name]
    vf = node.vfs(iface)[index]
    assert (vf.port_state, vf.guid == guid.ZERO_GUID, vf.bound) == (state, zero, bound)
    files, links = render.vf_tree(node.devices[iface], vf)
    assert (f"bus/pci/devices/{vf.pci}/driver" in links) == bound
    assert any("/infiniband/" in path for path in files) == bound
    line = iplink.parse_vf_lines(render.ip_link_show(node, node.devices[iface]))[index]
    assert line.guids_zero is zero


def test_the_duplicate_copies_the_named_nodes_vf_guid():
    assert FAULTS.nodes["dgx022"].vfs("ibp24s0")[0].guid == FAULTS.nodes["dgx023"].vfs("ibp24s0")[0].guid
    assert FAULTS.nodes["dgx022"].vfs("ibp24s0")[1].guid != FAULTS.nodes["dgx023"].vfs("ibp24s0")[1].guid


def test_rdma_netns_fault_sets_the_kernels_mode():
    assert FAULTS.nodes["dgx026"].kernel.rdma_netns == "exclusive"
    assert render.netns_mode(FAULTS.nodes["dgx026"].kernel.rdma_netns) == "N\n"


def test_nodes_differing_only_in_vf_guids_share_one_hardware_tree():
    nodes = FAULTS.nodes
    assert node_procs.hardware_key(nodes["dgx001"]) == node_procs.hardware_key(nodes["dgx022"])   # GUIDs differ
    assert node_procs.hardware_key(nodes["dgx001"]) != node_procs.hardware_key(nodes["dgx021"])   # a port INIT


def test_the_pci_layer_of_a_node_carries_only_its_guids():
    layer = render.guid_files(FAULTS.nodes["dgx024"])
    assert all(path.endswith(("/node_guid", "/node", "/port")) for path in layer)
    assert not any(path.startswith("0000:5e:00.6/") for path in layer)       # the unbound VF has no RDMA device
    assert "0000:5e:00.0/sriov/5/node" in layer                              # its PF still shows its GUID


@pytest.mark.parametrize(("fault", "error"), [
    ("{kind: vf-zero-guid, hcas: [ibp24s0], vf: 8}", r"vf: expected a VF of ibp24s0, 0 to 7, got 8"),
    ("{kind: vf-guid-duplicate, hcas: [ibp24s0]}", r"node: expected the name of the node whose VF GUID"),
    ("{kind: rdma-netns, mode: private}", r"mode: expected shared or exclusive, got 'private'"),
])
def test_vf_fault_mistakes_are_one_line(fault, error):
    with pytest.raises(ScenarioError, match=error):
        parse_scenario(SCENARIO + f"  - {{names: n1, faults: [{fault}]}}\n", "s.yaml")
