"""The twin's cluster emulation, seen only through the official client: what it derives from each
scenario's hardware and faults, and how its scheduler and kubelets treat the pods clients create.

Most tests run an ApiTwin with the emulation installed (no root needed); the last ones start a whole
Twin to check the wiring: API on the service address, kubeconfig, inventory.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
import yaml
from kubernetes import client, config

from ibconform.inventory import load as load_inventory
from ibconform.twin import ScenarioError, Twin
from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.controllers.cluster import ClusterEmulation
from ibconform.twin.controllers.scheduler import quantity, tolerates
from ibconform.twin.machines import nodes as node_procs
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.scenario import parse as parse_scenario

NS = "network-operator"
HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
RESOURCES = [f"nvidia.com/res{h}" for h in HCAS]
#: The faults scenario's nodes: one per node fault (dgx001-dgx020), then one per in-pod fault (dgx027 on).
FAULT_NODES = [f"dgx{i:03d}" for i in (*range(1, 21), *range(27, 34))]
INSUFFICIENT = re.compile(r"0/\d+ nodes are available:.*\b\d+ Insufficient nvidia\.com/resibp24s0\b")
CORDON = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
MAINTENANCE = {"key": "maintenance.nvidia.com/in-progress", "operator": "Exists", "effect": "NoSchedule"}
FAULT_NODES = sorted(load_scenario("faults").nodes)     # dgx001..: one node per fault kind
SCENARIO = """
format: ibconform-twin/v1
cluster: t
nodes: [{names: dgx001}]
"""


class Cluster:
    """A twin API with the emulation, and official clients on its kubeconfig."""

    def __init__(self, api: ApiTwin, api_client: client.ApiClient) -> None:
        self.api, self.api_client = api, api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def node(self, name: str) -> client.V1Node:
        return self.core.read_node(name)

    def state(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS,
                                                         "sriovnetworknodestates", name)

    def pods(self, namespace: str = NS, selector: str = "") -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(namespace, label_selector=selector).items

    def events(self, pod: str, namespace: str = "default") -> list[client.CoreV1Event]:
        return [e for e in self.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=Pod").items
                if e.involved_object.name == pod]

    def create(self, name: str, node: str | None = None, requests: dict[str, str] | None = None,
               tolerations: list[dict] | None = None, annotations: dict[str, str] | None = None) -> client.V1Pod:
        """A probe-like pod in ``default`` pinned to ``node`` by nodeSelector; returns it once decided."""
        spec: dict = {"containers": [{"name": "c", "image": "ghcr.io/coreweave/nccl-tests:latest",
                                      "resources": {"requests": requests or {}, "limits": requests or {}}}],
                      "tolerations": tolerations or [], "restartPolicy": "Never"}
        if node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
        metadata = {"name": name, "labels": {"app": "test"}, "annotations": annotations or {}}
        self.core.create_namespaced_pod("default", {"metadata": metadata, "spec": spec})
        return wait_for(lambda: decided(self.core.read_namespaced_pod(name, "default")))


def decided(pod: client.V1Pod) -> client.V1Pod | None:
    conditions = {c.type: c for c in pod.status.conditions or []}
    scheduled = conditions.get("PodScheduled")
    if pod.status.phase in ("Running", "Failed") or (scheduled and scheduled.reason == "Unschedulable"):
        return pod
    if pod.status.container_statuses and pod.status.container_statuses[0].state.waiting:
        return pod
    return None


def wait_for(probe: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            assert found, "no decision in time"
            return found
        time.sleep(0.02)


def start(scenario, tmp_path: Path) -> Iterator[Cluster]:
    api = ApiTwin(token="cluster-test-token")
    ClusterEmulation(api, load_scenario(scenario) if isinstance(scenario, str) else scenario).install()
    with api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            yield Cluster(api, api_client)
        assert api.internal_errors == []
        assert api.emulator.listener_errors == []


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("faults", tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("demo", tmp_path_factory.mktemp("demo"))


@pytest.fixture
def ipam_image(tmp_path: Path) -> Iterator[Cluster]:
    yield from start("ipam-image", tmp_path)


@pytest.fixture
def taken(tmp_path: Path) -> Iterator[Cluster]:
    """One node whose VFs a training pod holds."""
    yield from start(parse_scenario(SCENARIO.replace(
        "nodes: [{names: dgx001}]", "nodes: [{names: dgx001, faults: [{kind: vfs-taken}]}]"), "taken"), tmp_path)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh two-node healthy cluster a test may change."""
    yield from start(parse_scenario(SCENARIO.replace("dgx001", '"dgx[001-002]"'), "small"), tmp_path)


# ------------------------------------------------------------------------------ derived objects

def test_demo_pending_firmware_shows_as_reboot_required_without_resources(demo):
    healthy, pending = demo.node("dgx030"), demo.node("dgx031")
    assert {r: healthy.status.allocatable[r] for r in RESOURCES} == dict.fromkeys(RESOURCES, "8")
    assert {r: healthy.status.capacity[r] for r in RESOURCES} == dict.fromkeys(RESOURCES, "8")
    assert healthy.metadata.annotations["sriovnetwork.openshift.io/state"] == "Idle"
    assert not healthy.spec.unschedulable and not healthy.spec.taints
    assert not set(RESOURCES) & set(pending.status.allocatable) and not set(RESOURCES) & set(pending.status.capacity)
    assert pending.status.allocatable["nvidia.com/gpu"] == "8"
    assert pending.metadata.annotations["sriovnetwork.openshift.io/state"] == "Reboot_Required"
    assert pending.spec.unschedulable and [t.key for t in pending.spec.taints] == ["node.kubernetes.io/unschedulable"]
    state = demo.state("dgx031")
    assert state["status"]["syncStatus"] == "InProgress" and "lastSyncError" not in state["status"]
    assert state["metadata"]["annotations"] == {"sriovnetwork.openshift.io/desired-state": "Reboot_Required",
                                                "sriovnetwork.openshift.io/current-state": "DrainComplete"}
    ok = demo.state("dgx030")
    assert ok["status"]["syncStatus"] == "Succeeded" and "lastSyncError" not in ok["status"]
    assert set(ok["metadata"]["annotations"].values()) == {"Idle"}


def test_each_node_has_the_lease_its_kubelet_renews(demo):
    leases = {lease.metadata.name: lease for lease in
              client.CoordinationV1Api(demo.api_client).list_namespaced_lease("kube-node-lease").items}
    assert sorted(leases) == ["dgx030", "dgx031"]
    for name, lease in leases.items():
        assert (lease.spec.holder_identity, lease.spec.lease_duration_seconds) == (name, 40)
        assert lease.spec.renew_time is not None
        assert [(o.kind, o.uid) for o in lease.metadata.owner_references] == [("Node", demo.node(name).metadata.uid)]


def test_demo_probe_on_pending_node_is_unschedulable_with_the_scheduler_words(demo):
    everything = {r: "1" for r in RESOURCES} | {"nvidia.com/gpu": "8"}
    pod = demo.create("probe-dgx031", "dgx031", everything, [CORDON, MAINTENANCE])
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (pod.status.phase, scheduled.status, scheduled.reason) == ("Pending", "False", "Unschedulable")
    insufficient = ", ".join(sorted(f"1 Insufficient {r}" for r in RESOURCES))
    assert scheduled.message == (
        f"0/2 nodes are available: {insufficient}, 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")
    assert INSUFFICIENT.search(scheduled.message)
    [event] = demo.events("probe-dgx031")
    assert (event.type, event.reason, event.message, event.reporting_component) == (
        "Warning", "FailedScheduling", scheduled.message, "default-scheduler")
    assert (event.involved_object.kind, event.involved_object.name, event.involved_object.namespace,
            event.involved_object.uid) == ("Pod", "probe-dgx031", "default", pod.metadata.uid)
    demo.core.delete_namespaced_pod("probe-dgx031", "default")


@pytest.mark.parametrize(("node", "sync", "error"), [
    ("dgx001", "Succeeded", None),
    ("dgx002", "InProgress", None),
    ("dgx003", "Failed", "mellanox plugin: failed to query device 0000:18:00.0: -E- Error when trying to check if NV "
                         "access registers are supported exit status 3"),
    ("dgx004", "Failed", "failed to configure sriov devices: configSriovPFDevice(): fail to set NumVfs for device "
                         "0000:40:00.0: write /sys/bus/pci/devices/0000:40:00.0/sriov_numvfs: cannot allocate memory"),
    ("dgx005", "Succeeded", None), ("dgx006", "Succeeded", None), ("dgx007", "Succeeded", None),
    ("dgx008", "Succeeded", None), ("dgx009", "Succeeded", None),
    ("dgx010", "Failed", "mellanox plugin: failed to query device 0000:18:00.0: signal: killed"),
    ("dgx011", "Failed", "mellanox plugin: failed to query device 0000:5e:00.0: -E- Failed to open the device exit "
                         "status 3"),
    ("dgx012", "Succeeded", None), ("dgx013", "Succeeded", None),
    ("dgx014", "Failed", "failed to configure sriov devices: configSriovPFDevice(): fail to set NumVfs for device "
                         "0000:ce:00.0: write /sys/bus/pci/devices/0000:ce:00.0/sriov_numvfs: numerical result out of "
                         "range"),
    ("dgx015", "Succeeded", None), ("dgx016", "Succeeded", None), ("dgx017", "Succeeded", None),
    ("dgx018", "Succeeded", None),
    ("dgx019", "Failed", "timed out waiting for the condition"),
    ("dgx020", "Succeeded", None),
])
def test_each_fault_derives_its_node_state_and_resources(faults, node, sync, error):
    state, obj = faults.state(node), faults.node(node)
    assert state["status"]["syncStatus"] == sync
    assert state["status"].get("lastSyncError") == error
    desired = "Reboot_Required" if sync == "InProgress" else "Idle"
    assert state["metadata"]["annotations"]["sriovnetwork.openshift.io/desired-state"] == desired
    assert obj.metadata.annotations["sriovnetwork.openshift.io/state"] == desired
    advertised = {r: obj.status.allocatable.get(r) for r in RESOURCES}
    expected = dict.fromkeys(RESOURCES, "8" if sync == "Succeeded" else None)
    if node == "dgx018":            # the drifted policy's VF group covers VFs 0-3 of ibp24s0
        expected["nvidia.com/resibp24s0"] = "4"
    assert advertised == expected
    assert obj.metadata.labels["kubernetes.io/hostname"] == node and obj.status.conditions[-1].type == "Ready"


def test_node_state_shapes_follow_the_operator(faults):
    state = faults.state("dgx005")
    interfaces = {i["name"]: i for i in state["status"]["interfaces"]}
    assert len(interfaces) == 14                     # every Mellanox PF, the excluded ones too
    pf = interfaces["ibp24s0"]
    assert {k: pf[k] for k in ("pciAddress", "vendor", "deviceID", "driver", "linkType", "linkSpeed", "mtu",
                               "numVfs", "totalvfs", "eSwitchMode")} == {
        "pciAddress": "0000:18:00.0", "vendor": "15b3", "deviceID": "1021", "driver": "mlx5_core",
        "linkType": "IB", "linkSpeed": "400000 Mb/s", "mtu": 4092, "numVfs": 8, "totalvfs": 8,
        "eSwitchMode": "legacy"}
    assert [v["vfID"] for v in pf["Vfs"]] == list(range(8))
    assert {(v["deviceID"], v["driver"]) for v in pf["Vfs"]} == {("101e", "mlx5_core")}
    assert pf["Vfs"][0]["pciAddress"] == "0000:18:00.1" and re.fullmatch(r"([0-9a-f]{2}:){7}[0-9a-f]{2}",
                                                                           pf["Vfs"][0]["guid"])
    assert interfaces["ibp41s0f0"]["numVfs"] == 8 and interfaces["ibp41s0f0"]["deviceID"] == "a2dc"   # dpu-vfs
    assert "numVfs" not in interfaces["ibs14f0"] and "Vfs" not in interfaces["ibs14f0"]   # omitempty
    spec = {i["name"]: i for i in state["spec"]["interfaces"]}
    assert set(spec) == set(HCAS)
    assert spec["ibp24s0"] == {"pciAddress": "0000:18:00.0", "numVfs": 8, "name": "ibp24s0", "linkType": "ib",
                               "vfGroups": [{"resourceName": "resibp24s0", "deviceType": "netdevice",
                                             "vfRange": "0-7", "policyName": "policy-ibp24s0", "isRdma": True}]}
    down = {i["name"]: i for i in faults.state("dgx006")["status"]["interfaces"]}["ibp220s0"]
    slow = {i["name"]: i for i in faults.state("dgx012")["status"]["interfaces"]}["ibp154s0"]
    eth = {i["name"]: i for i in faults.state("dgx015")["status"]["interfaces"]}["ibp79s0"]
    assert (down["linkSpeed"], slow["linkSpeed"], eth["linkType"], eth["mtu"]) == ("-1 Mb/s", "200000 Mb/s", "ETH", 1500)


def test_policies_networks_and_the_drifted_policy(faults):
    policies = {p["metadata"]["name"]: p for p in faults.custom.list_namespaced_custom_object(
        "sriovnetwork.openshift.io", "v1", NS, "sriovnetworknodepolicies")["items"]}
    assert set(policies) == {f"policy-{h}" for h in HCAS} | {"policy-ibp24s0-dgx018"}
    assert policies["policy-ibp64s0"]["spec"] == {
        "resourceName": "resibp64s0", "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "nicSelector": {"vendor": "15b3", "deviceID": "1021", "pfNames": ["ibp64s0"]}, "numVfs": 8,
        "deviceType": "netdevice", "isRdma": True, "linkType": "ib", "priority": 90}
    drift = policies["policy-ibp24s0-dgx018"]["spec"]
    assert (drift["nodeSelector"], drift["priority"], drift["numVfs"], drift["resourceName"],
            drift["nicSelector"]["pfNames"]) == ({"kubernetes.io/hostname": "dgx018"}, 10, 4, "resibp24s0", ["ibp24s0"])
    spec = {i["name"]: i for i in faults.state("dgx018")["spec"]["interfaces"]}["ibp24s0"]
    assert spec["numVfs"] == 4 and spec["vfGroups"][0]["policyName"] == "policy-ibp24s0-dgx018"
    assert len(spec["vfGroups"]) == 1           # the cluster's group of the same resource is replaced, not kept
    assert faults.node("dgx018").status.allocatable["nvidia.com/resibp24s0"] == "4"    # what its group covers
    networks = faults.custom.list_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS, "sriovibnetworks")
    net = {n["metadata"]["name"]: n["spec"] for n in networks["items"]}["ibnet-ibp24s0"]
    assert net == {"resourceName": "resibp24s0", "networkNamespace": "default",
                   "ipam": '{"type":"nv-ipam","poolName":"ib-pool"}', "linkState": "enable"}


def test_nv_ipam_runs_with_an_allocation_for_every_node(faults):
    ncp = faults.custom.get_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies",
                                                  "nic-cluster-policy")
    assert ncp["spec"]["nvIpam"] == {"image": "nvidia-k8s-ipam", "repository": "nvcr.io/nvidia/mellanox",
                                     "version": "network-operator-v25.10.0", "enableWebhook": False}
    assert ncp["status"]["state"] == "ready"
    assert {"name": "state-nv-ipam-cni", "state": "ready"} in ncp["status"]["appliedStates"]
    nodes = faults.pods(selector="component=nv-ipam-node")
    assert sorted(p.spec.node_name for p in nodes) == FAULT_NODES
    image = "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0"
    for pod in [*nodes, *faults.pods(selector="component=nv-ipam-controller")]:
        assert re.fullmatch(r"nv-ipam-(node-[a-z0-9]{5}|controller-[a-z0-9]{10}-[a-z0-9]{5})", pod.metadata.name)
        assert (pod.status.phase, pod.spec.containers[0].image, pod.metadata.labels["app"]) == (
            "Running", image, "nv-ipam")
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    assert len(faults.pods(selector="name=nv-ipam-controller")) == 2
    for app in ("sriov-network-config-daemon", "sriov-device-plugin"):
        assert len(faults.pods(selector=f"app={app}")) == len(FAULT_NODES)
    pool = faults.custom.get_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", NS, "ippools", "ib-pool")
    assert pool["spec"] == {"subnet": "192.168.0.0/16", "perNodeBlockSize": 24}
    allocations = pool["status"]["allocations"]
    assert [a["nodeName"] for a in allocations] == FAULT_NODES
    assert allocations[1] == {"nodeName": "dgx002", "startIP": "192.168.0.25", "endIP": "192.168.0.48"}


def test_wrong_ipam_image_leaves_the_pods_in_image_pull_backoff(ipam_image):
    ncp = ipam_image.custom.get_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies",
                                                      "nic-cluster-policy")
    assert ncp["spec"]["nvIpam"]["image"] == "nv-ipam" and ncp["status"]["state"] == "notReady"
    assert {"name": "state-nv-ipam-cni", "state": "notReady"} in ncp["status"]["appliedStates"]
    pods = ipam_image.pods(selector="app=nv-ipam")
    assert len(pods) == 4
    for pod in pods:
        waiting = pod.status.container_statuses[0].state.waiting
        assert (pod.status.phase, waiting.reason, waiting.message) == (
            "Pending", "ImagePullBackOff", 'Back-off pulling image "ghcr.io/mellanox/nv-ipam:v0.2.0"')
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert all(p.status.phase == "Running" for p in ipam_image.pods(selector="app=sriov-network-config-daemon"))
    reasons = {e.reason for e in ipam_image.core.list_namespaced_event(NS).items}
    assert {"BackOff", "Failed"} <= reasons
    # a pod joining an nv-ipam network gets no sandbox: the node daemon is not running
    pod = ipam_image.create("net", "dgx040", {"nvidia.com/resibp24s0": "1"},
                            annotations={"k8s.v1.cni.cncf.io/networks": "default/ibnet-ibp24s0"})
    assert pod.spec.node_name == "dgx040" and pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    sandbox = [e for e in ipam_image.events("net") if e.reason == "FailedCreatePodSandBox"]
    assert sandbox and 'error adding container to network "ibnet-ibp24s0"' in sandbox[0].message

    # fixing the NicClusterPolicy rolls nv-ipam out again
    ipam_image.custom.patch_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies",
                                                  "nic-cluster-policy", {"spec": {"nvIpam": {
                                                      "image": "nvidia-k8s-ipam", "repository": "ghcr.io/mellanox",
                                                      "version": "v0.2.0"}}})
    pods = ipam_image.pods(selector="app=nv-ipam")
    assert len(pods) == 4 and {p.status.phase for p in pods} == {"Running"}
    assert {p.spec.containers[0].image for p in pods} == {"ghcr.io/mellanox/nvidia-k8s-ipam:v0.2.0"}
    assert ipam_image.custom.get_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies",
                                                       "nic-cluster-policy")["status"]["state"] == "ready"


# ------------------------------------------------------------------------------ scheduler and kubelet

def test_a_fitting_pod_is_bound_and_runs(faults):
    pod = faults.create("fits", "dgx001", {"nvidia.com/resibp24s0": "1", "nvidia.com/gpu": "8"})
    assert (pod.spec.node_name, pod.status.phase) == ("dgx001", "Running")
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["PodScheduled"] == conditions["Ready"] == "True"
    assert pod.status.container_statuses[0].state.running and pod.status.container_statuses[0].ready
    assert pod.status.host_ip == faults.node("dgx001").status.addresses[0].address
    [event] = faults.events("fits")
    assert (event.reason, event.message) == ("Scheduled", "Successfully assigned default/fits to dgx001")
    # the GPUs are now taken: a second pod asking for them cannot go there
    second = faults.create("no-gpu-left", "dgx001", {"nvidia.com/gpu": "1"})
    message = next(c for c in second.status.conditions if c.type == "PodScheduled").message
    n = len(FAULT_NODES)   # the scheduler lists its reasons sorted as strings
    reasons = sorted(["1 Insufficient nvidia.com/gpu", f"{n - 3} node(s) didn't match Pod's node affinity/selector",
                      "2 node(s) were unschedulable"])
    assert message == (f"0/{n} nodes are available: {', '.join(reasons)}. preemption: 0/{n} nodes are available: "
                       f"1 No preemption victims found for incoming pod, {n - 1} Preemption is not helpful for "
                       "scheduling.")
    for name in ("fits", "no-gpu-left"):
        faults.core.delete_namespaced_pod(name, "default")


def test_vfs_held_by_a_workload_make_the_probe_unschedulable_until_freed(taken):
    cluster = taken
    training = cluster.core.read_namespaced_pod("training-dgx001", "default")
    assert training.spec.node_name == "dgx001" and training.status.phase == "Running"
    assert training.spec.containers[0].resources.requests == dict.fromkeys(RESOURCES, "8")
    pod = cluster.create("probe", "dgx001", dict.fromkeys(RESOURCES, "1"))
    message = next(c for c in pod.status.conditions if c.type == "PodScheduled").message
    assert INSUFFICIENT.search(message)
    assert message.endswith("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
    cluster.core.delete_namespaced_pod("training-dgx001", "default")
    bound = wait_for(lambda: cluster.core.read_namespaced_pod("probe", "default").spec.node_name)
    assert bound == "dgx001"


def test_cordon_and_maintenance_taint_block_pods_that_do_not_tolerate_them(faults):
    node = faults.node("dgx016")
    assert node.spec.unschedulable
    assert [(t.key, t.effect) for t in node.spec.taints] == [
        ("node.kubernetes.io/unschedulable", "NoSchedule"), ("maintenance.nvidia.com/in-progress", "NoSchedule")]
    # dgx002 is cordoned too (drained for its firmware reboot): NodeUnschedulable runs before NodeAffinity
    n = len(FAULT_NODES)   # the scheduler lists its reasons sorted as strings
    cases = [([], [f"{n - 2} node(s) didn't match Pod's node affinity/selector", "2 node(s) were unschedulable"]),
             ([CORDON], ["1 node(s) had untolerated taint {maintenance.nvidia.com/in-progress: }",
                         f"{n - 1} node(s) didn't match Pod's node affinity/selector"]),
             ([CORDON, MAINTENANCE], None)]
    for i, (tolerations, reasons) in enumerate(cases):
        pod = faults.create(f"cordoned-{i}", "dgx016", {"nvidia.com/resibp24s0": "1"}, tolerations)
        if reasons is None:
            assert pod.spec.node_name == "dgx016" and pod.status.phase == "Running"
        else:
            message = next(c for c in pod.status.conditions if c.type == "PodScheduled").message
            assert message == (f"0/{n} nodes are available: {', '.join(sorted(reasons))}. preemption: 0/{n} nodes "
                               f"are available: {n} Preemption is not helpful for scheduling.")
        faults.core.delete_namespaced_pod(f"cordoned-{i}", "default")


def test_kubectl_cordon_taints_the_node_and_a_pending_pod_waits_for_uncordon(small):
    small.core.patch_node("dgx001", {"spec": {"unschedulable": True}})
    assert [t.key for t in small.node("dgx001").spec.taints] == ["node.kubernetes.io/unschedulable"]
    pod = small.create("waits", "dgx001", {"nvidia.com/resibp24s0": "1"})
    assert "1 node(s) were unschedulable" in pod.status.conditions[0].message
    small.core.patch_node("dgx001", {"spec": {"unschedulable": None}})
    assert not small.node("dgx001").spec.taints
    assert wait_for(lambda: small.core.read_namespaced_pod("waits", "default").status.phase == "Running")


def test_kubelet_rejects_a_pod_asking_for_vfs_on_the_admission_error_node(faults):
    pod = faults.create("rejected", "dgx020", {"nvidia.com/resibp24s0": "1", "nvidia.com/resibp64s0": "1"})
    message = ("Allocate failed due to requested number of devices unavailable for nvidia.com/resibp24s0. "
               "Requested: 1, Available: 0, which is unexpected")
    assert (pod.spec.node_name, pod.status.phase, pod.status.reason, pod.status.message) == (
        "dgx020", "Failed", "UnexpectedAdmissionError", f"Pod was rejected: {message}")
    event = next(e for e in faults.events("rejected") if e.reason == "UnexpectedAdmissionError")
    assert (event.type, event.message, event.source.component, event.source.host) == (
        "Warning", message, "kubelet", "dgx020")
    assert faults.create("no-vfs", "dgx020", {"nvidia.com/gpu": "1"}).status.phase == "Running"
    for name in ("rejected", "no-vfs"):
        faults.core.delete_namespaced_pod(name, "default")


@pytest.fixture
def slow_kubelet(tmp_path: Path) -> Iterator[Cluster]:
    """One node whose kubelet answers 0.3 s after the binding, and rejects pods asking for VFs."""
    yield from start(parse_scenario(SCENARIO.replace("nodes: [{names: dgx001}]", "kubernetes: {kubeletDelay: 0.3}\n"
                                                     "nodes: [{names: dgx001, faults: [{kind: admission-error}]}]"),
                                    "slow"), tmp_path)


def test_kubelet_delay_lets_the_binding_be_seen_before_the_rejection(slow_kubelet):
    cluster = slow_kubelet
    cluster.core.create_namespaced_pod("default", {"metadata": {"name": "late"}, "spec": {"containers": [
        {"name": "c", "image": "busybox:1.36", "resources": {"limits": {"nvidia.com/resibp24s0": "1"}}}]}})
    first = cluster.core.read_namespaced_pod("late", "default")
    assert (first.spec.node_name, first.status.phase) == ("dgx001", "Pending")
    assert wait_for(lambda: cluster.core.read_namespaced_pod("late", "default").status.phase == "Failed")
    assert cluster.core.read_namespaced_pod("late", "default").status.reason == "UnexpectedAdmissionError"


def test_a_pod_bound_by_hand_beyond_the_node_resources_is_refused_by_kubelet(small):
    small.core.create_namespaced_pod("default", {
        "metadata": {"name": "direct"},
        "spec": {"nodeName": "dgx001", "containers": [{"name": "c", "image": "busybox:1.36", "resources": {
            "requests": {"nvidia.com/resibp24s0": "9"}, "limits": {"nvidia.com/resibp24s0": "9"}}}]}})
    pod = small.core.read_namespaced_pod("direct", "default")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "OutOfnvidia.com/resibp24s0")
    assert pod.status.message == ("Pod was rejected: Node didn't have enough resource: nvidia.com/resibp24s0, "
                                  "requested: 9, used: 0, capacity: 8")


def test_changed_policies_are_rederived_by_the_operator(small):
    small.custom.patch_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS, "sriovnetworknodepolicies",
                                                "policy-ibp24s0", {"spec": {"numVfs": 16}})
    assert small.state("dgx001")["metadata"]["annotations"]["sriovnetwork.openshift.io/desired-state"] == \
        "Reboot_Required"
    assert "nvidia.com/resibp64s0" not in small.node("dgx001").status.allocatable
    small.custom.patch_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS, "sriovnetworknodepolicies",
                                                "policy-ibp24s0", {"spec": {"numVfs": 8}})
    node = small.node("dgx001")
    assert node.status.allocatable["nvidia.com/resibp64s0"] == "8" and not node.spec.unschedulable
    small.custom.delete_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS, "sriovnetworknodepolicies",
                                                 "policy-ibp24s0")
    node = small.node("dgx001")
    assert "nvidia.com/resibp24s0" not in node.status.allocatable
    assert node.status.allocatable["nvidia.com/resibp64s0"] == "8"


# ------------------------------------------------------------------------------ pure parts and the schema

@pytest.mark.parametrize(("text", "value"), [("8", 8), ("100m", 0.1), ("2113348180Ki", 2113348180 * 1024),
                                             ("1Gi", 2**30), ("1e3", 1000), ("2E", 2 * 10**18), ("x", 0)])
def test_quantities(text, value):
    assert float(quantity(text)) == pytest.approx(value)


@pytest.mark.parametrize(("toleration", "taint", "ok"), [
    (CORDON, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}, True),
    (CORDON, {"key": "node.kubernetes.io/unschedulable", "effect": "NoExecute"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "a"}, {"key": "k", "value": "a", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "a"}, {"key": "k", "value": "b", "effect": "NoSchedule"}, False),
])
def test_tolerations(toleration, taint, ok):
    assert tolerates([toleration], taint) is ok


@pytest.mark.parametrize(("faults_yaml", "error"), [
    ("nodes: [{names: dgx001, faults: [{kind: ipam-image}]}]",
     r"nodes\[0\]\.faults\[0\]\.kind: fault ipam-image concerns the whole cluster \(list it under kubernetes\.faults\)"),
    ("nodes: [{names: dgx001}]\nkubernetes: {faults: [{kind: cordoned}]}",
     r"kubernetes\.faults\[0\]\.kind: fault cordoned concerns a node, not the cluster"),
    ("nodes: [{names: dgx001, faults: [{kind: policy-drift, priority: 120}]}]",
     r"nodes\[0\]\.faults\[0\]\.priority: expected 0 to 99"),
    ("nodes: [{names: dgx001, faults: [{kind: operator-failed, message: x}]}]",
     r"faults\[0\]\.message: unknown parameter of fault operator-failed \(expected: error\)"),
    ("nodes: [{names: dgx001}]\nkubernetes: {faults: [{kind: ipam-image, image: \"\"}]}",
     r"kubernetes\.faults\[0\]\.image: expected a non-empty string"),
])
def test_kubernetes_fault_mistakes_are_one_line(faults_yaml, error):
    text = SCENARIO.replace("nodes: [{names: dgx001}]", faults_yaml)
    with pytest.raises(ScenarioError, match=error):
        parse_scenario(text, "s.yaml")


# ------------------------------------------------------------------------------ a whole Twin

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not Path(node_procs.SSHD).exists(),
                                reason="the twin needs root and openssh-server")


@needs_root
def test_twin_up_serves_its_api_on_the_service_address_with_its_own_token(tmp_path):
    with Twin("demo", tmp_path / "a") as one, Twin("demo", tmp_path / "b") as two:
        inventory = load_inventory(one.inventory_path)
        k8s = inventory.model.kubernetes
        assert (k8s.kubeconfig, k8s.namespace, k8s.resource_prefix) == (
            str(one.kubeconfig_path), "network-operator", "nvidia.com")
        assert inventory.model.expect.vfs_per_hca == 8
        probe = inventory.model.probe
        assert (probe.namespace, probe.timeout) == ("default", 30)
        assert [t.model_dump(exclude_none=True) for t in probe.tolerations] == [MAINTENANCE]
        assert stat.S_IMODE(one.kubeconfig_path.stat().st_mode) == 0o600
        configs = [yaml.safe_load(t.kubeconfig_path.read_text()) for t in (one, two)]
        servers = [c["clusters"][0]["cluster"]["server"] for c in configs]
        assert servers[0].startswith(f"https://{one.service_address}:") and one.service_address != two.service_address
        assert configs[0]["users"][0]["user"]["token"] != configs[1]["users"][0]["user"]["token"]
        authorities = [c["clusters"][0]["cluster"]["certificate-authority-data"] for c in configs]
        assert authorities[0] != authorities[1]         # each twin its own CA
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(one.kubeconfig_path), client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            core = client.CoreV1Api(api_client)
            assert [n.metadata.name for n in core.list_node().items] == ["dgx030", "dgx031"]
            assert core.read_node("dgx030").status.addresses[0].address == one.addresses["dgx030"]
            assert one.api is not None and one.api.running
        api = one.api
    assert not api.running
    configuration.retries = 0
    with client.ApiClient(configuration) as api_client, pytest.raises(urllib3.exceptions.HTTPError):
        client.CoreV1Api(api_client).list_node(_request_timeout=2)
