"""The VFs themselves: bound to mlx5_core with their RDMA devices, GUIDs set and unique, ports up, netns mode.

Read on the node (no pod needed), so these run in ``--read-only`` runs too. A zero GUID here explains a pod's
CNI ADD failing "GUID is not valid" and its missing RDMA device later in the chain.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform import vfs
from ibconform.facts import fleet_guids

pytestmark = pytest.mark.link("vfs")


def test_vfs_bound(hca):
    expected = hca.expected_vfs
    rows = hca.vfs()
    indexes = {vf.index for vf in rows}
    missing = [i for i in range(expected) if i not in indexes]
    assert not missing, (
        f"VFs of {hca} expected {expected} vs {len(indexes)} (virtfn{missing[0]}"
        f"{f'..virtfn{missing[-1]}' if len(missing) > 1 else ''} missing): the kernel did not create them — "
        "see sriov_numvfs and the sriov-network-config-daemon log")
    problems = [(vf, problem) for vf in rows if (problem := vfs.binding_problem(vf))]
    if problems:
        vf, problem = problems[0]
        more = f" (and {len(problems) - 1} more VFs)" if len(problems) > 1 else ""
        raise AssertionError(
            f"{vf} of {hca} {problem}{more}: bind it to {vfs.DRIVER} "
            f"(echo {vf.pci} > /sys/bus/pci/drivers/{vfs.DRIVER}/bind) or restart the node's "
            "sriov-network-config-daemon pod, which rebinds the VFs it configures")


def test_vf_guids_set(hca):
    rows = hca.vfs()
    unknown = [vf for vf in rows if vf.guid("node") is None and vf.guid("port") is None]
    assert not unknown, (
        f"GUIDs of {unknown[0]} of {hca} expected shown vs not in ip link, sriov/{unknown[0].index} or node_guid: "
        "update iproute2 (5.5+ prints NODE_GUID/PORT_GUID) and check the VF's driver binding")
    zeros = [(vf, zero) for vf in rows if (zero := vfs.zero_guids(vf))]
    if zeros:
        vf, zero = zeros[0]
        more = f" (and {len(zeros) - 1} more VFs)" if len(zeros) > 1 else ""
        raise AssertionError(
            f"GUID of {vf} of {hca} expected non-zero vs {'; '.join(zero)}{more}: nobody set it — pods get "
            "\"GUID is not valid\" at CNI ADD; let the sriov-network-config-daemon set it (restart its pod on the "
            f"node) or set it by hand: ip link set {hca.hca.iface} vf {vf.index} node_guid <guid> port_guid <guid>")


@pytest.mark.fleet
def test_vf_guids_unique(hca):
    mine = vfs.owners(hca.node.node.name, hca.hca.iface, hca.vfs())
    everyone = fleet_guids(hca.node.bundle)
    clashes = vfs.duplicates(mine, everyone)
    assert not clashes, vfs.not_unique(str(hca), clashes)


def test_vf_ports_active(hca):
    pf_states = {p.rdma_device: p.state.name if p.state else None for p in hca.ports()}
    pf_state = next(iter(pf_states.values()), None)
    problems = [f"{port.rdma_device}/{port.number} of {vf} {problem}"
                for vf in hca.vfs() if vf.driver is not None for port in vf.ports
                if (problem := vfs.port_problem(port, pf_state, bool(vfs.zero_guids(vf))))]
    if not problems:
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if vfs.sm_without_virtualization(problems):
        hint = ("the subnet manager does not bring up virtual ports — enable virtualization in it "
                "(OpenSM: virt_enabled 2; UFM: its virtualization setting) and restart it")
    elif all("GUID is zero" in p for p in problems):
        hint = "give the VF a GUID (vf_guids_set); the subnet manager then activates its port"
    else:
        hint = "fix the PF's port first (ports link), then check the subnet manager"
    raise AssertionError(f"VF port {problems[0]}{more}: {hint}")


def test_rdma_netns_mode(node):
    expected, source = node.expected_netns_mode()
    if expected is None:
        return
    seen = node.rdma_netns_mode()
    assert seen == expected, (
        f"RDMA netns mode on {node.node.name} expected {expected} ({source}) vs {seen}: run `rdma system set netns "
        f"{expected}` and put ib_core.netns_mode={0 if expected == 'exclusive' else 1} on the kernel command line "
        "(the operator does both, with a reboot, for a SriovNetworkPoolConfig's rdmaMode: see node_state_idle)")
