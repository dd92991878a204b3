"""``pods/<name>/log`` of the twin's API: kube-apiserver's and the kubelet's answers (pure, table-driven), what the
operators' pods log (from the cluster they see), and both through the official client on an emulated cluster."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.apiserver.pod_exec import Kubelet
from ibconform.twin.apiserver.pod_logs import container, dial_error, refusal, select
from ibconform.twin.apiserver.store import ApiError
from ibconform.twin.controllers import ipam, kubelet, operator
from ibconform.twin.controllers.cluster import ClusterEmulation
from ibconform.twin.kube import IpamPool
from ibconform.twin.scenario import load as load_scenario

NS = "network-operator"
STARTED = "2025-03-01T11:55:00Z"


def pod(*names: str, init: tuple[str, ...] = (), status: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"nodeName": "dgx030", "containers": [{"name": n, "image": "busybox:1.36"} for n in names],
                     "initContainers": [{"name": n, "image": "busybox:1.36"} for n in init]},
            "status": status or {}}


@pytest.mark.parametrize("obj, asked, chosen", [
    (pod("main"), None, "main"),
    (pod("main"), "main", "main"),
    (pod("a", "b", init=("setup",)), "setup", "setup"),
    (pod("a", "b", init=("setup",)), None, "a container name must be specified for pod p, choose one of: "
                                           "[setup a b]"),
    (pod("main"), "other", "container other is not valid for pod p"),
    (pod(), None, "a container name must be specified for pod p"),
])
def test_the_container_is_the_only_one_or_the_one_named(obj, asked, chosen):
    if " " not in chosen:
        assert container(obj, asked) == chosen
        return
    with pytest.raises(ApiError) as err:
        container(obj, asked)
    assert (err.value.status, err.value.reason, err.value.message) == (400, "BadRequest", chosen)


RUNNING = kubelet.running(pod("main"), "127.100.0.1", None, started=STARTED)
RESTARTED = {**RUNNING, "containerStatuses": [{**RUNNING["containerStatuses"][0], "lastState": {"terminated": {
    "exitCode": 1, "containerID": "containerd://0"}}}]}


@pytest.mark.parametrize("status, previous, answer", [
    (RUNNING, False, None),
    (RESTARTED, True, None),
    (RUNNING, True, 'previous terminated container "main" in pod "p" not found'),
    (kubelet.image_pull_backoff(pod("main"), "127.100.0.1", None, "nv-ipam:v0.2.0"), False,
     'container "main" in pod "p" is waiting to start: trying and failing to pull image'),
    ({"containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "ErrImagePull"}}}]}, False,
     'container "main" in pod "p" is waiting to start: image can\'t be pulled'),
    (kubelet.sandbox_failed(pod("main"), "127.100.0.1"), False,
     'container "main" in pod "p" is waiting to start: ContainerCreating'),
    ({"containerStatuses": [{"name": "main", "state": {}}]}, False,
     'container "main" in pod "p" is waiting to start - no logs yet'),
    (kubelet.rejected(pod("main"), "UnexpectedAdmissionError", "Allocate failed"), False,
     'container "main" in pod "p" is not available'),
])
def test_the_kubelet_refuses_a_container_that_has_no_log(status, previous, answer):
    found = refusal(pod("main", status=status), "main", previous)
    assert (found.message if found is not None else None) == answer
    assert found is None or found.status == 400


def test_a_node_that_refuses_fails_like_kube_apiserver_dialing_its_kubelet():
    error = dial_error(Kubelet("127.100.0.2", fault="refused"), {"metadata": {"namespace": NS, "name": "p"}}, "c")
    assert (error.status, error.message) == (500, 'Get "https://127.100.0.2:10250/containerLogs/network-operator/p/c": '
                                                  "dial tcp 127.100.0.2:10250: connect: connection refused")


@pytest.mark.parametrize("query, shown", [
    ({}, "a\nb\nc\n"), ({"tailLines": "2"}, "b\nc\n"), ({"tailLines": "0"}, ""), ({"limitBytes": "3"}, "a\nb"),
    ({"tailLines": "1", "limitBytes": "100"}, "c\n"),
])
def test_tail_lines_and_limit_bytes(query, shown):
    assert select("a\nb\nc\n", query) == shown


@pytest.mark.parametrize("query, message", [
    ({"tailLines": "-1"}, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
    ({"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"tailLines": "x"}, "tailLines: Invalid value: 'x': must be an integer"),
])
def test_bad_log_options_are_400(query, message):
    with pytest.raises(ApiError) as err:
        select("a\n", query)
    assert (err.value.status, err.value.message) == (400, message)


# ------------------------------------------------------------------------------------ what the operators log

def state(sync: str, error: str = "", desired: str = "Idle", current: str = "Idle") -> dict:
    status = {"syncStatus": sync, **({"lastSyncError": error} if error else {})}
    return {"metadata": {"name": "dgx031", "generation": 3, "annotations": {
        operator.DESIRED_ANNOTATION: desired, operator.CURRENT_ANNOTATION: current}}, "status": status}


GENERATION = ("INFO", "nodeStateSyncHandler(): new generation", '{"generation": 3}')
PLUGIN = ("INFO", "mellanox plugin OnNodeStateChange()", None)


def verdict(reboot: bool) -> list[tuple]:
    flag = "true" if reboot else "false"
    return [("LEVEL(-2)", "mellanox plugin", f'{{"need-drain": {flag}, "need-reboot": {flag}}}'),
            ("INFO", "nodeStateSyncHandler(): aggregated daemon",
             f'{{"drain-required": {flag}, "reboot-required": {flag}, "disable-drain": false}}')]


@pytest.mark.parametrize("node_state, lines", [
    (state("Succeeded"), [GENERATION, PLUGIN, *verdict(False),
                          ("INFO", "setNodeStateStatus(): syncStatus: Succeeded, lastSyncError: ", None)]),
    (state("InProgress", desired="Reboot_Required", current="DrainComplete"), [
        GENERATION, PLUGIN, *verdict(True),
        ("INFO", "setNodeStateStatus(): syncStatus: InProgress, lastSyncError: ", None)]),
    (state("Failed", "mellanox plugin: failed to query device 0000:18:00.0: exit status 3"), [
        GENERATION, PLUGIN,
        ("ERROR", "nodeStateSyncHandler(): failed to apply the configuration",
         '{"error": "mellanox plugin: failed to query device 0000:18:00.0: exit status 3"}'),
        ("INFO", "setNodeStateStatus(): syncStatus: Failed, lastSyncError: mellanox plugin: failed to query device "
                 "0000:18:00.0: exit status 3", None)]),
    (state("Failed", "failed to configure sriov devices"), [
        GENERATION, PLUGIN, *verdict(False),
        ("ERROR", "nodeStateSyncHandler(): failed to apply the configuration",
         '{"error": "failed to configure sriov devices"}'),
        ("INFO", "setNodeStateStatus(): syncStatus: Failed, lastSyncError: failed to configure sriov devices", None)]),
    (None, [("ERROR", "nodeStateSyncHandler(): failed to get SriovNetworkNodeState", '{"name": "dgx031"}')]),
])
def test_the_config_daemon_logs_what_its_node_state_says(node_state, lines):
    text = operator.config_daemon_log("dgx031", node_state, STARTED)
    assert text.endswith("\n")
    parsed = [tuple(line.split("\t")) for line in text.splitlines()]
    assert parsed == [(STARTED, level, message, *([fields] if fields else [])) for level, message, fields in lines]


def test_nv_ipam_logs_the_block_of_each_node_and_the_nodes_left_without():
    pool = ipam.ippool({"dgx030": {}, "dgx031": {}}, IpamPool(), "network-operator")
    pool["status"]["allocations"].pop()                         # dgx031 got no block
    assert ipam.node_log("dgx030", [pool], "network-operator", STARTED).splitlines() == [
        f'{STARTED}\tINFO\tstart IPAM node daemon\t{{"node": "dgx030", "IPPools Namespace": "network-operator"}}',
        f'{STARTED}\tINFO\tNotification on IPPool\t{{"name": "ib-pool", "startIP": "192.168.0.1", '
        f'"endIP": "192.168.0.24"}}']
    assert ipam.node_log("dgx031", [pool], "network-operator", STARTED).splitlines()[1:] == [
        f'{STARTED}\tINFO\tNotification on IPPool\t{{"name": "ib-pool"}}',
        f'{STARTED}\tINFO\tno block for this node in IPPool, removing it\t{{"name": "ib-pool"}}']
    controller = ipam.controller_log([pool], ["dgx030", "dgx031"], "network-operator", STARTED).splitlines()
    assert [json.loads(line.split("\t")[3]) for line in controller[1:]] == [
        {"name": "ib-pool", "subnet": "192.168.0.0/16", "perNodeBlockSize": 24, "allocated": 1},
        {"name": "ib-pool", "node": "dgx031"}]


# ------------------------------------------------------------------------------------ through the official client

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiTwin, client.CoreV1Api]]:
    api = ApiTwin(token="logs-token")
    ClusterEmulation(api, load_scenario("demo")).install()
    api.set_kubelets(lambda name: Kubelet("127.100.0.2", fault="refused") if name == "gone" else None)
    with api:
        configuration = client.Configuration()
        config.load_kube_config(str(api.write_kubeconfig(tmp_path_factory.mktemp("logs") / "kubeconfig")),
                                client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            yield api, client.CoreV1Api(api_client)
        assert api.internal_errors == []


def pod_of(core: client.CoreV1Api, selector: str, node: str) -> str:
    return next(p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=selector).items
                if p.spec.node_name == node)


def test_the_config_daemon_log_follows_its_node_state(demo):
    api, core = demo
    pending = core.read_namespaced_pod_log(pod_of(core, "app=sriov-network-config-daemon", "dgx031"), NS)
    assert 'mellanox plugin\t{"need-drain": true, "need-reboot": true}' in pending
    assert pending.splitlines()[-1].endswith("setNodeStateStatus(): syncStatus: InProgress, lastSyncError: ")
    synced = core.read_namespaced_pod_log(pod_of(core, "app=sriov-network-config-daemon", "dgx030"), NS,
                                          container="sriov-network-config-daemon", tail_lines=1)
    assert synced.endswith("setNodeStateStatus(): syncStatus: Succeeded, lastSyncError: \n")
    block = api.get("nv-ipam.nvidia.com/v1alpha1", "IPPool", "ib-pool", NS)["status"]["allocations"][1]
    ipam_log = core.read_namespaced_pod_log(pod_of(core, "name=nv-ipam-node", "dgx031"), NS)
    assert f'"startIP": "{block["startIP"]}", "endIP": "{block["endIP"]}"' in ipam_log


def test_a_pod_not_bound_has_an_empty_log_and_other_pods_log_nothing_here(demo):
    api, core = demo
    api.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiting", "namespace": "default"},
             "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "schedulerName": "elsewhere"}})
    assert core.read_namespaced_pod_log("waiting", "default") == ""
    assert core.read_namespaced_pod_log(pod_of(core, "name=multus", "dgx030"), NS) == ""
    api.set_pod_log(NS, pod_of(core, "name=multus", "dgx030"), "set by hand\n")
    assert core.read_namespaced_pod_log(pod_of(core, "name=multus", "dgx030"), NS) == "set by hand\n"


def test_a_node_whose_kubelet_refuses_gives_the_dial_error(demo):
    api, core = demo
    pod_ = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-gone", "namespace": "default"},
            "spec": {"nodeName": "gone", "containers": [{"name": "c", "image": "busybox:1.36"}]}}
    api.put({**pod_, "status": kubelet.running(pod_, "127.100.0.2", None)})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("on-gone", "default")
    assert err.value.status == 500
    assert "dial tcp 127.100.0.2:10250: connect: connection refused" in json.loads(err.value.body)["message"]


@pytest.mark.parametrize("end", ["container stops", "pod deleted"])
def test_a_followed_log_stays_open_while_the_container_runs(demo, end):
    api, _ = demo
    name = f"followed-{end.split()[1]}"
    pod_ = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "dgx030", "containers": [{"name": "c", "image": "busybox:1.36"}]}}
    api.put({**pod_, "status": kubelet.running(pod_, "127.100.0.1", None)})
    api.set_pod_log("default", name, "first\nsecond\n")
    request = urllib.request.Request(f"{api.url}/api/v1/namespaces/default/pods/{name}/log?follow=true",
                                     headers={"Authorization": f"Bearer {api.token}"})
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    with urllib.request.urlopen(request, context=context, timeout=10) as stream:
        assert stream.readline() == b"first\n"
        ended = threading.Event()
        threading.Thread(target=lambda: (stream.read(), ended.set()), daemon=True).start()
        assert not ended.wait(0.5)                                   # still open: the container runs
        if end == "pod deleted":
            api.delete("v1", "pods", name, "default")
        else:
            api.patch("v1", "pods", name, "default", merge={"status": {"containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}})
        assert ended.wait(5)


def test_image_pull_back_off_is_the_kubelets_400(tmp_path: Path):
    api = ApiTwin(token="logs-token")
    ClusterEmulation(api, load_scenario("ipam-image")).install()
    with api:
        configuration = client.Configuration()
        config.load_kube_config(str(api.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration)
        with client.ApiClient(configuration) as api_client:
            core = client.CoreV1Api(api_client)
            name = pod_of(core, "name=nv-ipam-node", "dgx040")
            with pytest.raises(ApiException) as err:
                core.read_namespaced_pod_log(name, NS)
        assert (err.value.status, json.loads(err.value.body)["message"]) == (
            400, f'container "nv-ipam-node" in pod "{name}" is waiting to start: trying and failing to pull image')
