"""The cluster half end to end: the real suite, probes included, against the twin's Kubernetes API.

For each fault: which cluster-side checks fail on which node, their messages carrying the words the
twin's operator, scheduler and kubelet wrote; the healthy nodes pass every cluster check, probe included.
"""

from __future__ import annotations

import re

import pytest

from ibconform.twin import Twin
from ibconform.twin.scenario import load as load_scenario
from tests.e2e.conftest import Run, run_suite
from tests.e2e.test_node_faults import HCAS, NODE_SIDE

FAULT_NODES = sorted(load_scenario("faults").nodes)

SYNC_FAILED = {
    "dgx003": "mellanox plugin: failed to query device 0000:18:00.0: -E- Error when trying to check if NV access "
              "registers are supported exit status 3",
    "dgx004": "fail to set NumVfs for device 0000:40:00.0",
    "dgx010": "mellanox plugin: failed to query device 0000:18:00.0: signal: killed",
    "dgx011": "mellanox plugin: failed to query device 0000:5e:00.0: -E- Failed to open the device exit status 3",
    "dgx014": "fail to set NumVfs for device 0000:ce:00.0",
    "dgx019": "timed out waiting for the condition",
}
UNSCHEDULABLE = rf"FailedScheduling: 0/{len(FAULT_NODES)} nodes are available:.*\b1 Insufficient " \
                rf"nvidia\.com/resibp24s0\b.*preemption: 0/{len(FAULT_NODES)} nodes are available: 1 No preemption " \
                rf"victims found for incoming pod, {len(FAULT_NODES) - 1} Preemption is not helpful for scheduling\.$"


def _no_resources(node: str) -> dict[str, tuple[str, str]]:
    return {f"test_resource_allocatable[{node}-res{h}]": ("failed", rf"nvidia\.com/res{h}\b.*\babsent\b") for h in HCAS}


# node -> {item id: (outcome, regex the message must match)}
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    **{node: {} for node in FAULT_NODES},
    "dgx002": {
        "test_node_state_synced[dgx002]": ("failed", r"\bInProgress\b.*\bReboot_Required\b"),
        "test_node_state_idle[dgx002]": ("failed", r"Node state Reboot_Required, desired-state Reboot_Required, "
                                                   r"current-state DrainComplete"),
        **_no_resources("dgx002"),
        "test_probe_scheduled[dgx002]": ("failed", UNSCHEDULABLE),
    },
    **{node: {
        f"test_node_state_synced[{node}]": ("failed", rf"\bFailed\b.*{re.escape(error)}"),
        **_no_resources(node),
        f"test_probe_scheduled[{node}]": ("failed", UNSCHEDULABLE),
    } for node, error in SYNC_FAILED.items()},
    "dgx017": {"test_probe_scheduled[dgx017]": ("failed", UNSCHEDULABLE)},
    "dgx018": {"test_policy_matches_inventory[dgx018-ibp24s0]": ("failed", r"policy-ibp24s0-dgx018\b.*\b8\b.*\b4\b")},
    # the probe attaches no network (level start); the in-pod faults further on: tests/e2e/test_probe_levels.py
    "dgx021": {"test_attach_sandbox_created[dgx021]": ("failed", r'VF ibp64s0v0 GUID is not valid"'),
               "test_attach_networks_attached[dgx021]": ("failed", r"expected Running vs timeout: "
                                                                   r"FailedCreatePodSandBox: .*GUID is not valid")},
    "dgx027": {"test_attach_network_defined[dgx027]": ("failed", r"NetworkAttachmentDefinition default/ibnet-ibp154s0 "
                                                                 r"expected vs absent"),
               "test_attach_networks_attached[dgx027]": ("failed", r"expected Running vs timeout: FailedCreatePodSandBox"
                                                                   r": .*cannot find a network-attachment-definition")},
    "dgx028": {"test_attach_sandbox_created[dgx028]": ("failed", r'VF ibp24s0v0 GUID is not valid"'),
               "test_attach_networks_attached[dgx028]": ("failed", r"expected Running vs timeout: "
                                                                   r"FailedCreatePodSandBox: .*GUID is not valid")},
    "dgx020": {"test_probe_scheduled[dgx020]": (
        "failed", r"UnexpectedAdmissionError: Allocate failed due to requested number of devices unavailable for "
                  r"nvidia\.com/resibp24s0\. Requested: 1, Available: 0, which is unexpected$")},
}


@pytest.fixture(scope="module")
def ipam_image_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    with Twin("ipam-image", tmp_path_factory.mktemp("twin-ipam-image")) as twin:
        return run_suite(twin.inventory_path, tmp_path_factory.mktemp("ipam") / "out")


def _cluster_failures(run: Run, node: str | None) -> dict[str, dict]:
    return {i: r for i, r in run.not_passed(node).items() if r["check"] not in NODE_SIDE}


def test_each_kubernetes_fault_fails_exactly_its_cluster_checks(faults_probed):
    for node, expected in EXPECTED.items():
        seen = _cluster_failures(faults_probed, node)
        assert set(seen) == set(expected), f"{node}: unexpected {sorted(set(seen) - set(expected))}, " \
                                           f"missing {sorted(set(expected) - set(seen))}"
        for item, (outcome, pattern) in expected.items():
            assert seen[item]["outcome"] == outcome, f"{item}: {seen[item]}"
            assert re.search(pattern, seen[item]["message"]), f"{item}: {seen[item]['message']!r} !~ {pattern!r}"
    assert _cluster_failures(faults_probed, None) == {}
    assert faults_probed.results["test_probe_scheduled[dgx016]"]["outcome"] == "passed"   # tolerates the cordon


def test_the_wrong_ipam_image_fails_only_the_ipam_checks(ipam_image_run):
    failed = {(r["check"], r["node"]): r["message"] for r in ipam_image_run.results.values()
              if r["outcome"] in ("failed", "error")}
    # ... and, as their consequence, the probe's CNI ADD: nv-ipam's node daemon is not there to answer
    consequences = {(check, node) for check in ("attach_sandbox_created", "attach_networks_attached")
                    for node in ("dgx040", "dgx041")}
    assert set(failed) == {("ipam_node_pod", "dgx040"), ("ipam_node_pod", "dgx041"), ("ipam_controller", None),
                           ("nicclusterpolicy_ready", None)} | consequences
    assert all("nv-ipam" in message for key, message in failed.items() if key[0] != "attach_networks_attached")
    assert "ghcr.io/mellanox/nv-ipam:v0.2.0" in failed[("ipam_node_pod", "dgx040")]
    assert ipam_image_run.results["test_probe_scheduled[dgx040]"]["outcome"] == "passed"
