"""The twin's Kubernetes API server, driven only through the official client and a written kubeconfig."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from ibconform.twin.apiserver.api_twin import ApiTwin

NS = "network-operator"
TOKEN = "twin-test-token"


def pod(name: str, namespace: str = NS, labels: dict | None = None, node: str | None = None,
        phase: str | None = None) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                 "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    if node:
        obj["spec"]["nodeName"] = node
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def api_client(twin: ApiTwin, tmp_path, token: str | None = "keep") -> client.ApiClient:
    """A client from the kubeconfig the twin writes (with its user's token replaced, unless "keep")."""
    kubeconfig = twin.write_kubeconfig(tmp_path / "kubeconfig")
    if token != "keep":
        doc = yaml.safe_load(kubeconfig.read_text())
        doc["users"][0]["user"] = {"token": token} if token else {}
        kubeconfig.write_text(yaml.safe_dump(doc))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def status_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


@pytest.fixture(scope="module")
def twin():
    with ApiTwin(token=TOKEN) as api:
        api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield api
        assert api.internal_errors == []


@pytest.fixture
def api(twin, tmp_path):
    with api_client(twin, tmp_path) as api_client_:
        yield api_client_


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)


def test_discovery_shows_core_v1_and_the_real_crds(api, core, custom):
    core_resources = {r.name: r for r in core.get_api_resources().resources}
    assert core.get_api_resources().group_version == "v1"
    assert core_resources["pods"].namespaced and not core_resources["nodes"].namespaced
    assert {"pods/status", "pods/binding", "nodes/status", "events", "configmaps", "namespaces"} <= set(core_resources)
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert groups["sriovnetwork.openshift.io"].preferred_version.group_version == "sriovnetwork.openshift.io/v1"
    assert {"mellanox.com", "nv-ipam.nvidia.com"} <= set(groups)
    ncp = {r.name: r for r in custom.get_api_resources("mellanox.com", "v1alpha1").resources}["nicclusterpolicies"]
    assert (ncp.kind, ncp.namespaced, ncp.short_names) == ("NicClusterPolicy", False, ["ncp"])
    crds = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert {"sriovnetworknodestates.sriovnetwork.openshift.io", "sriovnetworknodepolicies.sriovnetwork.openshift.io",
            "sriovibnetworks.sriovnetwork.openshift.io", "sriovnetworks.sriovnetwork.openshift.io",
            "sriovoperatorconfigs.sriovnetwork.openshift.io", "sriovnetworkpoolconfigs.sriovnetwork.openshift.io",
            "nicclusterpolicies.mellanox.com", "ippools.nv-ipam.nvidia.com", "cidrpools.nv-ipam.nvidia.com"} <= crds


def test_node_create_read_list_patch_delete(core):
    created = core.create_node({"metadata": {"name": "dgx030", "labels": {"nvidia.com/gpu.present": "true"}},
                                "status": {"allocatable": {"nvidia.com/resibp24s0": "8"}}})
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.resource_version
    assert created.status.allocatable == {"nvidia.com/resibp24s0": "8"}          # nodes register with status
    assert [n.metadata.name for n in core.list_node(label_selector="nvidia.com/gpu.present=true").items] == ["dgx030"]
    patched = core.patch_node("dgx030", {"metadata": {"labels": {"sriovnetwork.openshift.io/device-plugin": "Enabled"}},
                                         "status": {"allocatable": {"nvidia.com/resibp24s0": "0"}}})
    assert patched.metadata.labels == {"nvidia.com/gpu.present": "true", "sriovnetwork.openshift.io/device-plugin": "Enabled"}
    assert patched.status.allocatable == {"nvidia.com/resibp24s0": "8"}          # status only through /status
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    status = core.patch_node_status("dgx030", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert [c.type for c in status.status.conditions] == ["Ready"]
    assert core.read_node("dgx030").metadata.uid == created.metadata.uid
    core.delete_node("dgx030")
    with pytest.raises(ApiException) as err:
        core.read_node("dgx030")
    assert err.value.status == 404
    assert status_body(err.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                      "message": 'nodes "dgx030" not found', "reason": "NotFound",
                                      "details": {"name": "dgx030", "kind": "nodes"}, "code": 404}


def test_pod_lifecycle_with_binding_status_and_conflicts(core):
    created = core.create_namespaced_pod(NS, pod("probe", labels={"app": "probe"}))
    assert created.status.phase == "Pending" and created.spec.node_name is None
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(NS, pod("probe"))
    assert (err.value.status, status_body(err.value)["reason"]) == (409, "AlreadyExists")
    assert status_body(err.value)["message"] == 'pods "probe" already exists'

    stale = created.to_dict()
    core.patch_namespaced_pod("probe", NS, {"metadata": {"labels": {"tier": "test"}}})
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_pod("probe", NS, client.ApiClient().sanitize_for_serialization(
            client.V1Pod(**{k: v for k, v in stale.items() if k in ("metadata", "spec")})))
    assert (err.value.status, status_body(err.value)["reason"]) == (409, "Conflict")

    binding = client.V1Binding(metadata=client.V1ObjectMeta(name="probe"),
                               target=client.V1ObjectReference(kind="Node", name="dgx031"))
    response = core.create_namespaced_pod_binding("probe", NS, binding, _preload_content=False)
    assert response.status == 201 and json.loads(response.data)["status"] == "Success"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("probe", NS, binding, _preload_content=False)
    assert err.value.status == 409 and "already assigned to node" in status_body(err.value)["message"]
    assert core.read_namespaced_pod("probe", NS).spec.node_name == "dgx031"

    running = core.patch_namespaced_pod_status("probe", NS, {"status": {"phase": "Running"}})
    assert running.status.phase == "Running"
    assert core.patch_namespaced_pod("probe", NS, {"status": {"phase": "Failed"}}).status.phase == "Running"

    core.delete_namespaced_pod("probe", NS, body=client.V1DeleteOptions(propagation_policy="Foreground",
                                                                         grace_period_seconds=0))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("probe", NS)
    assert status_body(err.value)["message"] == 'pods "probe" not found'
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("no-such-namespace", pod("p", namespace="no-such-namespace"))
    assert (err.value.status, status_body(err.value)["message"]) == (404, 'namespaces "no-such-namespace" not found')


def test_label_and_field_selectors(twin, core):
    ns = "selectors"
    twin.put(pod("ipam-a", ns, {"app": "nv-ipam", "tier": "node"}, node="dgx030", phase="Running"))
    twin.put(pod("ipam-b", ns, {"app": "nv-ipam"}, node="dgx031", phase="Pending"))
    twin.put(pod("dp-a", ns, {"app": "sriov-device-plugin"}, node="dgx030", phase="Running"))
    twin.put(pod("probe", ns, {}, phase="Pending"))
    twin.put({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "probe.1", "namespace": ns},
              "involvedObject": {"kind": "Pod", "name": "probe", "namespace": ns}, "reason": "FailedScheduling",
              "type": "Warning", "message": "0/2 nodes are available: 2 Insufficient nvidia.com/resibp24s0."})
    twin.put({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "dgx030.1", "namespace": ns},
              "involvedObject": {"kind": "Node", "name": "dgx030"}, "reason": "Rebooted", "type": "Warning"})

    def names(**kwargs) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(ns, **kwargs).items]

    assert names(label_selector="app=nv-ipam") == ["ipam-a", "ipam-b"]
    assert names(label_selector="app!=nv-ipam") == ["dp-a", "probe"]
    assert names(label_selector="app in (nv-ipam, sriov-device-plugin),tier") == ["ipam-a"]
    assert names(label_selector="app notin (nv-ipam)") == ["dp-a", "probe"]
    assert names(label_selector="!app") == ["probe"]
    assert names(field_selector="spec.nodeName=dgx030") == ["dp-a", "ipam-a"]
    assert names(field_selector="spec.nodeName=") == ["probe"]
    assert names(field_selector="status.phase=Running,metadata.name!=dp-a") == ["ipam-a"]
    assert names(field_selector="metadata.namespace=selectors", label_selector="tier=node") == ["ipam-a"]
    events = core.list_namespaced_event(ns, field_selector="involvedObject.kind=Pod,involvedObject.name=probe")
    assert [e.reason for e in events.items] == ["FailedScheduling"]
    assert [e.metadata.name for e in core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.namespace={ns}").items] == ["probe.1"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, field_selector="spec.containers=x")
    assert (err.value.status, status_body(err.value)["message"]) == (400, "field label not supported: spec.containers")


def test_1200_pods_come_in_three_pages_of_at_most_500(twin, core):
    ns = "paged"
    for i in range(1200):
        twin.put(pod(f"pod-{i:04d}", ns))
    twin.clear_requests()
    seen, sizes, token = [], [], None
    while True:
        page = core.list_namespaced_pod(ns, limit=500, _continue=token)
        sizes.append(len(page.items))
        seen += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sizes == [500, 500, 200]
    assert sorted(seen) == [f"pod-{i:04d}" for i in range(1200)] and len(set(seen)) == 1200
    lists = [r for r in twin.requests if r.verb == "list" and r.path == f"/api/v1/namespaces/{ns}/pods"]
    assert len(lists) == 3 and all(r.status == 200 and r.query["limit"] == "500" for r in lists)
    assert not [r for r in twin.requests if r.is_write]
    raw = json.loads(core.list_namespaced_pod(ns, limit=500, _preload_content=False).data)
    assert (raw["kind"], raw["apiVersion"], raw["metadata"]["remainingItemCount"]) == ("PodList", "v1", 700)
    assert "kind" not in raw["items"][0]                           # built-in List items carry no kind


def test_custom_resources_list_get_and_status(twin, custom):
    twin.put({"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
              "metadata": {"name": "dgx030", "namespace": NS}, "status": {"syncStatus": "Succeeded"}})
    twin.put({"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
              "metadata": {"name": "nic-cluster-policy"}, "spec": {"nvIpam": {"image": "nvidia-k8s-ipam"}}})
    twin.put({"apiVersion": "nv-ipam.nvidia.com/v1alpha1", "kind": "IPPool", "metadata": {"name": "pool1", "namespace": NS},
              "spec": {"subnet": "192.168.0.0/16", "perNodeBlockSize": 100}})

    states = custom.list_namespaced_custom_object("sriovnetwork.openshift.io", "v1", NS, "sriovnetworknodestates",
                                                  limit=500)
    assert (states["kind"], states["apiVersion"]) == ("SriovNetworkNodeStateList", "sriovnetwork.openshift.io/v1")
    assert [(s["kind"], s["metadata"]["name"], s["status"]["syncStatus"]) for s in states["items"]] == [
        ("SriovNetworkNodeState", "dgx030", "Succeeded")]
    policies = custom.list_cluster_custom_object("mellanox.com", "v1alpha1", "nicclusterpolicies")
    assert [(p["metadata"]["name"], "namespace" in p["metadata"]) for p in policies["items"]] == [
        ("nic-cluster-policy", False)]
    assert policies["items"][0]["metadata"]["generation"] == 1
    pools = custom.list_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", NS, "ippools")
    assert [p["spec"]["subnet"] for p in pools["items"]] == ["192.168.0.0/16"]

    custom.patch_namespaced_custom_object_status("nv-ipam.nvidia.com", "v1alpha1", NS, "ippools", "pool1", {
        "status": {"allocations": [{"nodeName": "dgx030", "startIP": "192.168.0.1", "endIP": "192.168.0.100"}]}})
    patched = custom.patch_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", NS, "ippools", "pool1",
                                                    {"spec": {"perNodeBlockSize": 50}, "status": None})
    assert patched["spec"]["perNodeBlockSize"] == 50 and patched["metadata"]["generation"] == 2
    assert patched["status"]["allocations"][0]["nodeName"] == "dgx030"     # main resource ignores status
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", NS, "ippools", "pool1", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert (err.value.status, status_body(err.value)["reason"]) == (415, "UnsupportedMediaType")


def test_watch_sees_added_modified_deleted_and_resumes(core):
    ns = "watched"
    core.create_namespace({"metadata": {"name": ns}})
    start_rv = core.list_namespaced_pod(ns).metadata.resource_version

    def writer():
        time.sleep(0.2)
        core.create_namespaced_pod(ns, pod("w1", ns))
        core.patch_namespaced_pod("w1", ns, {"metadata": {"labels": {"seen": "yes"}}})
        core.delete_namespaced_pod("w1", ns)

    thread = threading.Thread(target=writer)
    thread.start()
    events = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_pod, ns, timeout_seconds=10):
        events.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            stream.stop()
    thread.join()
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    began = time.monotonic()
    replay = [(e["type"], e["object"]["metadata"]["name"]) for e in watch.Watch().stream(
        core.list_namespaced_pod, ns, resource_version=start_rv, timeout_seconds=1, deserialize=False)]
    assert replay == events and 0.9 < time.monotonic() - began < 5   # resumed from a resourceVersion, then timed out
    selected = [e["type"] for e in watch.Watch().stream(core.list_namespaced_pod, ns, resource_version=start_rv,
                                                        label_selector="seen=yes", timeout_seconds=1)]
    assert selected == ["ADDED", "DELETED"]                        # entering/leaving the selector


def test_finalizers_hold_deletion_and_owners_cascade(twin, core):
    ns = "lifecycle"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("held", ns)
    assert core.read_namespaced_config_map("held", ns).metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    assert twin.get("v1", "ConfigMap", "held", ns) is None

    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    core.create_namespaced_pod(ns, {**pod("owned", ns), "metadata": {"name": "owned", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Background")
    assert twin.list("pods", ns) == []


def test_request_log_and_on_change_see_http_writes_only(twin, core):
    changes = []
    twin.on_change(lambda kind, obj: changes.append((kind, obj["kind"], obj["metadata"]["name"])))
    twin.clear_requests()
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cm", NS, {"data": {"a": "2"}})
    core.patch_namespaced_config_map("cm", NS, {"data": {"a": "2"}})          # no change: no event, same RV
    core.delete_namespaced_config_map("cm", NS)
    twin.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "direct", "namespace": NS}})
    core.list_namespaced_config_map(NS)
    assert changes == [("ADDED", "ConfigMap", "cm"), ("MODIFIED", "ConfigMap", "cm"), ("DELETED", "ConfigMap", "cm")]
    assert [(r.method, r.verb, r.status) for r in twin.requests] == [
        ("POST", "create", 201), ("PATCH", "patch", 200), ("PATCH", "patch", 200), ("DELETE", "delete", 200),
        ("GET", "list", 200)]


def test_wrong_or_missing_token_is_401(twin, tmp_path):
    for token in ("wrong", None):
        with api_client(twin, tmp_path, token=token) as api, pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_pod(NS)
        assert err.value.status == 401
        assert status_body(err.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_unknown_group_and_missing_crd_are_404(tmp_path):
    with ApiTwin(crds=["ippools"]) as bare, api_client(bare, tmp_path) as api:
        custom = client.CustomObjectsApi(api)
        assert custom.list_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", "default", "ippools")["items"] == []
        for group, version, plural in (("nope.example.com", "v1", "things"),
                                       ("mellanox.com", "v1alpha1", "nicclusterpolicies")):
            with pytest.raises(ApiException) as err:
                custom.list_cluster_custom_object(group, version, plural)
            assert err.value.status == 404
            assert status_body(err.value)["message"] == "the server could not find the requested resource"
        bare.uninstall_crd("ippools.nv-ipam.nvidia.com")
        with pytest.raises(ApiException) as err:
            custom.list_namespaced_custom_object("nv-ipam.nvidia.com", "v1alpha1", "default", "ippools")
        assert err.value.status == 404


def test_injected_faults_fail_like_a_real_server(twin, api, core):
    def can_i(verb: str, plural: str) -> bool:
        review = {"spec": {"resourceAttributes": {"verb": verb, "resource": plural, "namespace": NS}}}
        return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed

    twin.set_fault(403, paths=r"/pods$", user="x")
    try:
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod(NS)
        core.list_node()                                           # other paths unaffected
        assert (can_i("list", "pods"), can_i("list", "configmaps")) == (False, True)
    finally:
        twin.set_fault()
    assert err.value.status == 403
    assert status_body(err.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
        "message": 'pods is forbidden: User "x" cannot list resource "pods" in API group "" in the namespace '
                   '"network-operator"', "details": {"kind": "pods"}, "code": 403}

    twin.set_fault(500, times=1, verbs=["list"])
    with pytest.raises(ApiException) as err:
        core.list_node()
    assert (err.value.status, status_body(err.value)["reason"]) == (500, "InternalError")
    assert core.list_node() is not None                            # times=1: the next call passes
    twin.set_fault(latency=0.3, paths="/nodes")
    began = time.monotonic()
    try:
        core.list_node()
    finally:
        twin.set_fault()
    assert time.monotonic() - began >= 0.3


def test_stop_ends_open_watches_and_only_loopback_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        ApiTwin(host="10.0.0.1")
    twin = ApiTwin().start()
    with api_client(twin, tmp_path) as api:
        events = []
        thread = threading.Thread(target=lambda: events.extend(
            watch.Watch().stream(client.CoreV1Api(api).list_namespace, timeout_seconds=60)), daemon=True)
        thread.start()
        time.sleep(0.3)
        began = time.monotonic()
        twin.stop()
        thread.join(timeout=5)
    assert time.monotonic() - began < 3 and not twin.running
    assert {e["object"].metadata.name for e in events} >= {"default", "kube-system"}
