"""Clusters that are not the seed's, end to end: the real suite (probes included) against twins of the shapes the
field shows — resources pooling several PFs or splitting one into VF ranges, components in their own namespaces
with nv-ipam installed on its own, CIDRPools, dual-port VPI cards, Nodes named by IP address, kernel lockdown.

Each scenario has healthy nodes that must pass every check (no false failure) and broken ones that must fail
exactly the checks their fault explains, with the cause the evidence shows.
"""

from __future__ import annotations

import json
import re

import pytest

from ibconform.twin import Twin
from tests.e2e.conftest import Run, run_suite

HCAS = ("ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0")
FIRMWARE = ("firmware_vfs_committed", "firmware_vfs_enough", "firmware_sriov_enabled", "firmware_link_type")
POOL_SHARES = r"expected 64 \(ibp24s0 8 \+ ibp64s0 8 \+ ibp79s0 8 \+ ibp94s0 8 \+ ibp154s0 8 \+ ibp192s0 8 \+ " \
              r"ibp206s0 8 \+ ibp220s0 8\)"
LOCKED = r"^mstconfig -d {pci} failed \(exit 3\): Failed to open the device: the kernel is locked down \(integrity, " \
         r"/sys/kernel/security/lockdown\), which keeps mstconfig from the device"
PCIS = dict(zip(HCAS, ("0000:18:00.0", "0000:40:00.0", "0000:4f:00.0", "0000:5e:00.0", "0000:9a:00.0",
                       "0000:c0:00.0", "0000:ce:00.0", "0000:dc:00.0"), strict=True))



def _pending_firmware(node: str) -> dict[str, tuple[str, str]]:
    """The seed's fault on every HCA: firmware change pending, no VFs, nothing advertised, the probe refused."""
    return {
        **{f"test_firmware_vfs_committed[{node}-{h}]": ("failed", r"Current 16 vs Next Boot 8: firmware change pending")
           for h in HCAS},
        **{f"test_sriov_numvfs[{node}-{h}]": ("failed", r"expected 8 vs 0: VFs not created") for h in HCAS},
        **{f"test_resource_allocatable[{node}-res{h}]": (
            "failed", rf"expected 8 vs absent: {h} has 0 of the 8 VFs its VF groups need in the kernel") for h in HCAS},
        f"test_probe_scheduled[{node}]": ("failed", r"FailedScheduling: .*Insufficient nvidia\.com/resibp"),
    }


FIRMWARE_REBOOT = r"firmware change pending on 8/8 HCAs \(ibp24s0 NUM_OF_VFS, ibp64s0 NUM_OF_VFS, ibp79s0 NUM_OF_VFS " \
                  r"and 5 more\): power-cycle the node"
UNMANAGED = r"^dgx072 is not managed by the SR-IOV operator: its labels lack network\.nvidia\.com/operator\.mofed\.wait=" \
            r"false of SriovOperatorConfig default spec\.configDaemonNodeSelector"

# scenario -> node -> {item id: (outcome, regex its message must match)}; a node absent from its scenario's
# table, or with {}, passes every check
EXPECTED: dict[str, dict[str, dict[str, tuple[str, str]]]] = {
    "pooled": {
        "pool001": {}, "pool004": {},                # one policy over 8 PFs; two policies sharing the name
        "pool002": {                                 # ibp64s0 without VFs: the daemon fails, nothing advertised
            "test_resource_allocatable[pool002-ib_pool]": (
                "failed", rf"^allocatable nvidia\.com/ib_pool on pool002 {POOL_SHARES} vs absent: ibp64s0 has 0 of "
                          r"the 8 VFs its VF groups need in the kernel — the VFs are missing \(see sriov_numvfs\)$"),
            "test_sriov_numvfs[pool002-ibp64s0]": ("failed", r"expected 8 vs 0: VFs not created"),
            "test_node_state_synced[pool002]": ("failed", r"vs Failed .*fail to set NumVfs for device 0000:40:00\.0"),
            "test_probe_scheduled[pool002]": ("failed", r"FailedScheduling: .*\b1 Insufficient nvidia\.com/ib_pool\b"),
        },
        "pool003": {                                 # ibp64s0 with 4 of its 8 VFs: the pool counts 60
            "test_resource_allocatable[pool003-ib_pool]": (
                "failed", rf"^allocatable nvidia\.com/ib_pool on pool003 {POOL_SHARES} vs 60: ibp64s0 has 4 of the 8 "
                          r"VFs its VF groups need in the kernel"),
            "test_sriov_numvfs[pool003-ibp64s0]": ("failed", r"expected 8 vs 4: fewer VFs than asked"),
        },
    },
    "partitioned": {
        "part001": {},                               # ibp24s0#0-3 -> ibp24s0_a, #4-7 -> ibp24s0_b
        "part002": {                                 # ibp24s0 has 4 VFs: range a is whole, range b has none
            "test_resource_allocatable[part002-ibp24s0_b]": (
                "failed", r"^allocatable nvidia\.com/ibp24s0_b on part002 expected 4 vs absent: ibp24s0 has 4 of the "
                          r"8 VFs its VF groups need in the kernel"),
            "test_sriov_numvfs[part002-ibp24s0]": ("failed", r"expected 8 vs 4: fewer VFs than asked"),
            "test_probe_scheduled[part002]": ("failed", r"\b1 Insufficient nvidia\.com/ibp24s0_b\b"),
        },
    },
    "split-namespaces": {"dgx050": {}, "dgx051": {}},
    "cidrpool": {
        **{f"dgx{i:03d}": {} for i in range(61, 65)},
        "dgx065": {"test_ipam_pool_allocation[dgx065]": (
            "failed", r"^CIDRPool ib-cidr \(used by SriovIBNetwork ibnet-ibp154s0, ibnet-ibp192s0 and 6 more\) "
                      r"allocation for dgx065 expected vs none: .*its size vs perNodeNetworkPrefix\)$"),
                   # ... so nv-ipam fails the probe's CNI ADD and the pod never starts
                   "test_attach_sandbox_created[dgx065]": (
            "failed", r'CNI ADD failed: network "default/ibnet-ibp154s0": grpc request failed: .*configuration for '
                      r'pool "ib-cidr", poolType "cidrpool" not found'),
                   "test_attach_networks_attached[dgx065]": ("failed", r"expected Running vs timeout")},
        "dgx066": {"test_ipam_pool_allocation[dgx066]": (
            "failed", r"^CIDRPool ib-cidr \(.*\) nodeSelector expected to select dgx066 vs not"),
                   "test_attach_sandbox_created[dgx066]": ("failed", r'poolType "cidrpool" not found'),
                   "test_attach_networks_attached[dgx066]": ("failed", r"expected Running vs timeout")},
    },
    "vpi": {
        "vpi01": {}, "vpi02": {},                    # port 1 Ethernet (excluded), port 2 InfiniBand on each card
        "vpi03": {                                   # port 2 of one card set to Ethernet
            "test_firmware_link_type[vpi03-ibp65s0f1]": (
                "failed", r"^LINK_TYPE_P2 on ibp65s0f1 \(0000:41:00\.1\) expected IB\(1\) vs ETH\(2\): set "
                          r"LINK_TYPE_P2=1 in firmware"),
            "test_ib_port_active[vpi03-ibp65s0f1]": (
                "failed", r"link layer expected InfiniBand vs Ethernet: .*set the firmware's LINK_TYPE_P2"),
        },
    },
    "kernel": {
        "krn001": {}, "krn002": {}, "krn003": {},    # defaults; exclusive RDMA netns mode at boot and at run time
        "krn004": {                                  # kernel lockdown integrity: mstconfig cannot open any device
            **{f"test_{check}[krn004-{h}]": ("failed", LOCKED.format(pci=re.escape(PCIS[h])))
               for check in FIRMWARE for h in HCAS},
            **{f"test_resource_allocatable[krn004-res{h}]": ("failed", r"expected 8 vs absent") for h in HCAS},
            "test_node_state_synced[krn004]": ("failed", r"Failed to open the device"),
            "test_probe_scheduled[krn004]": ("failed", r"FailedScheduling"),
        },
    },
    "ip-named": {},                                  # every Node named by its address: nodes checked below
    "operator-legacy": {                             # Network Operator 24.1: the daemon drains and reboots itself
        "dgx050": {},
        "dgx051": {
            **_pending_firmware("dgx051"),
            "test_node_state_synced[dgx051]": (
                "failed", rf"vs InProgress \(Draining\): the config daemon drains the node to reboot it: {FIRMWARE_REBOOT}"),
            "test_node_state_idle[dgx051]": (
                "failed", rf"^SR-IOV state of dgx051 expected Idle vs Node state Draining \(legacy operator\): the "
                          rf"config daemon drains the node to reboot it: {FIRMWARE_REBOOT}"),
        },
    },
    "operator-external-drainer": {                   # Network Operator 26.1 draining through NodeMaintenances
        "dgx060": {},
        "dgx061": {
            **_pending_firmware("dgx061"),
            "test_node_state_synced[dgx061]": (
                "failed", rf"vs InProgress \(Reboot_Required\): the config daemon waits for a reboot: {FIRMWARE_REBOOT}"),
            "test_node_state_idle[dgx061]": (
                "failed", r"^SR-IOV state of dgx061 expected Idle vs Node state Reboot_Required, desired-state "
                          r"Reboot_Required, current-state DrainComplete, held by NodeMaintenance nvidia-operator-dgx061 "
                          rf"\(Ready\) \(external-drainer operator\): the config daemon waits for a reboot: {FIRMWARE_REBOOT}"),
        },
    },
    "mellanox-disabled": {                           # SriovOperatorConfig: disablePlugins [mellanox], a node outside
        "dgx070": {},
        "dgx071": {                                  # firmware NUM_OF_VFS 4, the admin's job now
            **{f"test_firmware_vfs_enough[dgx071-{h}]": (
                "failed", r"expected >= 8 vs 4: set NUM_OF_VFS=8 \(yourself, with mstconfig: the operator's mellanox "
                          r"plugin is disabled") for h in HCAS},
            **{f"test_sriov_totalvfs_allows_expected[dgx071-{h}]": ("failed", r"expected >= 8 vs 4") for h in HCAS},
            **{f"test_sriov_numvfs[dgx071-{h}]": ("failed", r"expected 8 vs 0: VFs not created") for h in HCAS},
            **{f"test_resource_allocatable[dgx071-res{h}]": ("failed", rf"{h} has 0 of the 8 VFs") for h in HCAS},
            "test_node_state_synced[dgx071]": (
                "failed", r"vs InProgress: the config daemon cannot create 8 VFs on ibp24s0: its sriov_totalvfs is 4 "
                          r"\(the firmware's NUM_OF_VFS\) — raise NUM_OF_VFS \(set it yourself: the operator's mellanox "
                          r"plugin is disabled\)"),
            "test_probe_scheduled[dgx071]": ("failed", r"FailedScheduling"),
        },
        "dgx072": {                                  # outside configDaemonNodeSelector: not managed
            "test_node_state_synced[dgx072]": ("failed", UNMANAGED),
            "test_node_state_idle[dgx072]": ("failed", UNMANAGED),
            **{f"test_resource_allocatable[dgx072-res{h}]": ("failed", r"vs absent: dgx072 is not managed by the "
                                                                       r"SR-IOV operator") for h in HCAS},
            "test_probe_scheduled[dgx072]": ("failed", r"FailedScheduling"),
        },
    },
    "kernel-args": {                                 # SriovNetworkPoolConfig rdmaMode exclusive for the GPU nodes
        "dgx080": {},
        "dgx081": {                                  # its command line lacks ib_core.netns_mode=0: firmware is fine
            **{f"test_resource_allocatable[dgx081-res{h}]": ("failed", r"expected 8 vs absent") for h in HCAS},
            **{f"test_node_state_{c}[dgx081]": (
                "failed", r"the config daemon waits for a reboot: reboot the node to apply kernel arguments \(add "
                          r"ib_core\.netns_mode=0: the operator asks RDMA netns mode exclusive, /proc/cmdline differs\)")
               for c in ("synced", "idle")},
            "test_probe_scheduled[dgx081]": ("failed", r"FailedScheduling"),
            "test_rdma_netns_mode[dgx081]": (        # until that reboot, ib_core still runs shared
                "failed", r"^RDMA netns mode on dgx081 expected exclusive \(the SriovNetworkPoolConfig rdmaMode "
                          r"selecting the node\) vs shared: .*see node_state_idle\)$"),
        },
    },
}


# Each HCA with fewer VFs than expected (sriov_numvfs) lacks them in the link vfs too (vfs_bound)
for _nodes in EXPECTED.values():
    for _items in _nodes.values():
        for _item, (_, _pattern) in list(_items.items()):
            if _item.startswith("test_sriov_numvfs[") and (_seen := re.search(r"expected (\d+) vs (\d+)", _pattern)):
                _node, _, _hca = _item[len("test_sriov_numvfs["):-1].partition("-")
                _items[f"test_vfs_bound[{_node}-{_hca}]"] = (
                    "failed", rf"^VFs of {_hca} \(.*\) expected {_seen[1]} vs {_seen[2]} \(virtfn{_seen[2]}\b.* missing\): "
                              r"the kernel did not create them")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    done: dict[str, Run] = {}
    for scenario in EXPECTED:
        with Twin(scenario, tmp_path_factory.mktemp(f"twin-{scenario}")) as twin:
            done[scenario] = run_suite(twin.inventory_path, tmp_path_factory.mktemp(scenario) / "out")
    return done


@pytest.mark.parametrize("scenario", EXPECTED)
def test_healthy_nodes_pass_and_broken_ones_fail_exactly_their_checks(runs, scenario):
    run = runs[scenario]
    nodes = {r["node"] for r in run.results.values() if r["node"]}
    assert set(EXPECTED[scenario]) <= nodes
    for node in sorted(nodes):
        expected = EXPECTED[scenario].get(node, {})
        seen = run.not_passed(node)
        assert set(seen) == set(expected), (f"{scenario} {node}: unexpected {sorted(set(seen) - set(expected))}, "
                                            f"missing {sorted(set(expected) - set(seen))}")
        for item, (outcome, pattern) in expected.items():
            assert seen[item]["outcome"] == outcome, f"{item}: {seen[item]}"
            assert re.search(pattern, seen[item]["message"]), f"{item}: {seen[item]['message']!r} !~ {pattern!r}"
    assert run.not_passed(None) == {}
    assert run.code == (1 if any(EXPECTED[scenario].values()) else 0), run.stderr[-2000:]


def test_each_resource_is_judged_with_the_vfs_the_policies_route_to_it(runs):
    pooled, partitioned = runs["pooled"].results, runs["partitioned"].results
    assert [i for i in pooled if i.startswith("test_resource_allocatable[pool001-")] == [
        "test_resource_allocatable[pool001-ib_pool]"]
    assert {i for i in partitioned if i.startswith("test_resource_allocatable[part001-ibp24s0")} == {
        "test_resource_allocatable[part001-ibp24s0_a]", "test_resource_allocatable[part001-ibp24s0_b]"}
    evidence = " ".join(partitioned["test_policy_matches_inventory[part001-ibp24s0]"]["evidence"])
    assert "ibp24s0_a VFs 0-3" in evidence and "ibp24s0_b VFs 4-7" in evidence


def test_components_are_found_in_their_own_namespaces(runs):
    run = runs["split-namespaces"]
    evidence = " ".join(run.results["test_ipam_node_pod[dgx050]"]["evidence"])
    assert "ghcr.io/mellanox/nvidia-k8s-ipam" in evidence      # nv-ipam installed on its own, in kube-system
    operators = json.loads((run.out / "results.json").read_text())["run"]["operators"]
    assert {"sriov-network-config-daemon", "sriov-device-plugin", "nv-ipam-node", "nv-ipam-controller",
            "network-operator"} <= set(operators)


def test_nodes_named_by_address_are_proven_by_their_machine_id(runs):
    identity = {r["node"]: r for r in runs["ip-named"].results.values() if r["check"] == "node_identity"}
    assert len(identity) == 2 and all(re.fullmatch(r"127\.\d+\.\d+\.\d+", node) for node in identity)
    for node, result in identity.items():
        assert result["outcome"] == "passed"
        assert any(e.startswith("identity: /etc/machine-id ") and e.endswith(
            f"= Node {node} status.nodeInfo.machineID") for e in result["evidence"]), result["evidence"]


@pytest.mark.parametrize(("scenario", "generation", "release"), [
    ("operator-legacy", "legacy", "24.1.0"),
    ("pooled", "drain-controller", "25.10.0"),
    ("operator-external-drainer", "external-drainer", "26.1.0"),
])
def test_the_run_records_the_operator_versions_and_how_they_report(runs, scenario, generation, release):
    run = json.loads((runs[scenario].out / "results.json").read_text())["run"]
    assert run["operator_state_reporting"] == generation
    (daemon,) = run["operators"]["sriov-network-config-daemon"]
    assert daemon.endswith(f"network-operator-{release}") or daemon.endswith(f"network-operator-v{release}"), daemon
