"""The cluster snapshot of a fleet run (ibconform/collect/snapshot.py): what each object is cut to, which node it is
filed under, what stands for the other nodes in every shard, and which snapshots a run refuses.

Objects have the shapes kube-apiserver serves (a DaemonSet pod's ownerReferences, a Node's status.images), and the
SR-IOV operator's node-state annotations (sriov-network-operator pkg/consts/constants.go)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ibconform import operator_state as ops
from ibconform.collect import cluster
from ibconform.collect import snapshot as snap
from ibconform.errors import UsageError
from ibconform.inventory import parse

INVENTORY = """\
format: ibconform/v1
cluster: pod1
profiles:
  b200:
    hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]
nodes:
  - {names: "dgx[001-004]", profile: b200}
"""
MANAGED = [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}]


def inventory(tmp_path: Path, text: str = INVENTORY, name: str = "inv.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return parse(text, path)


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}, "managedFields": MANAGED},
            "spec": {"unschedulable": True},
            "status": {"allocatable": {"nvidia.com/resibp24s0": "8"}, "nodeInfo": {"machineID": "abc"},
                       "addresses": [{"type": "Hostname", "address": name}], "conditions": [],
                       "images": [{"names": ["nvcr.io/x:1"], "sizeBytes": 1}], "volumesInUse": ["v"]}}


def daemon_pod(name: str, node_name: str, image: str = "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:v25.10.0") -> dict:
    return {"metadata": {"name": name, "namespace": "network-operator", "managedFields": MANAGED,
                         "labels": {"component": "nv-ipam-node"},
                         "ownerReferences": [{"kind": "DaemonSet", "name": "nv-ipam-node"}]},
            "spec": {"nodeName": node_name, "volumes": [{"name": "cni"}],
                     "containers": [{"name": "nv-ipam-node", "image": image, "env": [{"name": "A"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def controller_pod(node_name: str) -> dict:
    return {"metadata": {"name": "nv-ipam-controller-7d9", "namespace": "network-operator",
                         "labels": {"component": "nv-ipam-controller"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "nv-ipam-controller-7d"}]},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "nvcr.io/x/nvidia-k8s-ipam:v1"}]},
            "status": {"phase": "Running"}}


def state(name: str, **annotations: str) -> dict:
    return {"metadata": {"name": name, "namespace": "network-operator", "annotations": annotations},
            "spec": {"interfaces": []}, "status": {"syncStatus": "Succeeded"}}


@pytest.mark.parametrize(("plural", "obj", "expected"), [
    ("nodes", node("dgx001"), {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "dgx001", "labels": {"kubernetes.io/hostname": "dgx001"}},
        "spec": {"unschedulable": True},
        "status": {"allocatable": {"nvidia.com/resibp24s0": "8"}, "nodeInfo": {"machineID": "abc"},
                   "addresses": [{"type": "Hostname", "address": "dgx001"}], "conditions": []}}),
    ("pods", daemon_pod("p", "dgx001"), {
        "metadata": {"name": "p", "namespace": "network-operator", "labels": {"component": "nv-ipam-node"},
                     "ownerReferences": [{"kind": "DaemonSet", "name": "nv-ipam-node"}]},
        "spec": {"nodeName": "dgx001",
                 "containers": [{"name": "nv-ipam-node", "image": "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:v25.10.0"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    ("sriovnetworknodepolicies", {"metadata": {"name": "p", "managedFields": MANAGED}, "spec": {"numVfs": 8}},
     {"metadata": {"name": "p"}, "spec": {"numVfs": 8}}),
])
def test_prune_keeps_what_the_checks_read(plural, obj, expected):
    assert snap.prune(plural, obj) == expected


@pytest.mark.parametrize(("plural", "obj", "expected"), [
    ("nodes", node("dgx001"), "dgx001"),
    ("sriovnetworknodestates", state("dgx002"), "dgx002"),
    ("pods", daemon_pod("p", "dgx003"), "dgx003"),
    ("pods", controller_pod("dgx003"), None),                      # a Deployment's pod is cluster-wide
    ("pods", {**daemon_pod("p", "x"), "spec": {}}, None),          # not bound yet
    ("nodes", node("../etc"), None),                               # never a path
    ("ippools", {"metadata": {"name": "pool1"}}, None),
])
def test_node_of(plural, obj, expected):
    assert snap.node_of(plural, obj) == expected


def _take(tmp_path: Path, pages: dict[str, list[list[dict]]], errors: dict[str, str] | None = None) -> snap.Snapshot:
    """A snapshot written from these pages (plural -> pages of objects), as snapshot.take writes it."""
    inv = inventory(tmp_path)
    root = tmp_path / "snap"
    writer = snap._Writer(root)
    for res in cluster.RESOURCES:
        for page in pages.get(res.plural, [[]]):
            writer.page(res, "network-operator", {"metadata": {"resourceVersion": "42"}, "items": page})
    errors = errors or {}
    (root / "errors.json").write_text(json.dumps(errors))
    meta = {"format": snap.FORMAT, "id": "20261205080000-abcdef", "cluster": "pod1", "inventory": str(inv.path),
            "inventory_sha256": snap.inventory_sha256(inv), "taken": snap.now(), "finished": snap.now(),
            "nodes": len(writer.nodes),
            "lists": {p: {k: v for k, v in r.items() if k != "namespace"} for p, r in writer.lists.items()
                      if p not in errors}}
    (root / "snapshot.json").write_text(json.dumps(meta))
    return snap.open_snapshot(root, inv)


def test_a_shard_reads_its_nodes_the_cluster_wide_objects_and_the_summaries(tmp_path):
    pages = {
        "nodes": [[node("dgx001"), node("dgx002")], [node("dgx003"), node("dgx004")]],   # two pages
        "sriovnetworknodestates": [[state("dgx001", **{ops.DESIRED_ANNOTATION: "Idle"}),
                                    state("dgx003", **{ops.EXTERNAL_DRAINER_ANNOTATION: "true"})]],
        "pods": [[daemon_pod("a", "dgx001"), daemon_pod("b", "dgx003", "nvcr.io/x/nvidia-k8s-ipam:old"),
                  controller_pod("dgx004")]],
        "ippools": [[{"metadata": {"name": "pool1"}}]],
    }
    snapshot = _take(tmp_path, pages)
    assert sorted(p.name for p in (snapshot.root / "nodes").iterdir()) == [
        "dgx001.jsonl", "dgx002.jsonl", "dgx003.jsonl", "dgx004.jsonl"]
    shard = parse(INVENTORY.replace("dgx[001-004]", "dgx[001-002]"), tmp_path / "inv.yaml")
    lists, errors = snap.read_lists(snapshot, shard)
    assert errors == {}
    assert [o["metadata"]["name"] for o in lists["nodes"]["items"]] == ["dgx001", "dgx002"]
    assert lists["nodes"]["metadata"]["resourceVersion"] == "42"
    assert [o["metadata"]["name"] for o in lists["ippools"]["items"]] == ["pool1"]
    # dgx003's external drainer and old nv-ipam image reach every shard as summaries; its pods and state do not
    states = lists["sriovnetworknodestates"]["items"]
    assert ops.generation(states, lists["pods"]["items"]).name == ops.EXTERNAL_DRAINER
    assert [(s["metadata"]["name"], "spec" in s) for s in states] == [("dgx001", False), ("dgx003", False),
                                                                       ("dgx001", True)]
    assert [s["metadata"]["annotations"].get(snap.SUMMARY_ANNOTATION) for s in states] == ["true", "true", None]
    pods = lists["pods"]["items"]
    assert [(p["metadata"]["name"], p["spec"].get("nodeName")) for p in pods] == [
        ("a", None), ("b", None), ("nv-ipam-controller-7d9", "dgx004"), ("a", "dgx001")]


def test_a_list_that_failed_stays_an_error_in_every_shard(tmp_path):
    snapshot = _take(tmp_path, {"nodes": [[node("dgx001")]]},
                     {"nodemaintenances": "list nodemaintenances.maintenance.nvidia.com (cluster-wide): not found (404)"})
    lists, errors = snap.read_lists(snapshot, inventory(tmp_path))
    assert "nodemaintenances" not in lists and "(404)" in errors["nodemaintenances"]


def test_a_damaged_line_is_an_error_of_the_lists_it_may_hold(tmp_path):
    snapshot = _take(tmp_path, {"nodes": [[node("dgx001")]]})
    with open(snapshot.root / "nodes" / "dgx001.jsonl", "a") as f:
        f.write("{not json\n")
    lists, errors = snap.read_lists(snapshot, inventory(tmp_path))
    assert set(snap.NODE_BOUND) <= set(errors) and not set(snap.NODE_BOUND) & set(lists)
    assert errors["nodes"] == (f"snapshot {snapshot.root}/nodes/dgx001.jsonl line 2: not a JSON object: the snapshot "
                               "is damaged — take a new one")
    assert "ippools" in lists


def _meta(root: Path, **changes: object) -> None:
    meta = json.loads((root / "snapshot.json").read_text())
    (root / "snapshot.json").write_text(json.dumps({**meta, **changes}))


def _ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


@pytest.mark.parametrize(("change", "expected"), [
    ({"cluster": "pod2"}, "cluster expected pod1 (the inventory's) vs pod2: take a new one"),
    ({"inventory_sha256": "0" * 64}, "inventory expected {inv} vs another inventory"),
    ({"taken": _ago(7200)}, "s ago, expected at most 3600 s (--snapshot-max-age) vs older: take a new one"),
    ({"taken": _ago(-3600)}, "s in the future: check the clocks"),
    ({"taken": "yesterday"}, "taken/id unreadable"),
    ({"format": "ibconform-snapshot/v9"}, "format expected 'ibconform-snapshot/v1' vs 'ibconform-snapshot/v9'"),
])
def test_a_snapshot_of_another_run_is_refused_in_one_line(tmp_path, change, expected):
    snapshot = _take(tmp_path, {})
    _meta(snapshot.root, **change)
    inv = inventory(tmp_path)
    with pytest.raises(UsageError) as refused:
        snap.open_snapshot(snapshot.root, inv)
    assert expected.format(inv=inv.path) in str(refused.value) and "\n" not in str(refused.value)


def test_an_unfinished_or_absent_snapshot_is_refused(tmp_path):
    inv = inventory(tmp_path)
    (tmp_path / "half").mkdir()
    for where, state in ((tmp_path / "half", "not finished (no snapshot.json)"), (tmp_path / "none", "absent")):
        with pytest.raises(UsageError) as refused:
            snap.open_snapshot(where, inv)
        assert str(refused.value) == (f"snapshot {where}: {state}: take a new one: ibconform snapshot -i {inv.path} "
                                      "--out <new folder>")


def test_every_attempt_of_a_shard_shares_its_probe_prefix(tmp_path):
    snapshot = _take(tmp_path, {})
    first, prefix = snap.probe_run_id(snapshot, "dgx[001-002]")
    again, same = snap.probe_run_id(snapshot, "dgx[001-002]")
    other = snap.probe_run_id(snapshot, "dgx[003-004]")[1]
    assert prefix == same != other and first != again and first.startswith(prefix)
    assert len(first) <= 63 and first.rsplit("-", 1)[-1] != prefix   # a label value; pod names keep a fresh suffix
