"""Server-side printing of the twin's API: the ``Table`` kube-apiserver answers ``kubectl get`` with.

Pure printers first (table-driven, cells as kube-apiserver's printers compute them), then through HTTPS with the
Accept header kubectl sends: a Table for nodes, pods and custom resources, plain JSON for a built-in the twin has no
printer for, one-row Tables in a watch.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import ssl
import urllib.error
import urllib.request

import pytest

from ibconform.twin.apiserver.api_twin import ApiTwin, bundled_crds
from ibconform.twin.apiserver.store import crd_types
from ibconform.twin.apiserver.tables import (
    NODE_COLUMNS,
    POD_COLUMNS,
    accepts_json,
    crd_printer,
    human_duration,
    json_path,
    node_cells,
    pod_cells,
    pod_conditions,
    table,
    table_version,
)
from ibconform.twin.controllers import kubelet

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                  "application/json")
NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
CREATED = "2025-03-01T11:55:00Z"          # five minutes before NOW


@pytest.mark.parametrize("seconds, shown", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (185, "3m5s"), (600, "10m"),
    (10_799, "179m"), (3 * 3600, "3h"), (4 * 3600 + 12 * 60, "4h12m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86_400, "8d"), (730 * 86_400, "2y"), (731 * 86_400, "2y1d"),
    (9 * 365 * 86_400, "9y"),
])
def test_human_duration_is_kubectls(seconds, shown):
    assert human_duration(dt.timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize("accept, version, json_ok", [
    (KUBECTL_ACCEPT, "v1", True),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "v1beta1", True),
    ("application/json", None, True),
    ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None, True),    # JSON preferred
    ("application/json;as=Table;v=v1;g=meta.k8s.io", "v1", False),
    ("application/json;as=Table;v=v2;g=meta.k8s.io", None, False),                     # no such Table version
    ("", None, True),
])
def test_content_negotiation(accept, version, json_ok):
    assert (table_version(accept), accepts_json(accept)) == (version, json_ok)


@pytest.mark.parametrize("path, found", [
    (".spec.subnet", ["10.0.0.0/8"]),
    (r".metadata.annotations.sriovnetwork\.openshift\.io/desired-state", ["Idle"]),
    (".spec.routes[1].dst", ["10.2.0.0/16"]),
    (".spec['subnet']", ["10.0.0.0/8"]),
    (".spec.gateway", []),
    (".spec.routes[5]", []),
    ("..subnet", None),
])
def test_json_path_of_printer_columns(path, found):
    obj = {"metadata": {"annotations": {"sriovnetwork.openshift.io/desired-state": "Idle"}},
           "spec": {"subnet": "10.0.0.0/8", "routes": [{"dst": "10.1.0.0/16"}, {"dst": "10.2.0.0/16"}]}}
    assert json_path(obj, path) == found


def crd_columns(plural: str) -> crd_printer:
    (crd,) = bundled_crds([plural])
    return crd_printer(crd_types(crd)[0].printer_columns)


def test_node_state_columns_come_from_the_crd():
    printer = crd_columns("sriovnetworknodestates")
    assert [c.name for c in printer.columns] == ["Name", "Sync Status", "Desired Sync State", "Current Sync State",
                                                  "Age"]
    state = {"metadata": {"name": "dgx031", "creationTimestamp": CREATED, "annotations": {
        "sriovnetwork.openshift.io/desired-state": "Reboot_Required",
        "sriovnetwork.openshift.io/current-state": "DrainComplete"}}, "status": {"syncStatus": "InProgress"}}
    assert printer.cells(state, NOW) == ["dgx031", "InProgress", "Reboot_Required", "DrainComplete", "5m"]
    fresh = {"metadata": {"name": "dgx032", "creationTimestamp": "not a time"}}
    assert printer.cells(fresh, NOW) == ["dgx032", None, None, None, "<invalid>"]     # shown <none>


def test_typed_columns_drop_values_of_another_type():
    printer = crd_columns("ippools")
    assert [(c.name, c.type) for c in printer.columns] == [
        ("Name", "string"), ("Subnet", "string"), ("Gateway", "string"), ("Block Size", "integer")]
    assert printer.cells({"metadata": {"name": "p"}, "spec": {"subnet": "192.168.0.0/16", "perNodeBlockSize": 24}},
                         NOW) == ["p", "192.168.0.0/16", None, 24]
    assert printer.cells({"metadata": {"name": "p"}, "spec": {"subnet": {"v4": 1}, "perNodeBlockSize": "24"}},
                         NOW) == ["p", '{"v4":1}', None, None]
    no_columns = crd_printer(())
    assert [c.name for c in no_columns.columns] == ["Name", "Age"]


def node(ready: str | None = "True", unschedulable: bool = False, labels: dict | None = None) -> dict:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    return {"metadata": {"name": "dgx030", "creationTimestamp": CREATED, "labels": labels or {}},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"conditions": conditions, "addresses": [{"type": "InternalIP", "address": "127.100.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4", "osImage": "Ubuntu 22.04.5 LTS",
                                    "kernelVersion": "5.15.0-1063-nvidia", "containerRuntimeVersion": ""}}}


@pytest.mark.parametrize("obj, status, roles", [
    (node(), "Ready", "<none>"),
    (node(ready="False"), "NotReady", "<none>"),
    (node(ready="Unknown", unschedulable=True), "NotReady,SchedulingDisabled", "<none>"),
    (node(ready=None), "Unknown", "<none>"),
    (node(labels={"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/gpu": "",
                  "kubernetes.io/role": "infra"}), "Ready", "gpu,infra,worker"),
])
def test_node_rows(obj, status, roles):
    assert node_cells(obj, NOW) == ["dgx030", status, roles, "5m", "v1.31.4", "127.100.0.1", "<none>",
                                    "Ubuntu 22.04.5 LTS", "5.15.0-1063-nvidia", "<unknown>"]
    assert len(NODE_COLUMNS) == len(node_cells(obj, NOW))


def pod(containers: int = 1, **status: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u", "creationTimestamp": CREATED},
            "spec": {"nodeName": "dgx030", "containers": [{"name": f"c{i}", "image": "busybox:1.36"}
                                                          for i in range(containers)]},
            "status": copy.deepcopy(status)}


def restarted(obj: dict, count: int, finished: str) -> dict:
    for state in obj["status"]["containerStatuses"]:
        state["restartCount"] = count
        state["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}
    return obj


def terminating(obj: dict) -> dict:
    obj["metadata"]["deletionTimestamp"] = CREATED
    return obj


def with_init(obj: dict, state: dict, sidecar: bool = False, ready: bool = False) -> dict:
    init = {"name": "init", "image": "busybox:1.36", **({"restartPolicy": "Always"} if sidecar else {})}
    obj["spec"]["initContainers"] = [init]
    obj["status"]["initContainerStatuses"] = [{"name": "init", "state": state, "ready": ready, "restartCount": 0,
                                               "started": sidecar}]
    return obj


RUNNING = kubelet.running(pod(), "127.100.0.1", "10.244.0.5", started=CREATED)
BACKOFF = kubelet.image_pull_backoff(pod(), "127.100.0.1", None, "ghcr.io/mellanox/nv-ipam:v0.2.0", started=CREATED)
SANDBOX = kubelet.sandbox_failed(pod(), "127.100.0.1", started=CREATED)
REJECTED = kubelet.rejected(pod(), "UnexpectedAdmissionError", "Allocate failed")


@pytest.mark.parametrize("obj, ready, status, restarts, ip", [
    (pod(**RUNNING), "1/1", "Running", "0", "10.244.0.5"),
    (pod(**BACKOFF), "0/1", "ImagePullBackOff", "0", "<none>"),
    (pod(**SANDBOX), "0/1", "ContainerCreating", "0", "<none>"),
    (pod(**REJECTED), "0/1", "UnexpectedAdmissionError", "0", "<none>"),
    (pod(phase="Pending"), "0/1", "Pending", "0", "<none>"),
    (restarted(pod(**RUNNING), 2, "2025-03-01T11:58:30Z"), "1/1", "Running", "2 (90s ago)", "10.244.0.5"),
    (terminating(pod(**RUNNING)), "1/1", "Terminating", "0", "10.244.0.5"),
    (pod(phase="Succeeded", containerStatuses=[{"name": "c0", "ready": False, "restartCount": 0, "state": {
        "terminated": {"exitCode": 0, "reason": "Completed"}}}]), "0/1", "Completed", "0", "<none>"),
    (pod(phase="Failed", containerStatuses=[{"name": "c0", "ready": False, "restartCount": 0, "state": {
        "terminated": {"exitCode": 137, "signal": 9}}}]), "0/1", "Signal:9", "0", "<none>"),
    (with_init(pod(phase="Pending"), {"waiting": {"reason": "ErrImagePull"}}), "0/1", "Init:ErrImagePull", "0",
     "<none>"),
    (with_init(pod(phase="Pending"), {"waiting": {"reason": "PodInitializing"}}), "0/1", "Init:0/1", "0", "<none>"),
    (with_init(pod(**RUNNING), {"running": {}}, sidecar=True, ready=True), "2/2", "Running", "0", "10.244.0.5"),
])
def test_pod_rows(obj, ready, status, restarts, ip):
    assert pod_cells(obj, NOW) == ["p", ready, status, restarts, "5m", ip, "dgx030", "<none>", "<none>"]
    assert len(POD_COLUMNS) == len(pod_cells(obj, NOW))


def test_finished_pod_rows_say_completed():
    assert pod_conditions(pod(**REJECTED)) == [{"type": "Completed", "status": "True", "reason": "Failed",
                                                "message": "The pod failed."}]
    assert pod_conditions(pod(**RUNNING)) is None


def test_a_table_carries_metadata_rows_and_what_include_object_asks():
    printer = crd_columns("nicclusterpolicies")
    obj = {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
           "metadata": {"name": "nic-cluster-policy", "creationTimestamp": CREATED}, "status": {"state": "ready"}}
    shown = table(printer, [obj], version="v1", include=None, list_meta={"resourceVersion": "7"}, now=NOW)
    assert shown["kind"] == "Table" and shown["apiVersion"] == "meta.k8s.io/v1"
    assert shown["metadata"] == {"resourceVersion": "7"}
    assert [c["name"] for c in shown["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert shown["rows"] == [{"cells": ["nic-cluster-policy", "ready", CREATED], "object": {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}}]
    assert table(printer, [obj], version="v1beta1", include="Object", list_meta={}, now=NOW)["rows"][0][
        "object"] == obj
    assert "object" not in table(printer, [obj], version="v1", include="None", list_meta={}, now=NOW)["rows"][0]
    assert table(printer, [obj], version="v1", include=None, list_meta={}, headers=False)["columnDefinitions"] == []


# ------------------------------------------------------------------------------------ through HTTPS

@pytest.fixture(scope="module")
def api():
    with ApiTwin(token="printing-token") as twin:
        twin.put({"apiVersion": "v1", "kind": "Node", **node()})
        twin.put({"apiVersion": "v1", "kind": "Node", **node(), "metadata": {"name": "dgx031"}})
        twin.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}})
        twin.put({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
                  "metadata": {"name": "dgx030", "namespace": "network-operator"}, "status": {"syncStatus": "Succeeded"}})
        yield twin
        assert twin.internal_errors == []


def get(api: ApiTwin, path: str, accept: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{api.url}{path}", headers={"Accept": accept,
                                                                  "Authorization": f"Bearer {api.token}"})
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_kubectl_gets_tables_of_nodes_and_custom_resources(api):
    status, body = get(api, "/api/v1/nodes?limit=500", KUBECTL_ACCEPT)
    shown = json.loads(body)
    assert status == 200 and shown["kind"] == "Table"
    assert [r["cells"][:2] for r in shown["rows"]] == [["dgx030", "Ready"], ["dgx031", "Ready"]]
    assert shown["metadata"]["resourceVersion"]
    _, body = get(api, "/api/v1/nodes/dgx031", KUBECTL_ACCEPT)
    assert [r["object"]["metadata"]["name"] for r in json.loads(body)["rows"]] == ["dgx031"]
    _, body = get(api, "/apis/sriovnetwork.openshift.io/v1/namespaces/network-operator/sriovnetworknodestates",
                  KUBECTL_ACCEPT)
    assert [r["cells"][:2] for r in json.loads(body)["rows"]] == [["dgx030", "Succeeded"]]


def test_a_resource_without_a_printer_is_plain_json_or_not_acceptable(api):
    status, body = get(api, "/api/v1/namespaces/default/configmaps", KUBECTL_ACCEPT)
    assert status == 200 and json.loads(body)["kind"] == "ConfigMapList"          # kubectl prints NAME, AGE
    status, body = get(api, "/api/v1/namespaces/default/configmaps", "application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 406 and json.loads(body)["reason"] == "NotAcceptable"
    status, body = get(api, "/api/v1/nodes", "application/json")
    assert json.loads(body)["kind"] == "NodeList"


def test_a_watch_sends_one_row_tables_with_the_columns_first_only(api):
    _, body = get(api, "/api/v1/nodes?watch=true&timeoutSeconds=1", KUBECTL_ACCEPT)
    events = [json.loads(line) for line in body.splitlines()]
    assert [(e["type"], e["object"]["kind"], len(e["object"]["rows"])) for e in events] == [
        ("ADDED", "Table", 1), ("ADDED", "Table", 1)]
    assert [len(e["object"]["columnDefinitions"]) for e in events] == [len(NODE_COLUMNS), 0]
