"""What each twin node's host serves besides its devices, for real: its kernel's files, its machine-id, the
dual-port VPI cards, and Nodes named by address, seen over SSH (paramiko, strict host keys) and through the API.

Needs root, /usr/sbin/sshd and unshare, as the other twin tests.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import paramiko
import pytest

from ibconform.inventory import load as load_inventory
from ibconform.twin import Twin
from ibconform.twin.controllers.cluster import operator_workloads
from ibconform.twin.kube import Namespaces, OperatorRelease
from ibconform.twin.machines import nodes as node_procs
from ibconform.twin.machines import render
from ibconform.twin.scenario import load as load_scenario

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(node_procs.SSHD).exists(), reason="the twin needs root and openssh-server")

KERNEL_FILES = "/proc/cmdline /sys/kernel/security/lockdown /sys/module/ib_core/parameters/netns_mode"
VPI_QUERY = "mstconfig -d 0000:41:00.1 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P2"


def run(twin: Twin, host: str, command: str) -> tuple[int, str]:
    """``command`` on ``host`` over SSH, reached as the suite reaches it: by its Node name through ssh_config."""
    config = paramiko.SSHConfig.from_path(str(twin.ssh_config_path)).lookup(twin.node_names[host])
    client = paramiko.SSHClient()
    client.load_host_keys(str(twin.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(config["hostname"], username="root", key_filename=str(twin.identity_path), look_for_keys=False,
                   allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5)
    try:
        _, stdout, _ = client.exec_command(command, timeout=15)
        out = stdout.read().decode()
        return stdout.channel.recv_exit_status(), out
    finally:
        client.close()


@pytest.fixture(scope="module")
def machine_id_before() -> bytes | None:
    path = node_procs.MACHINE_ID
    return path.read_bytes() if path.is_file() else None


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, machine_id_before):
    with Twin("kernel", tmp_path_factory.mktemp("twin-kernel")) as twin:
        yield twin


@pytest.fixture(scope="module")
def vpi(tmp_path_factory: pytest.TempPathFactory):
    with Twin("vpi", tmp_path_factory.mktemp("twin-vpi")) as twin:
        yield twin


@pytest.fixture(scope="module")
def ip_named(tmp_path_factory: pytest.TempPathFactory):
    with Twin("ip-named", tmp_path_factory.mktemp("twin-ip-named")) as twin:
        yield twin


# ---------------------------------------------------------------------------------------------- the kernel

@pytest.mark.parametrize(("host", "args", "lockdown", "netns"), [
    ("krn001", "", "[none] integrity confidentiality", "Y"),
    ("krn002", " ib_core.netns_mode=0", "[none] integrity confidentiality", "N"),
    ("krn003", "", "[none] integrity confidentiality", "N"),
    ("krn004", "", "none [integrity] confidentiality", "Y"),
])
def test_each_node_serves_its_kernels_files(kernel, host, args, lockdown, netns):
    rc, out = run(kernel, host, f"cat {KERNEL_FILES}")
    cmdline, *rest = out.splitlines()
    assert rc == 0 and rest == [lockdown, netns], out
    assert re.fullmatch(rf"BOOT_IMAGE=/boot/vmlinuz-\S+ root=UUID=\S+ ro .*intel_iommu=on iommu=pt.*"
                        rf"nouveau\.modeset=0{re.escape(args)}", cmdline), cmdline


def test_each_node_serves_its_own_machine_id_which_is_its_nodes_machine_id(kernel, machine_id_before):
    seen = {}
    for host in kernel.scenario.nodes:
        rc, out = run(kernel, host, "cat /etc/machine-id; uname -n")
        machine_id, uname = out.splitlines()
        node = kernel.api.get("v1", "Node", kernel.node_names[host])
        assert (rc, uname, machine_id) == (0, host, node["status"]["nodeInfo"]["machineID"])
        seen[host] = machine_id
    assert len(set(seen.values())) == len(seen)
    path = node_procs.MACHINE_ID
    assert (path.read_bytes() if path.is_file() else None) == machine_id_before     # the machine's own file


def test_nodes_with_the_same_hardware_share_a_tree_but_not_their_host_files(kernel):
    """krn001-003 differ only in their kernel's files: one hardware tree; the locked-down krn004 has its own."""
    trees = {host: kernel.hardware_dir(host) for host in kernel.scenario.nodes}
    assert trees["krn001"] == trees["krn002"] == trees["krn003"] != trees["krn004"]
    assert not (trees["krn001"] / "host").exists()


def test_a_locked_down_node_fails_mstconfig_on_every_device(kernel):
    assert run(kernel, "krn004", "mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1") == (
        3, "-E- Failed to open the device\n")
    assert run(kernel, "krn004", "mstconfig -d 0000:29:00.0 -e q")[0] == 3
    assert run(kernel, "krn001", "mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS")[0] == 0


def test_the_config_daemon_of_a_locked_down_node_fails_on_mstconfig(kernel):
    state = kernel.api.get("sriovnetwork.openshift.io/v1", "SriovNetworkNodeState", "krn004", "network-operator")
    assert state["status"]["syncStatus"] == "Failed"
    assert "-E- Failed to open the device exit status 3" in state["status"]["lastSyncError"]


def test_with_no_machine_id_to_bind_over_an_overlay_of_etc_serves_it(tmp_path):
    """A machine without /etc/machine-id (a bare container): /etc is overlaid, the machine's /etc stays as it is."""
    node_procs.write_host(tmp_path, load_scenario("demo").nodes["dgx030"])
    mounts = tmp_path / "fstab"
    mounts.write_text(node_procs.fstab([node_procs.machine_id_mount(tmp_path / "host", bind=False)]))
    before = sorted(os.listdir("/etc"))
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                          f"mount --all --fstab {mounts} && cat /etc/machine-id && test -f /etc/passwd"],
                         capture_output=True, text=True, timeout=10)
    assert (out.returncode, out.stdout, out.stderr) == (0, render.machine_id("dgx030") + "\n", "")
    assert sorted(os.listdir("/etc")) == before


# ---------------------------------------------------------------------------------------------- dual-port VPI cards

def test_mstconfig_on_the_ib_function_of_a_vpi_card_prints_its_port_2(vpi):
    rc, out = run(vpi, "vpi01", VPI_QUERY)
    assert rc == 0
    assert out.split("Configurations:", 1)[1] == (
        f"{'':42}Default             Current         Next Boot\n"
        f"*{'':7}{'NUM_OF_VFS':<44}{'0':<20} {'8':<20} {'8':<20}\n"
        f"*{'':7}{'SRIOV_EN':<44}{'False(0)':<20} {'True(1)':<20} {'True(1)':<20}\n"
        f"*{'':7}{'LINK_TYPE_P2':<44}{'ETH(2)':<20} {'IB(1)':<20} {'IB(1)':<20}\n"
        f"{render.LEGEND}\n")
    assert re.search(r"^Name:\s+MCX755106AS-HEA_Ax\s*$", out, re.MULTILINE)


@pytest.mark.parametrize(("host", "command", "rc", "pattern"), [
    ("vpi01", "mstconfig -d 0000:41:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1", 0, r"^\s+LINK_TYPE_P1\s+ETH\(2\)\s+ETH\(2\)\s+ETH\(2\)\s*$"),
    ("vpi01", "mstconfig -d 41:00.0 q LINK_TYPE_P1 LINK_TYPE_P2", 0, r"^\s+LINK_TYPE_P1\s+ETH\(2\)\s*\n\s+LINK_TYPE_P2\s+IB\(1\)\s*\Z"),
    ("vpi01", "mstconfig -d mlx5_3 -e q", 0, r"^\*\s+LINK_TYPE_P2\s+ETH\(2\)\s+IB\(1\)\s+IB\(1\)\s*\n"),
    ("vpi03", VPI_QUERY, 0, r"^\s+LINK_TYPE_P2\s+ETH\(2\)\s+ETH\(2\)\s+ETH\(2\)\s*$"),
    ("vpi03", "mstconfig -d 0000:c1:00.1 -e q LINK_TYPE_P2", 0, r"^\*\s+LINK_TYPE_P2\s+ETH\(2\)\s+IB\(1\)\s+IB\(1\)\s*$"),
    ("vpi01", "mstconfig -d 0000:41:00.1 -e q LINK_TYPE_P3", 3, r"\n\n-E- The Device doesn't support LINK_TYPE_P3 parameter\n\Z"),
    ("vpi01", "cat /sys/class/net/enp65s0f0np0/device/infiniband/*/ports/1/link_layer "
              "/sys/class/net/enp65s0f0np0/device/infiniband/*/ports/1/rate", 0, r"\AEthernet\n200 Gb/sec \(4X HDR\)\n\Z"),
    ("vpi01", "cat /sys/class/net/ibp65s0f1/device/infiniband/*/ports/1/link_layer "
              "/sys/class/net/ibp65s0f1/device/infiniband/*/ports/1/rate", 0, r"\AInfiniBand\n200 Gb/sec \(2X NDR\)\n\Z"),
    ("vpi03", "cat /sys/class/infiniband/mlx5_1/ports/1/link_layer", 0, r"\AEthernet\n\Z"),
    ("vpi01", "readlink /sys/class/net/ibp65s0f1/device", 0, r"/0000:41:00\.1\n\Z"),
])
def test_vpi_nodes_answer(vpi, host, command, rc, pattern):
    got_rc, out = run(vpi, host, command)
    assert (got_rc, bool(re.search(pattern, out, re.MULTILINE))) == (rc, True), f"{command!r} on {host}:\n{out}"


def test_the_vpi_inventory_proves_the_ib_port_and_excludes_the_ethernet_port(vpi):
    node = load_inventory(vpi.inventory_path).node("vpi01")
    assert [(h.iface, h.pci, h.port) for h in node.hcas] == [("ibp65s0f1", "0000:41:00.1", 2),
                                                            ("ibp193s0f1", "0000:c1:00.1", 2)]
    assert [(d.pci, d.iface, d.reason) for d in node.excluded] == [
        ("0000:41:00.0", "enp65s0f0np0", "Ethernet port of a VPI card"),
        ("0000:c1:00.0", "enp193s0f0np0", "Ethernet port of a VPI card")]
    policies = vpi.api.list("sriovnetworknodepolicies", "network-operator")
    assert [p["spec"]["nicSelector"]["pfNames"] for p in policies] == [["ibp193s0f1"], ["ibp65s0f1"]]
    interfaces = {i["name"]: i for i in vpi.api.get("sriovnetwork.openshift.io/v1", "SriovNetworkNodeState", "vpi01",
                                                    "network-operator")["status"]["interfaces"]}
    assert (interfaces["enp65s0f0np0"]["linkType"], interfaces["ibp65s0f1"]["linkType"]) == ("ETH", "IB")


# ---------------------------------------------------------------------------------------------- Nodes named by address

def test_a_node_named_by_address_is_that_address_in_kubernetes_and_its_host_name_on_the_host(ip_named):
    for host in ("oke-gpu-1", "oke-gpu-2"):
        address = ip_named.addresses[host]
        assert ip_named.node_names[host] == address
        node = ip_named.api.get("v1", "Node", address)
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == address
        assert node["status"]["addresses"] == [{"type": "InternalIP", "address": address},
                                               {"type": "Hostname", "address": address}]
        assert run(ip_named, host, "uname -n; cat /etc/machine-id") == (
            0, f"{host}\n{node['status']['nodeInfo']['machineID']}\n")
    assert ip_named.api.get("v1", "Node", "oke-gpu-1") is None


def test_everything_naming_a_node_by_address_uses_its_node_name(ip_named):
    names = [ip_named.addresses[h] for h in ("oke-gpu-1", "oke-gpu-2")]
    assert [n.name for n in load_inventory(ip_named.inventory_path).nodes] == names
    assert [line.split()[0] for line in ip_named.known_hosts_path.read_text().splitlines()] == names
    assert re.findall(r"^Host (\S+)\n  HostName (\S+)$", ip_named.ssh_config_path.read_text(), re.MULTILINE) == [
        (n, n) for n in names]
    api = ip_named.api
    assert [s["metadata"]["name"] for s in api.list("sriovnetworknodestates", "network-operator")] == names
    assert [a["nodeName"] for a in api.get("nv-ipam.nvidia.com/v1alpha1", "IPPool", "ib-pool",
                                           "network-operator")["status"]["allocations"]] == names
    workloads = operator_workloads(Namespaces(), OperatorRelease(), None)
    daemon = next(w for w in workloads if w.name == "sriov-network-config-daemon")
    pods = api.list("pods", "network-operator", label_selector="app=sriov-network-config-daemon")
    assert daemon.kind == "DaemonSet" and sorted(p["spec"]["nodeName"] for p in pods) == names
    for name in names:
        assert api.get("v1", "Node", name)["status"]["allocatable"]["nvidia.com/resibp24s0"] == "8"
        kubelet = ip_named.kubelet(name)
        assert kubelet is not None and kubelet.address == name and kubelet.enter
    assert ip_named.kubelet("oke-gpu-1") is None
