"""The twin's scheduler shortcuts give what filtering every node gives: a pod pinned to named nodes is tried
on those first, the store finds a node's pods and a namespace's objects without a scan, and a pod left
Unschedulable is tried again when something frees room, in namespace/name order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.controllers import scheduler
from ibconform.twin.scenario import parse as parse_scenario
from tests.unit.test_twin_cluster import SCENARIO, Cluster, start, wait_for

HOST = scheduler.HOSTNAME_LABEL
GPU = "nvidia.com/gpu"
FULL = ("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")


def node(name: str, hostname: str | None = None, gpus: int = 8, unschedulable: bool = False) -> dict:
    labels = {HOST: hostname or name} if hostname != "" else {}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"unschedulable": unschedulable},
            "status": {"allocatable": {"pods": "110", GPU: str(gpus)}}}


def pod(gpus: int = 0, selector: str | None = None, terms: list[dict] | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "resources": {"requests": {GPU: str(gpus)}}}]}
    if selector is not None:
        spec["nodeSelector"] = {HOST: selector}
    if terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def by_hostname(*values: str) -> dict:
    return {"matchExpressions": [{"key": HOST, "operator": "In", "values": list(values)}]}


def by_name(*values: str) -> dict:
    return {"matchFields": [{"key": "metadata.name", "operator": "In", "values": list(values)}]}


def every_node(pod: dict, nodes: list[dict], bound: dict[str, list[dict]]) -> tuple[str | None, dict]:
    """What kube-scheduler decides filtering every node (the twin's scheduler before its shortcut)."""
    verdicts, feasible = {}, []
    for obj in nodes:
        name = obj["metadata"]["name"]
        verdict = scheduler.filter_node(pod, obj, bound.get(name, []))
        if verdict is None:
            feasible.append((sum(not scheduler.terminated(p) for p in bound.get(name, [])), name))
        else:
            verdicts[name] = verdict
    return (min(feasible)[1], {}) if feasible else (None, verdicts)


NODES = [node("n1"), node("n2", "h2"), node("n3", ""), node("n4", gpus=2), node("n5", unschedulable=True)]


@pytest.mark.parametrize(("spec", "names"), [
    (pod(), None),
    (pod(selector="n1"), ["n1"]),
    (pod(selector="h2"), ["n2"]),                                # the hostname label, not the name
    (pod(selector="n2"), []),
    (pod(terms=[by_hostname("n1", "h2", "n3")]), ["n1", "n2"]),
    (pod(terms=[by_name("n3"), by_hostname("n4")]), ["n3", "n4"]),
    (pod(terms=[by_name("n3"), {"matchExpressions": [{"key": "x", "operator": "Exists"}]}]), None),
    (pod(terms=[{}]), []),                                       # an empty term matches no node
    (pod(selector="n1", terms=[by_name("n1", "n4")]), ["n1"]),
])
def test_pinned_nodes_are_those_named_by_hostname_or_name(spec, names):
    pinned = scheduler.pinned_nodes(spec, NODES)
    assert (None if pinned is None else [n["metadata"]["name"] for n in pinned]) == names


def test_a_pinned_pod_that_fits_nowhere_gets_every_nodes_verdict():
    bound = {"n1": [pod(gpus=8)]}
    target, verdicts = scheduler.schedule(pod(gpus=1, selector="n1"), NODES, lambda name: bound.get(name, []))
    assert target is None and set(verdicts) == {"n1", "n2", "n3", "n4", "n5"}
    assert scheduler.failure_message(pod(gpus=1), verdicts) == (
        "0/5 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) were unschedulable, 3 node(s) didn't "
        "match Pod's node affinity/selector. preemption: 0/5 nodes are available: 1 No preemption victims found for "
        "incoming pod, 4 Preemption is not helpful for scheduling.")


NAMES = ["n1", "n2", "n3", "n4"]
values = st.lists(st.sampled_from([*NAMES, "h1", "h2", "zz"]), min_size=0, max_size=3)
expressions = st.one_of(
    st.builds(lambda v: {"key": HOST, "operator": "In", "values": v}, values),
    st.builds(lambda v: {"key": HOST, "operator": "NotIn", "values": v}, values),
    st.builds(lambda v: {"key": "rack", "operator": "In", "values": v}, st.lists(st.sampled_from(["a", "b"]))),
    st.just({"key": "rack", "operator": "Exists"}))
fields = st.builds(lambda op, v: {"key": "metadata.name", "operator": op, "values": v},
                   st.sampled_from(["In", "NotIn"]), values)
terms = st.lists(st.builds(lambda e, f: {k: v for k, v in (("matchExpressions", e), ("matchFields", f)) if v},
                           st.lists(expressions, max_size=2), st.lists(fields, max_size=1)), max_size=3)
nodes = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([None, "", "h1", "h2", "n1"]),
                           st.sampled_from(["a", "b", None]), st.integers(0, 8), st.booleans()),
                 min_size=0, max_size=4, unique_by=lambda t: t[0])


@settings(max_examples=400, deadline=None)
@given(nodes=nodes, gpus=st.integers(0, 8), selector=st.sampled_from([None, "n1", "h2", "zz"]),
       terms=st.one_of(st.none(), terms), used=st.dictionaries(st.sampled_from(NAMES), st.integers(0, 8)))
def test_the_shortcut_decides_as_filtering_every_node(nodes, gpus, selector, terms, used):
    objs = []
    for name, hostname, rack, allocatable, cordoned in nodes:
        obj = node(name, hostname, allocatable, cordoned)
        if rack:
            obj["metadata"]["labels"]["rack"] = rack
        objs.append(obj)
    bound = {name: [pod(gpus=n)] for name, n in used.items()}
    wanted = pod(gpus, selector, terms)
    assert scheduler.schedule(wanted, objs, lambda name: bound.get(name, [])) == every_node(wanted, objs, bound)


# ------------------------------------------------------------------------------------------ the store

def stored_pod(name: str, namespace: str = "default", node_name: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def names(objs: list[dict]) -> list[str]:
    return [f"{o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in objs]


def test_the_store_finds_a_namespace_and_a_nodes_pods_sorted():
    api = ApiTwin()
    for namespace in ("a", "a-b", "ab", "b"):
        for name, node_name in (("z", "n1"), ("y", None), ("x", "n2")):
            api.put(stored_pod(name, namespace, node_name))
    assert names(api.peek("pods", "a")) == ["a/x", "a/y", "a/z"]
    assert names(api.peek("pods"))[:6] == ["a-b/x", "a-b/y", "a-b/z", "a/x", "a/y", "a/z"]   # by "ns/name"
    assert names(api.peek("pods", node_name="n1")) == ["a-b/z", "a/z", "ab/z", "b/z"]
    assert names(api.peek("pods", "ab", node_name="n2")) == ["ab/x"]
    api.patch("v1", "Pod", "y", "a", merge={"spec": {"nodeName": "n1"}})        # bound
    api.patch("v1", "Pod", "z", "a", merge={"spec": {"nodeName": "n2"}})        # moved
    api.delete("v1", "Pod", "z", "b")
    assert names(api.peek("pods", node_name="n1")) == ["a-b/z", "a/y", "ab/z"]
    assert names(api.peek("pods", node_name="n2")) == ["a-b/x", "a/x", "a/z", "ab/x", "b/x"]
    assert api.peek("pods", node_name="n3") == []
    api.delete("v1", "Namespace", "a")
    assert names(api.peek("pods", node_name="n2")) == ["a-b/x", "ab/x", "b/x"] and api.peek("pods", "a") == []
    assert names(api.list("pods", "ab")) == ["ab/x", "ab/y", "ab/z"]
    with pytest.raises(ValueError, match="only pods are indexed by node"):
        api.peek("nodes", node_name="n1")


# ------------------------------------------------------------------------------------------ the emulation

@pytest.fixture
def small(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh two-node healthy cluster a test may change."""
    yield from start(parse_scenario(SCENARIO.replace("dgx001", '"dgx[001-002]"'), "small"), tmp_path)


def message(cluster: Cluster, name: str) -> str | None:
    pod = cluster.core.read_namespaced_pod(name, "default")
    return next((c.message for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def failed_scheduling(cluster: Cluster, name: str) -> list[str]:
    return [e.message for e in cluster.events(name) if e.reason == "FailedScheduling"]


def test_pending_pods_are_bound_in_order_as_the_room_they_wait_for_frees(small):
    assert small.create("blocker", "dgx001", {GPU: "8"}).status.phase == "Running"
    for name in ("b-waits", "a-waits"):
        assert small.create(name, "dgx001", {GPU: "8"}).status.phase == "Pending"
        assert message(small, name) == FULL and failed_scheduling(small, name) == [FULL]
    small.core.delete_namespaced_pod("blocker", "default")
    first = wait_for(lambda: small.core.read_namespaced_pod("a-waits", "default").status.phase == "Running")
    assert first and message(small, "b-waits") == FULL and failed_scheduling(small, "b-waits") == [FULL]
    small.core.delete_namespaced_pod("a-waits", "default")
    assert wait_for(lambda: small.core.read_namespaced_pod("b-waits", "default").spec.node_name == "dgx001")


def test_a_pod_pinned_by_affinity_fits_by_its_hostname_label_or_gets_every_nodes_verdict(small):
    small.core.patch_node("dgx002", {"metadata": {"labels": {HOST: "renamed"}}})
    spec = {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {"limits": {GPU: "8"}}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [by_hostname("dgx002", "renamed")]}}}}
    small.core.create_namespaced_pod("default", {"metadata": {"name": "by-label"}, "spec": spec})
    assert wait_for(lambda: small.core.read_namespaced_pod("by-label", "default").spec.node_name) == "dgx002"
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = [
        by_name("dgx002")]
    small.core.create_namespaced_pod("default", {"metadata": {"name": "by-name"}, "spec": spec})
    assert wait_for(lambda: message(small, "by-name")) == FULL and failed_scheduling(small, "by-name") == [FULL]


def test_a_pod_marked_unschedulable_through_its_status_is_tried_when_a_pod_goes(small):
    small.core.create_namespaced_pod("default", {"metadata": {"name": "other"}, "spec": {
        "schedulerName": "other-scheduler", "containers": [{"name": "c", "image": "busybox:1.36"}]}})
    small.core.patch_namespaced_pod_status("other", "default", {"status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}]}})
    assert small.core.read_namespaced_pod("other", "default").spec.node_name is None
    assert small.create("goes", "dgx002").status.phase == "Running"
    small.core.delete_namespaced_pod("goes", "default")
    assert wait_for(lambda: small.core.read_namespaced_pod("other", "default").spec.node_name)
