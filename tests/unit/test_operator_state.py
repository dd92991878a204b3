"""Each generation of the SR-IOV operator's state reporting is recognised and judged only by what it writes.

The objects carry the annotations each generation writes (sriov-network-operator pkg/consts/constants.go at
v1.2.0: Node sriovnetwork.openshift.io/state Idle|Draining|Draining_MCP_Paused and nothing on the node state;
from v1.3.0 / Network Operator 24.4: desired-state and current-state; Network Operator 25.10+ with an external
drainer: use-external-drainer and the maintenance operator's NodeMaintenance, maintenance.nvidia.com/v1alpha1,
Ready reasons Pending|Scheduled|Cordon|WaitForPodCompletion|Draining|Ready).
"""

from pathlib import Path

import pytest
import yaml

from ibconform import operator_state as ops

IMAGE = "nvcr.io/nvidia/mellanox/sriov-network-operator-config-daemon:{tag}"


def node(state=None):
    return {"metadata": {"name": "dgx030", "annotations": {ops.STATE_ANNOTATION: state} if state else {}}}


def node_state(desired=None, current=None, external=False):
    notes = {ops.DESIRED_ANNOTATION: desired, ops.CURRENT_ANNOTATION: current,
             ops.EXTERNAL_DRAINER_ANNOTATION: "true" if external else None}
    return {"metadata": {"name": "dgx030", "annotations": {k: v for k, v in notes.items() if v}}}


def daemon_pod(tag):
    return {"metadata": {"labels": {"app": "sriov-network-config-daemon"}},
            "spec": {"containers": [{"image": IMAGE.format(tag=tag)}]}}


def maintenance(reason):
    return {"metadata": {"name": "nvidia-operator-dgx030"}, "spec": {"nodeName": "dgx030"},
            "status": {"conditions": [{"type": "Ready", "status": "True" if reason == "Ready" else "False",
                                       "reason": reason}]}}


@pytest.mark.parametrize(("states", "pods", "expected"), [
    ([node_state("Idle", "Idle")], [], ops.DRAIN_CONTROLLER),
    ([node_state(), node_state("Idle")], [], ops.DRAIN_CONTROLLER),
    ([node_state("Reboot_Required", external=True)], [], ops.EXTERNAL_DRAINER),
    ([node_state()], [daemon_pod("network-operator-24.1.0-rc.3")], ops.LEGACY),
    ([node_state()], [daemon_pod("network-operator-v25.10.0")], ops.DRAIN_CONTROLLER),
    ([node_state()], [daemon_pod("v1.2.0")], ops.LEGACY),
    ([node_state()], [daemon_pod("v1.3.0")], ops.DRAIN_CONTROLLER),
    ([node_state()], [daemon_pod("latest")], ops.LEGACY),
    ([], [], ops.LEGACY),
    (["garbage", None], [None, "x"], ops.LEGACY),
])
def test_the_generation_is_read_from_annotations_else_from_image_tags(states, pods, expected):
    assert ops.generation(states, pods).name == expected


LEGACY, DRAIN, EXTERNAL = (ops.Generation(n, "") for n in (ops.LEGACY, ops.DRAIN_CONTROLLER, ops.EXTERNAL_DRAINER))


@pytest.mark.parametrize(("gen", "node_obj", "state", "maintenances", "busy"), [
    # a legacy operator writes only the Node's state: no current-state is ever asked of it
    (LEGACY, node("Idle"), node_state(), [], {}),
    (LEGACY, node("Draining"), node_state(), [], {"Node state": "Draining"}),
    (LEGACY, node("Draining_MCP_Paused"), node_state(), [], {"Node state": "Draining_MCP_Paused"}),
    (DRAIN, node("Idle"), node_state("Idle", "Idle"), [], {}),
    (DRAIN, node("Reboot_Required"), node_state("Reboot_Required", "DrainComplete"), [],
     {"Node state": "Reboot_Required", "desired-state": "Reboot_Required", "current-state": "DrainComplete"}),
    (DRAIN, node("Idle"), node_state("Idle"), [], {"current-state": "None"}),   # the drain controller makes it
    (EXTERNAL, node("Idle"), node_state("Idle", external=True), [], {}),
    (EXTERNAL, node("Drain_Required"), node_state("Drain_Required", external=True), [maintenance("Draining")],
     {"Node state": "Drain_Required", "desired-state": "Drain_Required",
      "held by": "NodeMaintenance nvidia-operator-dgx030 (Draining)"}),
    (EXTERNAL, node("Idle"), node_state("Idle", "Idle", external=True), [maintenance("Ready")],
     {"held by": "NodeMaintenance nvidia-operator-dgx030 (Ready)"}),
])
def test_busy_reads_only_the_signals_of_the_generation(gen, node_obj, state, maintenances, busy):
    assert ops.busy(gen, node_obj, state, maintenances) == busy


def test_maintenances_are_matched_by_node_name():
    other = {"spec": {"nodeName": "dgx031"}}
    assert ops.maintenance_for("dgx030", [maintenance("Draining"), other, None, "x"]) == [maintenance("Draining")]
    assert ops.maintenance_for("dgx030", None) == []


CAPTURES = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "captures" /
                           "sriovnetworknodestates-several-releases.yaml").read_text())


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c["source"].split()[0].rsplit("/", 3)[-3])
def test_real_node_states_of_several_releases(capture):
    gen = ops.generation([capture["state"]], [])
    assert gen.name == capture["generation"]
    node_obj = {"metadata": {"annotations": capture["node_annotations"]}}
    assert ops.busy(gen, node_obj, capture["state"], []) == capture["busy"]
