"""Verdicts as Node conditions (`ibconform run --publish-conditions`) on the twin: each judged node, and no other, gets
InfiniBandSRIOVReady through one strategic-merge patch of nodes/status (the kubelet's conditions kept), a second
run with the same verdict keeps lastTransitionTime, none is written under --read-only, and an account without
deploy/rbac/conditions.yaml is told which node it could not write."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
import yaml

from ibconform.conditions import CONDITION_TYPE
from ibconform.twin import Twin
from ibconform.twin.apiserver.rbac import service_account
from tests.e2e.conftest import ibconform

WRITES = ("POST", "PUT", "PATCH", "DELETE")
RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    with Twin("demo", tmp_path_factory.mktemp("twin-conditions")) as twin:
        yield twin


def _condition(twin: Twin, node: str) -> dict:
    obj = twin.api.get("v1", "Node", node)
    return next(c for c in obj["status"]["conditions"] if c["type"] == CONDITION_TYPE)


def _run(twin: Twin, out, *extra: str):
    before = len(twin.api.requests)
    proc = ibconform("run", "-i", str(twin.inventory_path), "--out", str(out), "--publish-conditions", *extra)
    return proc, twin.api.requests[before:]


def test_each_judged_node_gets_its_condition_and_a_second_run_keeps_the_transition(demo, tmp_path):
    proc, requests = _run(demo, tmp_path / "first")
    assert proc.returncode == 1, proc.stderr
    assert "conditions: InfiniBandSRIOVReady written on 2 of 2 nodes" in proc.stdout
    node_writes = [(r.method, r.resource, r.name) for r in requests if r.method in WRITES and r.resource != "pods"]
    assert sorted(node_writes) == [("PATCH", "nodes/status", "dgx030"), ("PATCH", "nodes/status", "dgx031")]
    healthy, pending = _condition(demo, "dgx030"), _condition(demo, "dgx031")
    assert (healthy["status"], healthy["reason"]) == ("True", "AllChecksPassed")
    assert (pending["status"], pending["reason"]) == ("False", "FirmwareChangePending")
    assert pending["message"].startswith("firmware_vfs_committed: NUM_OF_VFS on ibp24s0 (0000:18:00.0) Current 16 "
                                         "vs Next Boot 8: firmware change pending")
    assert {c["type"] for c in demo.api.get("v1", "Node", "dgx030")["status"]["conditions"]} >= {"Ready"}
    time.sleep(1.1)                                   # the API's times have a one-second resolution
    proc, _ = _run(demo, tmp_path / "second")
    assert proc.returncode == 1, proc.stderr
    again = _condition(demo, "dgx031")
    assert again["lastTransitionTime"] == pending["lastTransitionTime"]
    assert again["lastHeartbeatTime"] != pending["lastHeartbeatTime"]


def test_a_node_outside_the_run_is_not_written(demo, tmp_path):
    proc, requests = _run(demo, tmp_path / "one", "--nodes", "dgx031")
    assert "conditions: InfiniBandSRIOVReady written on 1 of 1 nodes" in proc.stdout, proc.stdout
    node_writes = [(r.method, r.resource, r.name) for r in requests if r.method in WRITES and r.resource != "pods"]
    assert node_writes == [("PATCH", "nodes/status", "dgx031")]


def test_never_under_read_only(demo, tmp_path):
    before = len(demo.api.requests)
    proc = ibconform("run", "-i", str(demo.inventory_path), "--out", str(tmp_path / "ro"), "--read-only",
                     "--publish-conditions")
    assert proc.returncode == 4
    assert proc.stderr.strip().endswith("--publish-conditions writes Node conditions and cannot go with --read-only")
    assert [r for r in demo.api.requests[before:] if r.method in WRITES] == []


def test_an_account_without_the_conditions_role_is_told_per_node_and_one_with_it_writes(demo, tmp_path):
    token = secrets.token_urlsafe(32)
    demo.api.add_user(token, service_account("network-operator", "ibconform"))
    for name in ("readonly", "probe"):
        for doc in yaml.safe_load_all((RBAC_DIR / f"{name}.yaml").read_text()):
            if doc:
                demo.api.put(doc)
    kubeconfig = str(demo.api.write_kubeconfig(tmp_path / "sa.kubeconfig", context="sa", token=token))
    proc, _ = _run(demo, tmp_path / "without", "--kubeconfig", kubeconfig)
    assert proc.returncode == 1
    assert "conditions: InfiniBandSRIOVReady written on 0 of 2 nodes" in proc.stdout
    assert ("not written: dgx030: patch nodes (cluster-wide): forbidden (403): the account may not patch nodes "
            "(cluster-wide) — apply deploy/rbac/conditions.yaml") in proc.stdout
    for doc in yaml.safe_load_all((RBAC_DIR / "conditions.yaml").read_text()):
        if doc:
            demo.api.put(doc)
    proc, _ = _run(demo, tmp_path / "with", "--kubeconfig", kubeconfig)
    assert "conditions: InfiniBandSRIOVReady written on 2 of 2 nodes" in proc.stdout
