"""What the twin renders for a node's host and for multi-port cards: pure functions, no root needed.

The kernel's files (/proc/cmdline, lockdown, ib_core's netns_mode), the machine-id that must equal the Node's
machineID, the scenario's ``kernel`` keys, and mstconfig on both functions of a dual-port VPI card.
"""

from __future__ import annotations

import re

import pytest

from ibconform.twin import ScenarioError
from ibconform.twin.controllers.cluster import node_object
from ibconform.twin.machines import render
from ibconform.twin.machines.hardware import Node
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.scenario import parse as parse_scenario

GOOD = "format: ibconform-twin/v1\ncluster: c\n"


@pytest.mark.parametrize(("mode", "text"), [
    ("none", "[none] integrity confidentiality\n"),
    ("integrity", "none [integrity] confidentiality\n"),
    ("confidentiality", "none integrity [confidentiality]\n"),
])
def test_lockdown_brackets_the_active_mode(mode, text):
    assert render.lockdown(mode) == text


@pytest.mark.parametrize(("mode", "text"), [("shared", "Y\n"), ("exclusive", "N\n")])
def test_netns_mode_is_a_bool_module_parameter(mode, text):
    assert render.netns_mode(mode) == text


def test_kernel_cmdline_boots_the_nodes_kernel_with_the_iommu_in_pass_through_then_the_scenarios_args():
    line = render.kernel_cmdline("dgx030", ["ib_core.netns_mode=0", "lockdown=integrity"])
    assert re.fullmatch(rf"BOOT_IMAGE=/boot/vmlinuz-{re.escape(render.KERNEL_RELEASE)} root=UUID=[0-9a-f-]{{36}} ro "
                        r".* intel_iommu=on iommu=pt .* ib_core\.netns_mode=0 lockdown=integrity\n", line), line
    assert line == render.kernel_cmdline("dgx030", ["ib_core.netns_mode=0", "lockdown=integrity"])
    assert line.split()[1] != render.kernel_cmdline("dgx031", []).split()[1]      # each node its own root UUID


@pytest.mark.parametrize("host", ["dgx030", "dgx031", "oke-gpu-1"])
def test_machine_id_is_32_hex_and_the_nodes_machine_id(host):
    node = Node(host, "dgx-b200", {})
    assert re.fullmatch(r"[0-9a-f]{32}", render.machine_id(host))
    assert node_object(node, "127.100.0.1", 0, "127.100.0.1")["status"]["nodeInfo"]["machineID"] == \
        render.machine_id(host)
    assert node_object(node, host, 0, "127.100.0.1")["status"]["nodeInfo"]["kernelVersion"] == render.KERNEL_RELEASE


def test_a_node_named_by_address_keeps_its_host_identity():
    node = load_scenario("ip-named").nodes["oke-gpu-1"]
    name = node.node_name("10.0.10.57")
    obj = node_object(node, name, 0, "10.0.10.57")
    assert (name, obj["metadata"]["name"], obj["metadata"]["labels"]["kubernetes.io/hostname"]) == ("10.0.10.57",) * 3
    assert obj["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.10.57"},
                                          {"type": "Hostname", "address": "10.0.10.57"}]
    assert obj["status"]["nodeInfo"]["machineID"] == render.machine_id("oke-gpu-1")
    assert load_scenario("demo").nodes["dgx030"].node_name("127.100.0.1") == "dgx030"


# ---------------------------------------------------------------------------------------------- scenario kernel

# the scenario's kernel, the group's kernel -> the node's args, lockdown, RDMA netns mode
KERNELS = [
    ("", "", (), "none", "shared"),
    ("{args: [ib_core.netns_mode=0]}", "", ("ib_core.netns_mode=0",), "none", "exclusive"),
    ("{args: [ib_core.netns_mode=N]}", "{args: [ib_core.netns_mode=1]}",
     ("ib_core.netns_mode=N", "ib_core.netns_mode=1"), "none", "shared"),                  # the last one counts
    ("{args: [ib_core.netns_mode=0]}", "{rdmaNetnsMode: shared}", ("ib_core.netns_mode=0",), "none", "shared"),
    ("{rdmaNetnsMode: exclusive}", "", (), "none", "exclusive"),
    ("{args: [lockdown=integrity]}", "", ("lockdown=integrity",), "integrity", "shared"),
    ("{args: [lockdown=integrity]}", "{lockdown: confidentiality}", ("lockdown=integrity",), "confidentiality",
     "shared"),
    ("{lockdown: integrity}", "{args: [quiet]}", ("quiet",), "integrity", "shared"),
]


@pytest.mark.parametrize(("top", "group", "args", "lockdown", "netns"), KERNELS)
def test_kernel_keys_layer_the_scenarios_then_the_groups(top, group, args, lockdown, netns):
    text = GOOD + (f"kernel: {top}\n" if top else "") + "nodes:\n  - names: a\n" + \
        (f"    kernel: {group}\n" if group else "")
    kernel = parse_scenario(text, "k.yaml").nodes["a"].kernel
    assert (kernel.args, kernel.lockdown, kernel.rdma_netns) == (args, lockdown, netns)


def test_a_locked_down_kernel_fails_mstconfig_on_every_device():
    node = parse_scenario(GOOD + "nodes:\n  - names: a\n    kernel: {lockdown: integrity}\n", "k.yaml").nodes["a"]
    assert node.faults == []
    assert {d.mst_error for d in node.devices.values()} == {"-E- Failed to open the device"}
    fault = load_scenario("kernel").nodes["krn004"]
    assert (fault.kernel.lockdown, fault.faults) == ("integrity", ["kernel-lockdown"])
    assert render.mstconfig_query(fault.devices["ibp24s0"], {}, device_arg="0000:18:00.0") == (
        "-E- Failed to open the device\n", 3)


BAD = [
    ("kernel: {args: ['quiet splash']}\nnodes: [{names: a}]\n", r"kernel\.args\[0\]: expected a kernel argument"),
    ("kernel: {lockdown: full}\nnodes: [{names: a}]\n", r"kernel\.lockdown: expected 'none', 'integrity' or"),
    ("kernel: {rdmaNetnsMode: private}\nnodes: [{names: a}]\n", r"kernel\.rdmaNetnsMode: expected 'shared' or"),
    ("nodes: [{names: a, kernel: {args: [ib_core.netns_mode=maybe]}}]\n",
     r"nodes\[0\]\.kernel\.args: ib_core\.netns_mode=maybe: expected ib_core\.netns_mode=0 \(exclusive\) or 1"),
    ("kernel: {args: [lockdown=full]}\nnodes: [{names: a}]\n",
     r"kernel\.args: lockdown=full: expected lockdown=integrity or lockdown=confidentiality"),
    ("kernel: {args: [lockdown=integrity]}\nnodes: [{names: a, kernel: {lockdown: none}}]\n",
     r"nodes\[0\]\.kernel\.lockdown: none is below lockdown=integrity in the kernel's args"),
    ("nodes: [{names: a, nodeName: ip}]\n", r"nodes\[0\]\.nodeName: expected 'hostname' or 'address'"),
    ("profiles: {p: {devices: [{iface: ibp65s0f1, pci: '0000:41:00.1', rdma: mlx5_1, type: ConnectX7-2port, "
     "port: 3}]}}\nnodes: [{names: a, profile: p}]\n",
     r"profiles\.p\.devices\[0\]\.port: 0000:41:00\.1 would drive port 3 but a ConnectX7-2port card has 2"),
    ("profiles: {p: {devices: [{iface: ibp65s0f2, pci: '0000:41:00.2', rdma: mlx5_1, type: ConnectX7-2port}]}}\n"
     "nodes: [{names: a, profile: p}]\n", r"profiles\.p\.devices\[0\]\.pci: 0000:41:00\.2 would drive port 3"),
    ("profiles: {p: {devices: [{iface: ibp65s0f0, pci: '0000:41:00.0', rdma: mlx5_0, type: ConnectX7-2port}, "
     "{iface: ibp65s0f1, pci: '0000:41:00.1', rdma: mlx5_1, type: ConnectX7-2port, port: 1}]}}\n"
     "nodes: [{names: a, profile: p}]\n",
     r"profiles\.p\.devices\[1\]: ibp65s0f1 and ibp65s0f0 both drive port 1 of card 0000:41:00"),
    ("profiles: {p: {devices: [{iface: ibp65s0f1, pci: '0000:41:00.1', rdma: mlx5_1, linkType: RoCE}]}}\n"
     "nodes: [{names: a, profile: p}]\n", r"profiles\.p\.devices\[0\]\.linkType: expected 'IB' or 'ETH'"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0].replace("\\", "") for _, m in BAD])
def test_scenario_errors_on_the_new_keys_are_one_line_naming_the_field(text, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(GOOD + text, "bad.yaml")
    assert "\n" not in str(exc.value)
    assert re.match(r"bad\.yaml: " + message, str(exc.value)), str(exc.value)


# ---------------------------------------------------------------------------------------------- dual-port cards

ROW = r"^{star}\s+{name}\s+{default}\s+{current}\s+{next_boot}\s*$"


def rows(node: Node, iface: str, params: list[str] | None) -> tuple[str, int]:
    hca = node.devices[iface]
    return render.mstconfig_query(hca, node.link_types(hca), device_arg=hca.pci, params=params)


# node, PF, the parameters asked (None: all), exit code, rows the table must have (star, name, Default, Current, Next)
DUAL_PORT = [
    ("vpi01", "ibp65s0f1", render.query_params(2), 0,
     [("\\*", "NUM_OF_VFS", "0", "8", "8"), ("\\*", "SRIOV_EN", "False\\(0\\)", "True\\(1\\)", "True\\(1\\)"),
      ("\\*", "LINK_TYPE_P2", "ETH\\(2\\)", "IB\\(1\\)", "IB\\(1\\)")]),
    ("vpi01", "enp65s0f0np0", render.query_params(1), 0,
     [(" ", "NUM_OF_VFS", "0", "0", "0"), (" ", "LINK_TYPE_P1", "ETH\\(2\\)", "ETH\\(2\\)", "ETH\\(2\\)")]),
    ("vpi01", "enp65s0f0np0", ["LINK_TYPE_P2"], 0,                    # a card's parameter: either function has it
     [("\\*", "LINK_TYPE_P2", "ETH\\(2\\)", "IB\\(1\\)", "IB\\(1\\)")]),
    ("vpi01", "ibp65s0f1", None, 0,
     [(" ", "LINK_TYPE_P1", "ETH\\(2\\)", "ETH\\(2\\)", "ETH\\(2\\)"),
      ("\\*", "LINK_TYPE_P2", "ETH\\(2\\)", "IB\\(1\\)", "IB\\(1\\)"),
      (" ", "SRIOV_IB_ROUTING_MODE_P2", "LID\\(1\\)", "LID\\(1\\)", "LID\\(1\\)")]),
    ("vpi03", "ibp65s0f1", render.query_params(2), 0,                 # link-type-eth on the PF of port 2
     [(" ", "LINK_TYPE_P2", "ETH\\(2\\)", "ETH\\(2\\)", "ETH\\(2\\)")]),
    ("vpi03", "enp65s0f0np0", ["LINK_TYPE_P1", "LINK_TYPE_P2"], 0,
     [(" ", "LINK_TYPE_P1", "ETH\\(2\\)", "ETH\\(2\\)", "ETH\\(2\\)"),
      (" ", "LINK_TYPE_P2", "ETH\\(2\\)", "ETH\\(2\\)", "ETH\\(2\\)")]),
    ("vpi03", "ibp193s0f1", render.query_params(2), 0,                # the other card keeps its IB port
     [("\\*", "LINK_TYPE_P2", "ETH\\(2\\)", "IB\\(1\\)", "IB\\(1\\)")]),
]


@pytest.mark.parametrize(("host", "iface", "params", "rc", "want"), DUAL_PORT,
                         ids=[f"{r[0]}-{r[1]}-{'+'.join(r[2] or ['all'])}" for r in DUAL_PORT])
def test_both_functions_of_a_dual_port_card_show_the_cards_link_types(host, iface, params, rc, want):
    node = load_scenario("vpi").nodes[host]
    text, code = rows(node, iface, params)
    assert code == rc
    assert re.search(r"^Name:\s+MCX755106AS-HEA_Ax\s*$", text, re.MULTILINE)
    assert re.search(rf"^Device:\s+{re.escape(node.devices[iface].pci)}\s*$", text, re.MULTILINE)
    for star, name, default, current, next_boot in want:
        assert re.search(ROW.format(star=star, name=name, default=default, current=current, next_boot=next_boot),
                         text, re.MULTILINE), f"{name} on {iface}:\n{text}"


@pytest.mark.parametrize(("scenario", "host", "iface"), [("demo", "dgx030", "ibp24s0"), ("demo", "dgx030", "ibs14f1"),
                                                         ("vpi", "vpi01", "ibp65s0f1")])
def test_a_card_refuses_a_port_it_does_not_have(scenario, host, iface):
    """A single-port ConnectX-7 has no LINK_TYPE_P2 (every function of the mezz device drives its port 1); a
    dual-port card no LINK_TYPE_P3: the header, then mstconfig's refusal, exit 3."""
    node = load_scenario(scenario).nodes[host]
    port = node.devices[iface].type.ports + 1
    text, code = rows(node, iface, ["NUM_OF_VFS", f"LINK_TYPE_P{port}"])
    assert code == 3
    assert text.endswith(f"\n\n-E- The Device doesn't support LINK_TYPE_P{port} parameter\n"), text
    assert "Configurations:" not in text


def test_a_vpi_cards_ports_serve_their_own_link_layer_rate_and_pci_class():
    node = load_scenario("vpi").nodes["vpi01"]
    files, links = render.sysfs_tree(node)
    eth = "bus/pci/devices/0000:41:00.0"
    ib = "bus/pci/devices/0000:41:00.1"
    assert (links["class/net/enp65s0f0np0"], links["class/net/ibp65s0f1"]) == (
        f"../../{eth}/net/enp65s0f0np0", f"../../{ib}/net/ibp65s0f1")
    assert [files[f"{eth}/infiniband/mlx5_0/ports/1/{f}"] for f in ("link_layer", "rate")] == [
        "Ethernet\n", "200 Gb/sec (4X HDR)\n"]
    assert [files[f"{ib}/infiniband/mlx5_1/ports/1/{f}"] for f in ("link_layer", "rate")] == [
        "InfiniBand\n", "200 Gb/sec (2X NDR)\n"]
    assert (files[f"{eth}/class"], files[f"{ib}/class"]) == ("0x020000\n", "0x020700\n")
    assert (files[f"{eth}/net/enp65s0f0np0/type"], files[f"{ib}/net/ibp65s0f1/type"]) == ("1\n", "32\n")
    assert files[f"{ib}/infiniband/mlx5_1/board_id"] == "MT_0000000834\n"
    assert (files[f"{eth}/sriov_numvfs"], files[f"{ib}/sriov_numvfs"]) == ("0\n", "8\n")
