"""Clusters that are not the seed's: policy shapes (a resource pooling PFs, a PF split into VF ranges), components in
their own namespaces, nv-ipam installed on its own, a CIDRPool.

First the operator's rendering as pure functions (table-driven, the operator's own ``Apply`` cases among them), then
each new built-in scenario served by the twin's API and read through the official client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ibconform.inventory import load as load_inventory
from ibconform.twin import ScenarioError, Twin
from ibconform.twin.controllers import operator as op
from ibconform.twin.scenario import parse as parse_scenario
from tests.unit.test_twin_cluster import Cluster, needs_root, start

HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
SRIOV = ("sriovnetwork.openshift.io", "v1")
IPAM = ("nv-ipam.nvidia.com", "v1alpha1")
LABEL = "feature.node.kubernetes.io/network-sriov.capable"

# ------------------------------------------------------------------------------ rendering (pure)

#: The PFs of sriov-network-operator's api/v1/helper_test.go newNodeState().
INTEL = [{"name": f"ens803f{i}", "pciAddress": f"0000:86:00.{i}", "vendor": "8086",
          "deviceID": "1015" if i == 2 else "158b"} for i in range(3)]


def pol(name: str, resource: str, num_vfs: int, priority: int = 99, **nic: object) -> dict:
    """A policy on nodes labelled LABEL; ``nic`` is its nicSelector, ``mtu``/``deviceType`` go to its spec."""
    spec = {"resourceName": resource, "numVfs": num_vfs, "priority": priority, "nodeSelector": {LABEL: "true"},
            "deviceType": nic.pop("deviceType", "netdevice")}
    if "mtu" in nic:
        spec["mtu"] = nic.pop("mtu")
    return {"metadata": {"name": name}, "spec": spec | {"nicSelector": nic}}


def p1(priority: int = 99) -> dict:
    """helper_test.go newNodePolicy(): p1res, 2 VFs of ens803f1 by name, root device and vendor."""
    return pol("p1", "p1res", 2, priority, pfNames=["ens803f1"], rootDevices=["0000:86:00.1"], vendor="8086")


def group(resource: str, span: str, policy: str, device_type: str = "netdevice") -> dict:
    return {"resourceName": resource, "deviceType": device_type, "vfRange": span, "policyName": policy}


def iface(index: int, num_vfs: int, *groups: dict, mtu: int | None = None) -> dict:
    out = {"pciAddress": f"0000:86:00.{index}", "numVfs": num_vfs, "name": f"ens803f{index}", "vfGroups": list(groups)}
    return out | ({"mtu": mtu} if mtu else {})


# (case, policies, expected spec.interfaces). The cases named like helper_test.go's TestSriovNetworkNodePolicyApply
# render that test's state as a policy p0 applied before p1 (same priority: p0 sorts first by name; different: p1 10).
APPLY_CASES = [
    ("starting config", [p1()], [iface(1, 2, group("p1res", "0-1", "p1"))]),
    ("one policy present different pf", [pol("p0", "prevres", 2, pfNames=["ens803f0"]), p1()],
     [iface(0, 2, group("prevres", "0-1", "p0")), iface(1, 2, group("p1res", "0-1", "p1"))]),
    ("one policy present same pf different priority",
     [pol("p0", "vfiores", 3, pfNames=["ens803f1#0-1"], deviceType="vfio-pci"), p1(priority=10)],
     [iface(1, 2, group("p1res", "0-1", "p1"))]),
    ("one policy present same pf same priority",
     [pol("p0", "vfiores", 3, pfNames=["ens803f1#0-1"], deviceType="vfio-pci", mtu=2000), p1()],
     [iface(1, 3, group("p1res", "0-1", "p1"), mtu=2000)]),
    ("one policy present same pf same priority partitioning",
     [pol("p0", "vfiores", 5, pfNames=["ens803f1#2-4"], deviceType="vfio-pci"), p1()],
     [iface(1, 5, group("p1res", "0-1", "p1"), group("vfiores", "2-4", "p0", "vfio-pci"))]),
    ("two policy present same pf same priority overlap",
     [pol("p0a", "vfiores1", 2, pfNames=["ens803f1#0-0"], deviceType="vfio-pci"),
      pol("p0b", "vfiores2", 2, pfNames=["ens803f1#1-1"], deviceType="vfio-pci"), p1()],
     [iface(1, 2, group("p1res", "0-1", "p1"))]),
    ("one policy present same pf same priority same ResourceName",
     [pol("p0", "p1res", 4, pfNames=["ens803f1#2-3"], deviceType="vfio-pci"), p1()],
     [iface(1, 4, group("p1res", "0-1", "p1"))]),
    ("one policy present same pf diff priority no overlap VFs",
     [pol("p0", "p2res", 4, pfNames=["ens803f1#2-3"], deviceType="vfio-pci"), p1(priority=10)],
     [iface(1, 4, group("p1res", "0-1", "p1"), group("p2res", "2-3", "p0", "vfio-pci"))]),
    ("no selectors", [pol("p1", "p1res", 2, pfNames=[], rootDevices=[])], []),
    ("bad pf partition", [pol("p1", "p1res", 2, pfNames=["ens803f0#a-c"])], []),
    # selection: every criterion set must hold
    ("vendor and device id", [pol("p", "r", 2, vendor="8086", deviceID="1015")], [iface(2, 2, group("r", "0-1", "p"))]),
    ("device id of no PF", [pol("p", "r", 2, vendor="8086", deviceID="1021")], []),
    ("root devices and name disagree", [pol("p", "r", 2, pfNames=["ens803f0"], rootDevices=["0000:86:00.1"])], []),
    ("a pool by root devices", [pol("p", "pool", 2, rootDevices=["0000:86:00.0", "0000:86:00.2"])],
     [iface(0, 2, group("pool", "0-1", "p")), iface(2, 2, group("pool", "0-1", "p"))]),
    ("no VFs asked", [pol("p", "r", 0, pfNames=["ens803f0"])], []),
    ("the default policy is ignored", [pol("default", "r", 2, pfNames=["ens803f0"])], []),
    ("by priority, not by list order", [pol("b", "r", 2, 10, pfNames=["ens803f0"]),
                                        pol("a", "r", 4, 20, pfNames=["ens803f0"])],
     [iface(0, 2, group("r", "0-1", "b"))]),
    ("a partition over two priorities", [pol("a", "ra", 8, 20, pfNames=["ens803f0#0-3"]),
                                         pol("b", "rb", 8, 10, pfNames=["ens803f0#4-7"])],
     [iface(0, 8, group("rb", "4-7", "b"), group("ra", "0-3", "a"))]),
]


@pytest.mark.parametrize(("policies", "expected"), [c[1:] for c in APPLY_CASES], ids=[c[0] for c in APPLY_CASES])
def test_spec_interfaces_render_as_the_policy_controller_does(policies, expected):
    assert op.spec_interfaces(policies, {LABEL: "true"}, INTEL) == expected


def test_a_policy_whose_node_selector_does_not_hold_renders_nothing():
    assert op.spec_interfaces([p1()], {LABEL: "false"}, INTEL) == []


def test_pf_names_match_alternative_names():
    interfaces = [dict(INTEL[0], altNames=["enp134s0f0"])]
    assert op.spec_interfaces([pol("p", "r", 2, pfNames=["enp134s0f0"])], {LABEL: "true"}, interfaces) == [
        iface(0, 2, group("r", "0-1", "p"))]


DUAL = """
format: ibconform-twin/v1
cluster: t
profiles:
  dual:
    devices:
      - {iface: ibp24s0f0, pci: "0000:18:00.0", rdma: mlx5_0}
      - {iface: ibp24s0f1, pci: "0000:18:00.1", rdma: mlx5_1}
defaults: {numOfVfs: 16}
kubernetes:
  policies:
    - {name: port0, resourceName: a, numVfs: PORT0, nicSelector: {pfNames: [ibp24s0f0]}}
    - {name: port1, resourceName: b, numVfs: PORT1, nicSelector: {pfNames: [ibp24s0f1]}}
nodes: [{names: n1, profile: dual}]
"""


@pytest.mark.parametrize(("port0", "port1", "sync"), [
    (16, 8, "Succeeded"), (8, 16, "Succeeded"),      # NUM_OF_VFS 16: the larger port's numVfs
    (4, 8, "InProgress"),                            # the card must shrink to 8: a reboot
])
def test_the_daemon_sizes_a_card_to_the_largest_numvfs_of_its_ports(port0, port1, sync):
    scenario = parse_scenario(DUAL.replace("PORT0", str(port0)).replace("PORT1", str(port1)), "dual.yaml")
    node, labels = scenario.nodes["n1"], {op.GPU_LABEL: "true"}
    policies = op.policies({"n1": node}, scenario.kubernetes, {"n1": labels})
    assert op.node_sync(node, policies, labels).sync_status == sync


ONE_PF = """
format: ibconform-twin/v1
cluster: t
profiles:
  one: {devices: [{iface: ibp24s0, pci: "0000:18:00.0", rdma: mlx5_0}]}
nodes: [{names: n1, profile: one}]
"""
SPLIT = {"pciAddress": "0000:18:00.0", "numVfs": 8, "name": "ibp24s0",
         "vfGroups": [{"resourceName": "a", "vfRange": "0-3"}, {"resourceName": "b", "vfRange": "4-7"}]}


@pytest.mark.parametrize(("numvfs", "sync", "expected"), [
    (8, "Succeeded", {"nvidia.com/a": 4, "nvidia.com/b": 4}),
    (6, "Succeeded", {"nvidia.com/a": 4, "nvidia.com/b": 2}),
    (4, "Succeeded", {"nvidia.com/a": 4}),             # a resource without a VF is not registered
    (0, "Succeeded", {}),
    (8, "Failed", {}),                                 # the plugin waits for the daemon's config
])
def test_the_device_plugin_advertises_the_existing_vfs_each_group_covers(numvfs, sync, expected):
    node = parse_scenario(ONE_PF, "one.yaml").nodes["n1"]
    node.hcas["ibp24s0"].sriov_numvfs = numvfs
    labels = {op.DEVICE_PLUGIN_LABEL: "Enabled"}
    assert op.advertised(node, [SPLIT], labels, op.Sync(sync)) == expected


# ------------------------------------------------------------------------------ the new scenarios, served

@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("pooled", tmp_path_factory.mktemp("pooled"))


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("partitioned", tmp_path_factory.mktemp("partitioned"))


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("split-namespaces", tmp_path_factory.mktemp("split"))


@pytest.fixture(scope="module")
def cidr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("cidrpool", tmp_path_factory.mktemp("cidrpool"))


def spec_of(cluster: Cluster, node: str, namespace: str = "network-operator") -> dict[str, dict]:
    state = cluster.custom.get_namespaced_custom_object(*SRIOV, namespace, "sriovnetworknodestates", node)
    return {i["name"]: i for i in state["spec"].get("interfaces", [])}


def listed(cluster: Cluster, plural: str, namespace: str = "network-operator", api: tuple = SRIOV) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in cluster.custom.list_namespaced_custom_object(
        *api, namespace, plural)["items"]}


def test_pooled_nodes_advertise_one_resource_summed_over_their_pfs(pooled):
    allocatable = {n: pooled.node(n).status.allocatable.get("nvidia.com/ib_pool")
                   for n in ("pool001", "pool002", "pool003", "pool004")}
    assert allocatable == {"pool001": "64", "pool002": None, "pool003": "60", "pool004": "64"}
    assert not any(k.startswith("nvidia.com/res") for k in pooled.node("pool001").status.allocatable)
    by_names, by_roots = spec_of(pooled, "pool001"), spec_of(pooled, "pool004")
    assert set(by_names) == set(by_roots) == set(HCAS)          # the BlueField-3 in ib-pool-high: deviceID 1021 only
    assert by_names["ibp24s0"]["vfGroups"] == [{"resourceName": "ib_pool", "deviceType": "netdevice",
                                                "vfRange": "0-7", "policyName": "ib-pool", "isRdma": True}]
    assert {i: s["vfGroups"][0]["policyName"] for i, s in by_roots.items()} == {
        **dict.fromkeys(HCAS[:4], "ib-pool-low"), **dict.fromkeys(HCAS[4:], "ib-pool-high")}
    state = pooled.state("pool002")["status"]
    assert state["syncStatus"] == "Failed" and "0000:40:00.0" in state["lastSyncError"]
    assert pooled.state("pool003")["status"]["syncStatus"] == "Succeeded"
    networks = listed(pooled, "sriovibnetworks")
    assert {n: o["spec"]["resourceName"] for n, o in networks.items()} == {"ibnet-ib-pool": "ib_pool"}
    pod = pooled.create("pooled-probe", "pool003", {"nvidia.com/ib_pool": "1", "nvidia.com/gpu": "8"})
    assert (pod.spec.node_name, pod.status.phase) == ("pool003", "Running")
    pooled.core.delete_namespaced_pod("pooled-probe", "default")


def test_a_partitioned_pf_feeds_each_range_its_resource(partitioned):
    spec = spec_of(partitioned, "part001")["ibp24s0"]
    assert spec["numVfs"] == 8 and [(g["resourceName"], g["vfRange"], g["policyName"]) for g in spec["vfGroups"]] == [
        ("ibp24s0_b", "4-7", "ibp24s0-b"), ("ibp24s0_a", "0-3", "ibp24s0-a")]
    healthy, short = partitioned.node("part001").status.allocatable, partitioned.node("part002").status.allocatable
    assert (healthy["nvidia.com/ibp24s0_a"], healthy["nvidia.com/ibp24s0_b"], healthy["nvidia.com/resibp64s0"]) == (
        "4", "4", "8")
    assert short["nvidia.com/ibp24s0_a"] == "4" and "nvidia.com/ibp24s0_b" not in short
    assert partitioned.state("part002")["status"]["syncStatus"] == "Succeeded"
    networks = listed(partitioned, "sriovibnetworks")
    assert (networks["ibnet-ibp24s0-b"]["spec"]["resourceName"], networks["ibnet-ibp64s0"]["spec"]["resourceName"],
            len(networks)) == ("ibp24s0_b", "resibp64s0", 9)


def test_split_namespaces_put_each_component_in_its_own(split):
    sriov, network_operator = "openshift-sriov-network-operator", "nvidia-network-operator"
    assert set(listed(split, "sriovnetworknodepolicies", sriov)) == {f"policy-{h}" for h in HCAS}
    assert set(listed(split, "sriovnetworknodestates", sriov)) == {"dgx050", "dgx051"}
    assert len(listed(split, "sriovibnetworks", sriov)) == 8
    assert listed(split, "sriovnetworknodepolicies") == {}          # nothing left in network-operator
    assert split.node("dgx050").status.allocatable["nvidia.com/resibp24s0"] == "8"
    apps = {ns: sorted({next(labels[k] for k in ("app", "name", "app.kubernetes.io/name") if k in labels)
                        for labels in (p.metadata.labels for p in split.pods(ns))})
            for ns in (sriov, network_operator, "kube-system")}
    assert apps == {sriov: ["sriov-device-plugin", "sriov-network-config-daemon", "sriov-network-operator"],
                    network_operator: ["cni-plugins", "multus", "network-operator"],
                    "kube-system": ["nvidia-k8s-ipam"]}
    node_pods = split.pods("kube-system", "app=nvidia-k8s-ipam,name=nv-ipam-node,tier=node")
    controller = split.pods("kube-system", "app=nvidia-k8s-ipam,name=controller")
    assert sorted(p.spec.node_name for p in node_pods) == ["dgx050", "dgx051"] and len(controller) == 1
    for pod in [*node_pods, *controller]:
        assert (pod.status.phase, pod.spec.containers[0].image) == ("Running", "ghcr.io/mellanox/nvidia-k8s-ipam:v0.3.7")
    assert {p.metadata.name.rsplit("-", 1)[0] for p in node_pods} == {"nv-ipam-node-ds"}
    ncp = split.custom.get_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies", "nic-cluster-policy")
    assert "nvIpam" not in ncp["spec"] and ncp["status"]["state"] == "ready"
    assert {"name": "state-nv-ipam-cni", "state": "ignore"} in ncp["status"]["appliedStates"]
    assert set(listed(split, "ippools", "kube-system", IPAM)) == {"ib-pool"}
    pod = split.create("split-net", "dgx051", {"nvidia.com/resibp24s0": "1"},
                       annotations={"k8s.v1.cni.cncf.io/networks": "default/ibnet-ibp24s0"})
    assert pod.status.phase == "Running"                            # nv-ipam's node daemon found in kube-system
    split.core.delete_namespaced_pod("split-net", "default")


def test_the_cidrpool_gives_a_prefix_per_selected_node_while_the_cidr_lasts(cidr):
    pool = cidr.custom.get_namespaced_custom_object(*IPAM, "network-operator", "cidrpools", "ib-cidr")
    assert pool["spec"] == {"cidr": "10.10.0.0/22", "perNodeNetworkPrefix": 24, "gatewayIndex": 1, "nodeSelector": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "ib-fabric", "operator": "In", "values": ["a"]}]}]}}
    assert pool["status"]["allocations"] == [
        {"nodeName": f"dgx06{i + 1}", "prefix": f"10.10.{i}.0/24", "gateway": f"10.10.{i}.1"} for i in range(4)]
    assert listed(cidr, "ippools", api=IPAM) == {}
    [event] = [e for e in cidr.core.list_namespaced_event("network-operator").items if e.reason == "NoFreePrefixes"]
    assert (event.type, event.involved_object.kind, event.message) == (
        "Warning", "CIDRPool", "failed to allocated prefix for Node: dgx065, no free prefixes")
    ipam = {n["spec"]["ipam"] for n in listed(cidr, "sriovibnetworks").values()}
    assert ipam == {'{"type":"nv-ipam","poolName":"ib-cidr","poolType":"cidrpool"}'}


@needs_root
def test_the_inventory_says_where_each_component_runs(tmp_path):
    with Twin("split-namespaces", tmp_path / "twin") as twin:
        k8s = load_inventory(twin.inventory_path).model.kubernetes
    assert (k8s.namespace_of("sriov"), k8s.namespace_of("network-operator"), k8s.namespace_of("ipam")) == (
        "openshift-sriov-network-operator", "nvidia-network-operator", "kube-system")


# ------------------------------------------------------------------------------ scenario mistakes

GOOD = "format: ibconform-twin/v1\ncluster: t\nnodes: [{names: dgx001}]\n"
POLICY = "{name: p, resourceName: r, nicSelector: {pfNames: [ibp24s0]}}"
BAD = [
    (f"kubernetes: {{policies: [{POLICY}, {POLICY}]}}", r"kubernetes\.policies\[1\]\.name: policy p is listed twice"),
    ("kubernetes: {policies: [{name: p, resourceName: r, nicSelector: {pfNames: ['ibp24s0#3-1']}}]}",
     r"kubernetes\.policies\[0\]\.nicSelector\.pfNames\[0\]: expected an interface name with an optional VF range"),
    ("kubernetes: {policies: [{name: p, resourceName: ib-pool, nicSelector: {}}]}",
     r"kubernetes\.policies\[0\]\.resourceName"),
    ("kubernetes: {namespaces: {nvIpam: kube-system}}",
     r"kubernetes\.namespaces\.nvIpam: nv-ipam deployed by the Network Operator runs in its namespace network-operator"),
    ("kubernetes: {namespaces: {sriovOperator: Bad_NS}}", r"kubernetes\.namespaces\.sriovOperator"),
    ("kubernetes: {ipam: {gatewayIndex: 1}}", r"kubernetes\.ipam\.gatewayIndex: a CIDRPool field"),
    ("kubernetes: {ipam: {poolType: cidrpool, cidr: 10.0.0.0/24, perNodeNetworkPrefix: 16}}",
     r"kubernetes\.ipam\.perNodeNetworkPrefix: expected 24 to 32"),
    ("kubernetes: {ipam: {poolType: cidrpool, cidr: 10.0.0.1/24}}", r"kubernetes\.ipam\.cidr: expected a network"),
    ("kubernetes: {nvIpam: standalone, faults: [{kind: ipam-image}]}",
     r"kubernetes\.faults\[0\]\.kind: fault ipam-image changes NicClusterPolicy spec\.nvIpam"),
    ("nodes: [{names: dgx001, faults: [{kind: few-vfs, vfs: 9}]}]", r"nodes\[0\]\.faults\[0\]\.vfs: expected 1 to 8"),
    ("nodes: [{names: dgx001, labels: {'a b': c}}]", r"nodes\[0\]\.labels: .*expected label keys"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m.split(":")[0].replace("\\", "") for _, m in BAD])
def test_scenario_mistakes_in_the_new_keys_are_one_line_naming_the_field(extra, message):
    text = GOOD.replace("nodes: [{names: dgx001}]\n", "") + extra + "\n" if extra.startswith("nodes:") else GOOD + extra
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "bad.yaml")
    assert "\n" not in str(exc.value)
    assert re.match(r"bad\.yaml: " + message, str(exc.value)), str(exc.value)


def test_inventory_of_a_scenario_keeps_its_own_keys_over_the_derived_namespaces():
    scenario = parse_scenario(GOOD + "kubernetes: {namespaces: {sriovOperator: sriov}}\n"
                              "inventory: {kubernetes: {namespaces: {nvIpam: elsewhere}, timeout: 5}}\n", "s.yaml")
    assert scenario.inventory == {"kubernetes": {"namespace": "network-operator", "timeout": 5, "namespaces": {
        "sriovOperator": "sriov", "networkOperator": "network-operator", "nvIpam": "elsewhere"}}}
    assert parse_scenario(GOOD, "s.yaml").inventory == {}


def test_a_compact_policy_gets_the_defaults_of_the_no_example():
    scenario = parse_scenario(GOOD + f"kubernetes: {{policies: [{POLICY}]}}\n", "s.yaml")
    [policy] = scenario.kubernetes.policies or ()
    assert (policy.num_vfs, policy.node_selector, policy.priority, policy.nic_selector, policy.link_type) == (
        8, {op.GPU_LABEL: "true"}, None, {"pfNames": ["ibp24s0"]}, "ib")
    served = op.policy_object(policy, "ns")
    assert "priority" not in served["spec"] and served["metadata"] == {"name": "p", "namespace": "ns"}
