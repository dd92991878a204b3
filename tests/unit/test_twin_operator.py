"""The twin's SR-IOV operator across Network Operator releases and configurations: the pure derivations (table-driven)
and what a twin serves for each generation of state reporting, with SriovOperatorConfig and pool configs, seen through
the official client and judged by the product's own readers of those signals (operator_state, components).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ibconform import components, operator_state
from ibconform.twin import ScenarioError
from ibconform.twin.controllers import operator as op
from ibconform.twin.kube import OperatorRelease, PoolConfig
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.scenario import parse as parse_scenario
from tests.unit.test_twin_cluster import NS, RESOURCES, Cluster, start

SRIOV = ("sriovnetwork.openshift.io", "v1")
MAINTENANCE = ("maintenance.nvidia.com", "v1alpha1")
SCENARIO = """
format: ibconform-twin/v1
cluster: t
nodes: [{names: dgx001}]
"""


# ------------------------------------------------------------------------------ pure derivations

@pytest.mark.parametrize(("release", "external", "generation", "sriov_tag"), [
    ("24.1.0", False, "legacy", "network-operator-24.1.0"),
    ("24.4.0", False, "drain-controller", "network-operator-24.4.0"),
    ("25.4.0", False, "drain-controller", "network-operator-25.4.0"),
    ("25.7.0", False, "drain-controller", "network-operator-v25.7.0"),
    ("25.10.0", False, "drain-controller", "network-operator-v25.10.0"),
    ("25.10.0", True, "external-drainer", "network-operator-v25.10.0"),
    ("26.1.0", True, "external-drainer", "network-operator-v26.1.0"),
])
def test_a_release_names_its_generation_and_image_tags(release, external, generation, sriov_tag):
    found = OperatorRelease(release, external)
    assert (found.generation, found.sriov_tag, found.operator_tag) == (generation, sriov_tag, f"v{release}")
    image = f"nvcr.io/nvidia/mellanox/sriov-network-operator-config-daemon:{found.sriov_tag}"
    assert components.release(image) == found.version     # the product reads the release back from the tag


IDLE = op.Sync("Succeeded")
REBOOT, FIRMWARE, KERNEL = (op.Sync("InProgress", desired="Reboot_Required", current="DrainComplete", reboot_for=why)
                            for why in ((), ("mellanox",), ("generic",)))
TOO_MANY = "cannot config SRIOV device: NumVfs (8) is larger than TotalVfs (4)"
DESIRED, CURRENT, EXTERNAL = op.DESIRED_ANNOTATION, op.CURRENT_ANNOTATION, op.EXTERNAL_DRAINER_ANNOTATION


@pytest.mark.parametrize(("generation", "sync", "expected"), [
    ("legacy", IDLE, op.Drain("Idle")),
    ("legacy", REBOOT, op.Drain("Draining", cordoned=True)),
    ("drain-controller", IDLE, op.Drain("Idle", {DESIRED: "Idle", CURRENT: "Idle"})),
    ("drain-controller", REBOOT, op.Drain("Reboot_Required", {DESIRED: "Reboot_Required", CURRENT: "DrainComplete"},
                                          cordoned=True)),
    ("external-drainer", IDLE, op.Drain("Idle", {DESIRED: "Idle", CURRENT: "Idle", EXTERNAL: "true"})),
    ("external-drainer", REBOOT, op.Drain("Reboot_Required", {DESIRED: "Reboot_Required", CURRENT: "DrainComplete",
                                                              EXTERNAL: "true"}, cordoned=True, maintenance=True)),
    ("external-drainer", op.Sync("Failed", "boom"), op.Drain("Idle", {DESIRED: "Idle", CURRENT: "Idle",
                                                                      EXTERNAL: "true"})),
])
def test_each_generation_writes_its_own_drain_signals(generation, sync, expected):
    assert op.drain(generation, sync) == expected


def _verdict(nodes: str, **context) -> op.Sync:
    """The config daemon's verdict on dgx001 of a scenario with ``nodes``, under the cluster's policies."""
    scenario = parse_scenario(SCENARIO.replace("[{names: dgx001}]", nodes), "t")
    node, labels = scenario.nodes["dgx001"], {op.GPU_LABEL: "true"}
    policies = op.policies({"dgx001": node}, scenario.kubernetes, {"dgx001": labels})
    return op.node_sync(node, policies, labels, **context)


@pytest.mark.parametrize(("nodes", "release", "mellanox", "expected"), [
    # the mellanox plugin asks a reboot for pending firmware; without it the firmware is not the daemon's business
    ("[{names: dgx001, faults: [{kind: firmware-pending}]}]", "25.10.0", True, FIRMWARE),
    ("[{names: dgx001, faults: [{kind: mstconfig-nv-access, hcas: [ibp24s0]}]}]", "25.10.0", False, IDLE),
    ("[{names: dgx001, faults: [{kind: mstconfig-nv-access, hcas: [ibp24s0]}]}]", "25.10.0", True, op.Sync(
        "Failed", "mellanox plugin: failed to query device 0000:18:00.0: -E- Error when trying to check if NV "
                  "access registers are supported exit status 3")),
    # firmware allowing fewer VFs than the policies ask: a reboot with the plugin, refused by the generic one without
    ("[{names: dgx001, hardware: {numOfVfs: 4}}]", "25.10.0", True, FIRMWARE),
    ("[{names: dgx001, hardware: {numOfVfs: 4}}]", "25.10.0", False, op.Sync("InProgress", logged=TOO_MANY)),
    ("[{names: dgx001, hardware: {numOfVfs: 4}}]", "25.4.0", False, op.Sync("InProgress", logged=TOO_MANY)),
    ("[{names: dgx001, hardware: {numOfVfs: 4}}]", "25.1.0", False, op.Sync(
        "Failed", "cannot configure sriov interfaces", logged=TOO_MANY)),
    ("[{names: dgx001, hardware: {numOfVfs: 4}}]", "24.4.0", False, op.Sync(
        "Failed", "cannot configure sriov interfaces", logged=TOO_MANY)),
    ("[{names: dgx001}]", "25.10.0", False, IDLE),
])
def test_the_daemon_verdict_follows_its_plugins_and_release(nodes, release, mellanox, expected):
    assert _verdict(nodes, release=OperatorRelease(release), mellanox=mellanox) == expected


DGX_OS = "BOOT_IMAGE=/boot/vmlinuz-5.15.0-1063-nvidia root=UUID=x ro intel_iommu=on iommu=pt"


@pytest.mark.parametrize(("cmdline", "rdma", "change"), [
    (DGX_OS, None, ([], [])),
    (DGX_OS, "exclusive", (["ib_core.netns_mode=0"], [])),
    (DGX_OS, "shared", (["ib_core.netns_mode=1"], [])),
    (DGX_OS + " ib_core.netns_mode=0", "exclusive", ([], [])),
    (DGX_OS + " ib_core.netns_mode=0\n", "shared", (["ib_core.netns_mode=1"], ["ib_core.netns_mode=0"])),
    (DGX_OS + " ib_core.netns_mode=1", None, ([], ["ib_core.netns_mode=1"])),    # no pool: the argument goes
    (DGX_OS + " ib_core.netns_mode=00", "exclusive", (["ib_core.netns_mode=0"], [])),   # token by token
    (DGX_OS + " ib_core.netns_mode=0 ib_core.netns_mode=1", "exclusive", ([], ["ib_core.netns_mode=1"])),
])
def test_the_generic_plugin_wants_the_rdma_mode_kernel_argument_alone(cmdline, rdma, change):
    assert op.kernel_args_change(cmdline, rdma) == change


@pytest.mark.parametrize(("kernel", "release", "rdma", "expected"), [
    ("{args: [ib_core.netns_mode=0]}", "25.10.0", "exclusive", IDLE),
    ("{}", "25.10.0", "exclusive", KERNEL),
    ("{args: [ib_core.netns_mode=0]}", "25.10.0", None, KERNEL),
    ("{args: [ib_core.netns_mode=0]}", "24.1.0", None, IDLE),        # upstream v1.2 knows no RDMA netns mode
    ("{rdmaNetnsMode: exclusive}", "25.10.0", None, IDLE),            # set at run time: no argument to remove
])
def test_kernel_arguments_ask_a_reboot_from_24_4(kernel, release, rdma, expected):
    assert _verdict(f"[{{names: dgx001, kernel: {kernel}}}]", release=OperatorRelease(release), rdma=rdma) == expected


GPU = {op.GPU_LABEL: "true", "kubernetes.io/hostname": "dgx001"}


@pytest.mark.parametrize(("selector", "matches"), [
    ({}, True),
    ({"matchLabels": {op.GPU_LABEL: "true"}}, True),
    ({"matchLabels": {op.GPU_LABEL: "false"}}, False),
    ({"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["dgx001", "dgx002"]}]},
     True),
    ({"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["dgx001"]}]}, False),
    ({"matchExpressions": [{"key": "node-role.kubernetes.io/worker", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "node-role.kubernetes.io/worker", "operator": "DoesNotExist"}]}, True),
    ({"matchLabels": {op.GPU_LABEL: "true"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "x", "operator": "Gt", "values": ["1"]}]}, False),
    (None, True),
])
def test_pool_config_label_selectors(selector, matches):
    assert op.label_selector_matches(selector, GPU) is matches


def _pool(name: str, mode: str | None, selector: dict) -> dict:
    return op.pool_config(PoolConfig(name, mode, selector), NS)


@pytest.mark.parametrize(("pools", "mode"), [
    ([], None),
    ([_pool("a", "exclusive", {})], "exclusive"),
    ([_pool("a", "shared", {"matchLabels": {op.GPU_LABEL: "true"}})], "shared"),
    ([_pool("a", "exclusive", {"matchLabels": {op.GPU_LABEL: "false"}})], None),
    ([_pool("a", "exclusive", {}), _pool("b", "shared", {"matchLabels": {"kubernetes.io/hostname": "dgx001"}})],
     None),                                                  # in two pools: the operator renders neither
    ([_pool("a", None, {})], None),
    ([{"spec": {"ovsHardwareOffloadConfig": {"name": "ovs"}, "rdmaMode": "shared"}}, _pool("b", "exclusive", {})],
     "exclusive"),                                           # offload pools are left out of the choice
])
def test_a_node_gets_the_rdma_mode_of_its_one_pool(pools, mode):
    assert op.rdma_mode(pools, GPU) == mode


DEFAULT_CONFIG = op.operator_config(OperatorRelease(), load_scenario("demo").kubernetes.sriov_config, NS)


@pytest.mark.parametrize(("config", "labels", "managed", "daemon", "plugin"), [
    (DEFAULT_CONFIG, {"beta.kubernetes.io/os": "linux", "network.nvidia.com/operator.mofed.wait": "false"}, True,
     {"beta.kubernetes.io/os": "linux", "network.nvidia.com/operator.mofed.wait": "false"},
     {"beta.kubernetes.io/os": "linux", "network.nvidia.com/operator.mofed.wait": "false",
      op.DEVICE_PLUGIN_LABEL: "Enabled"}),
    (DEFAULT_CONFIG, {"beta.kubernetes.io/os": "linux", "network.nvidia.com/operator.mofed.wait": "true"}, False,
     None, None),
    (None, {"kubernetes.io/os": "linux"}, False,
     {"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"},
     {"kubernetes.io/os": "linux", op.DEVICE_PLUGIN_LABEL: "Enabled"}),
    ({"spec": {"configDaemonNodeSelector": {}}}, {"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""},
     True, None, {"kubernetes.io/os": "linux", op.DEVICE_PLUGIN_LABEL: "Enabled"}),
])
def test_the_config_daemon_and_device_plugin_follow_the_operator_config(config, labels, managed, daemon, plugin):
    assert op.managed(config, labels) is managed
    if daemon is not None:
        assert op.config_daemon_selector(config) == daemon
    if plugin is not None:
        assert op.device_plugin_selector(config) == plugin


@pytest.mark.parametrize(("kubernetes", "message"), [
    ("{operator: {release: '23.10.0'}}", r"kubernetes\.operator\.release: expected 24\.1\.0 or later"),
    ("{operator: {release: 26.1}}", r"kubernetes\.operator\.release: "),
    ("{operator: {release: '24.4.0', externalDrainer: true}}",
     r"kubernetes\.operator\.externalDrainer: needs Network Operator 25\.10 or later vs Network Operator 24\.4\.0"),
    ("{operator: {release: '24.1.0'}, sriovOperatorConfig: {disablePlugins: [mellanox]}}",
     r"kubernetes\.sriovOperatorConfig\.disablePlugins: SriovOperatorConfig has no disablePlugins before"),
    ("{sriovOperatorConfig: {disablePlugins: [generic]}}", r"kubernetes\.sriovOperatorConfig\.disablePlugins\[0\]"),
    ("{sriovOperatorConfig: {configDaemonNodeSelector: {}}}",
     r"kubernetes\.sriovOperatorConfig\.configDaemonNodeSelector"),
    ("{operator: {release: '24.1.0'}, poolConfigs: [{name: a, rdmaMode: shared}]}",
     r"kubernetes\.poolConfigs: SriovNetworkPoolConfig has no nodeSelector or rdmaMode before"),
    ("{poolConfigs: [{name: a, rdmaMode: private}]}", r"kubernetes\.poolConfigs\[0\]\.rdmaMode"),
    ("{poolConfigs: [{name: a}, {name: a}]}", r"kubernetes\.poolConfigs: a listed twice"),
    ("{poolConfigs: [{name: A}]}", r"kubernetes\.poolConfigs\[0\]\.name"),
    ("{poolConfigs: [{name: a, nodeSelector: {matchExpressions: [{key: x, operator: Gt}]}}]}",
     r"kubernetes\.poolConfigs\[0\]\.nodeSelector\.matchExpressions\[0\]\.operator"),
    ("{operator: {version: '25.10.0'}}", r"kubernetes\.operator\.version: unknown key"),
])
def test_installation_errors_are_one_line_naming_the_field(kubernetes, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(SCENARIO + f"kubernetes: {kubernetes}\n", "bad.yaml")
    assert "\n" not in str(exc.value)
    assert re.match(r"bad\.yaml: " + message, str(exc.value)), str(exc.value)


# ------------------------------------------------------------------------------ served objects per generation

@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("operator-legacy", tmp_path_factory.mktemp("legacy"))


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start("operator-external-drainer", tmp_path_factory.mktemp("external"))


@pytest.fixture
def unmanaged(tmp_path: Path) -> Iterator[Cluster]:
    yield from start("mellanox-disabled", tmp_path)


def _states(cluster: Cluster) -> list[dict]:
    return cluster.custom.list_namespaced_custom_object(*SRIOV, NS, "sriovnetworknodestates")["items"]


def _images(cluster: Cluster) -> dict[str, list[str]]:
    return components.images([cluster.api_client.sanitize_for_serialization(p) for p in cluster.pods()])


def _maintenances(cluster: Cluster) -> list[dict]:
    return cluster.custom.list_cluster_custom_object(*MAINTENANCE, "nodemaintenances")["items"]


def test_legacy_operator_reports_only_on_the_node(legacy):
    healthy, pending = legacy.node("dgx050"), legacy.node("dgx051")
    assert healthy.metadata.annotations[op.STATE_ANNOTATION] == "Idle" and not healthy.spec.unschedulable
    assert pending.metadata.annotations[op.STATE_ANNOTATION] == "Draining" and pending.spec.unschedulable
    assert not set(RESOURCES) & set(pending.status.allocatable)
    states = _states(legacy)
    assert [s["metadata"].get("annotations") for s in states] == [None, None]
    assert [s["status"]["syncStatus"] for s in states] == ["Succeeded", "InProgress"]
    assert all(s["spec"]["dpConfigVersion"].isdigit() for s in states)
    pf = states[0]["status"]["interfaces"][4]
    assert pf["name"] == "ibp24s0" and "linkAdminState" not in pf and "guid" not in pf["Vfs"][0]
    images = _images(legacy)
    assert images["sriov-network-config-daemon"] == [
        "nvcr.io/nvidia/mellanox/sriov-network-operator-config-daemon:network-operator-24.1.0"]
    assert images["network-operator"] == ["nvcr.io/nvidia/cloud-native/network-operator:v24.1.0"]
    pods = [legacy.api_client.sanitize_for_serialization(p) for p in legacy.pods()]
    generation = operator_state.generation(states, pods)
    assert (generation.name, generation.evidence) == ("legacy", "operator images of Network Operator 24.1")
    node_obj = legacy.api_client.sanitize_for_serialization(pending)
    assert operator_state.busy(generation, node_obj, states[1], []) == {"Node state": "Draining"}
    config = legacy.custom.get_namespaced_custom_object(*SRIOV, NS, "sriovoperatorconfigs", "default")["spec"]
    assert "configurationMode" not in config and "disablePlugins" not in config


def test_external_drainer_holds_the_pending_node_with_a_ready_node_maintenance(external):
    states = {s["metadata"]["name"]: s for s in _states(external)}
    assert {n: s["metadata"]["annotations"] for n, s in states.items()} == {
        "dgx060": {DESIRED: "Idle", CURRENT: "Idle", EXTERNAL: "true"},
        "dgx061": {DESIRED: "Reboot_Required", CURRENT: "DrainComplete", EXTERNAL: "true"}}
    [maintenance] = _maintenances(external)
    assert maintenance["metadata"]["name"] == "nvidia-operator-dgx061"
    assert maintenance["metadata"]["namespace"] == "default"
    assert maintenance["spec"] == {
        "requestorID": "nvidia.network-operator-drain-controller", "nodeName": "dgx061", "cordon": True,
        "drainSpec": {"force": True, "podSelector": "nvidia.com/gpu-driver-upgrade-drain.skip!=true,"
                                                    "nvidia.com/ofed-driver-upgrade-drain.skip!=true",
                      "timeoutSeconds": 90, "deleteEmptyDir": True}}
    [ready] = maintenance["status"]["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Ready")
    pending = external.node("dgx061")
    assert pending.metadata.annotations[op.STATE_ANNOTATION] == "Reboot_Required" and pending.spec.unschedulable
    pods = [external.api_client.sanitize_for_serialization(p) for p in external.pods()]
    generation = operator_state.generation(list(states.values()), pods)
    assert generation.name == "external-drainer"
    node_obj = external.api_client.sanitize_for_serialization(pending)
    assert operator_state.busy(generation, node_obj, states["dgx061"], [maintenance]) == {
        "Node state": "Reboot_Required", "desired-state": "Reboot_Required", "current-state": "DrainComplete",
        "held by": "NodeMaintenance nvidia-operator-dgx061 (Ready)"}
    assert _images(external)["sriov-network-operator"] == [
        "nvcr.io/nvidia/mellanox/sriov-network-operator:network-operator-v26.1.0"]


def test_the_maintenance_api_serves_its_print_columns(external):
    crd = client.ApiextensionsV1Api(external.api_client).read_custom_resource_definition(
        "nodemaintenances.maintenance.nvidia.com")
    assert crd.spec.scope == "Namespaced"
    assert [c.name for c in crd.spec.versions[0].additional_printer_columns] == [
        "Node", "Requestor", "Ready", "Phase", "Failed"]


def test_an_idle_node_is_released_from_its_node_maintenance(tmp_path):
    text = SCENARIO.replace("nodes: [{names: dgx001}]", "nodes: [{names: dgx001, faults: [{kind: firmware-pending}]}]")
    scenario = parse_scenario(text + "kubernetes: {operator: {release: '25.10.0', externalDrainer: true}}\n", "t")
    for cluster in start(scenario, tmp_path):
        assert [m["spec"]["nodeName"] for m in _maintenances(cluster)] == ["dgx001"]
        for policy in cluster.custom.list_namespaced_custom_object(*SRIOV, NS, "sriovnetworknodepolicies")["items"]:
            cluster.custom.delete_namespaced_custom_object(*SRIOV, NS, "sriovnetworknodepolicies",
                                                           policy["metadata"]["name"])
        assert _maintenances(cluster) == []       # nothing configured: the daemon is idle, the drain undone
        node = cluster.node("dgx001")
        assert node.metadata.annotations[op.STATE_ANNOTATION] == "Idle" and not node.spec.unschedulable
        assert cluster.state("dgx001")["metadata"]["annotations"][CURRENT] == "Idle"


def test_without_the_mellanox_plugin_firmware_is_the_admins(unmanaged):
    config = unmanaged.custom.get_namespaced_custom_object(*SRIOV, NS, "sriovoperatorconfigs", "default")["spec"]
    assert config == {"enableInjector": False, "enableOperatorWebhook": False, "logLevel": 2, "disableDrain": False,
                      "configurationMode": "daemon", "disablePlugins": ["mellanox"],
                      "configDaemonNodeSelector": {"beta.kubernetes.io/os": "linux",
                                                   "network.nvidia.com/operator.mofed.wait": "false"}}
    assert unmanaged.state("dgx070")["status"]["syncStatus"] == "Succeeded"
    low = unmanaged.state("dgx071")
    assert (low["status"]["syncStatus"], low["status"].get("lastSyncError")) == ("InProgress", None)
    assert low["metadata"]["annotations"][DESIRED] == "Idle"
    assert {r: unmanaged.node("dgx070").status.allocatable.get(r) for r in RESOURCES} == dict.fromkeys(RESOURCES, "8")
    assert not set(RESOURCES) & set(unmanaged.node("dgx071").status.allocatable)


def test_a_node_outside_the_config_daemon_selector_is_left_alone(unmanaged):
    outside = unmanaged.node("dgx072")
    assert outside.metadata.labels["network.nvidia.com/operator.mofed.wait"] == "true"
    assert op.DEVICE_PLUGIN_LABEL not in outside.metadata.labels
    assert not set(RESOURCES) & set(outside.status.allocatable)
    daemons = {p.spec.node_name for p in unmanaged.pods(selector="app=sriov-network-config-daemon")}
    plugins = {p.spec.node_name for p in unmanaged.pods(selector="app=sriov-device-plugin")}
    assert daemons == plugins == {"dgx070", "dgx071"}
    kept = unmanaged.state("dgx072")["metadata"]["annotations"][op.KEEP_UNTIL_ANNOTATION]
    left = dt.datetime.strptime(kept, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=29) < left <= dt.timedelta(minutes=30)
    # the admin widens the selector: the daemon and the device plugin come, the node state is kept for good
    unmanaged.custom.patch_namespaced_custom_object(*SRIOV, NS, "sriovoperatorconfigs", "default", {
        "spec": {"configDaemonNodeSelector": {"network.nvidia.com/operator.mofed.wait": None}}})
    for app in ("sriov-network-config-daemon", "sriov-device-plugin"):
        assert {p.spec.node_name for p in unmanaged.pods(selector=f"app={app}")} == {"dgx070", "dgx071", "dgx072"}
    assert op.KEEP_UNTIL_ANNOTATION not in unmanaged.state("dgx072")["metadata"]["annotations"]
    joined = unmanaged.node("dgx072")
    assert joined.metadata.labels[op.DEVICE_PLUGIN_LABEL] == "Enabled"
    assert {r: joined.status.allocatable.get(r) for r in RESOURCES} == dict.fromkeys(RESOURCES, "8")


def test_before_24_10_the_state_of_an_unmanaged_node_goes_at_once(tmp_path):
    text = SCENARIO.replace("nodes: [{names: dgx001}]", "nodes: [{names: dgx001}, {names: dgx002, labels: "
                                                        "{network.nvidia.com/operator.mofed.wait: 'true'}}]")
    for cluster in start(parse_scenario(text + "kubernetes: {operator: {release: '24.7.0'}}\n", "t"), tmp_path):
        assert [s["metadata"]["name"] for s in _states(cluster)] == ["dgx001"]
        assert op.DEVICE_PLUGIN_LABEL not in cluster.node("dgx002").metadata.labels


def test_a_pool_config_renders_the_rdma_mode_and_reboots_nodes_whose_kernel_lacks_it(tmp_path):
    for cluster in start("kernel-args", tmp_path):
        [pool] = cluster.custom.list_namespaced_custom_object(*SRIOV, NS, "sriovnetworkpoolconfigs")["items"]
        assert (pool["metadata"]["name"], pool["spec"]) == (
            "rdma-exclusive", {"nodeSelector": {"matchLabels": {op.GPU_LABEL: "true"}}, "rdmaMode": "exclusive"})
        rebooted, waiting = cluster.state("dgx080"), cluster.state("dgx081")
        assert rebooted["spec"]["system"] == waiting["spec"]["system"] == {"rdmaMode": "exclusive"}
        assert (rebooted["status"]["system"], rebooted["status"]["syncStatus"]) == ({"rdmaMode": "exclusive"},
                                                                                  "Succeeded")
        assert (waiting["status"]["system"], waiting["status"]["syncStatus"]) == ({"rdmaMode": "shared"},
                                                                                 "InProgress")
        assert waiting["metadata"]["annotations"][DESIRED] == "Reboot_Required"
        assert cluster.node("dgx081").metadata.annotations[op.STATE_ANNOTATION] == "Reboot_Required"
        firmware = load_scenario("kernel-args").nodes["dgx081"].hcas.values()
        assert not any(h.num_of_vfs.pending for h in firmware)                  # the reboot is not the firmware's
        # the admin takes the pool config away: dgx080's argument is now unwanted, dgx081 has nothing to change
        cluster.custom.delete_namespaced_custom_object(*SRIOV, NS, "sriovnetworkpoolconfigs", "rdma-exclusive")
        assert "system" not in cluster.state("dgx081")["spec"]
        assert cluster.state("dgx081")["status"]["syncStatus"] == "Succeeded"
        assert cluster.state("dgx080")["metadata"]["annotations"][DESIRED] == "Reboot_Required"


def _log(cluster: Cluster, node: str) -> list[list[str]]:
    pod = next(p.metadata.name for p in cluster.pods(selector="app=sriov-network-config-daemon")
               if p.spec.node_name == node)
    return [line.split("\t")[1:] for line in cluster.core.read_namespaced_pod_log(pod, NS).splitlines()]


def test_the_config_daemon_logs_the_plugin_that_asks_the_reboot(tmp_path):
    for cluster in start("kernel-args", tmp_path):
        assert ["LEVEL(-2)", "mellanox plugin", '{"need-drain": false, "need-reboot": false}'] in _log(cluster, "dgx081")
        assert ["LEVEL(-2)", "generic-plugin needRebootNode(): need reboot for updating kernel arguments"] in _log(
            cluster, "dgx081")
        assert ["INFO", "nodeStateSyncHandler(): aggregated daemon",
                '{"drain-required": true, "reboot-required": true, "disable-drain": false}'] in _log(cluster, "dgx081")
        assert not any("generic-plugin" in line[1] for line in _log(cluster, "dgx080"))


def test_without_the_mellanox_plugin_the_log_holds_the_refusal(unmanaged):
    log = _log(unmanaged, "dgx071")
    assert not any("mellanox" in line[1] for line in log)
    assert ["ERROR", "generic plugin fail to apply", f'{{"error": "{TOO_MANY}"}}'] in log
    assert log[-1] == ["INFO", "setNodeStateStatus(): syncStatus: InProgress, lastSyncError: "]


def test_the_legacy_daemon_logs_its_reboot_though_its_node_state_does_not_say(legacy):
    assert ["INFO", "nodeStateSyncHandler(): aggregated daemon",
            '{"drain-required": true, "reboot-required": true, "disable-drain": false}'] in _log(legacy, "dgx051")
