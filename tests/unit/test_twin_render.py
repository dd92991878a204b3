"""What the twin renders for a node's host: pure functions, no root needed.

The kernel's files (/proc/cmdline, lockdown, ib_core's netns_mode), the machine-id that must equal the Node's
machineID, and the scenario's ``kernel`` keys.
"""

from __future__ import annotations

import re

import pytest

from ibconform.twin import ScenarioError, render
from ibconform.twin.cluster import node_object
from ibconform.twin.hardware import Node
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
    info = node_object(node, 0, "127.100.0.1")["status"]["nodeInfo"]
    assert (info["machineID"], info["kernelVersion"]) == (render.machine_id(host), render.KERNEL_RELEASE)


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
    assert render.mstconfig_query(fault.devices["ibp24s0"], device_arg="0000:18:00.0") == (
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
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0].replace("\\", "") for _, m in BAD])
def test_scenario_errors_on_the_new_keys_are_one_line_naming_the_field(text, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(GOOD + text, "bad.yaml")
    assert "\n" not in str(exc.value)
    assert re.match(r"bad\.yaml: " + message, str(exc.value)), str(exc.value)
