"""Link 3 of the chain: the SR-IOV Network Operator has synced the node and is not waiting on it.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.cluster_facts import CURRENT_ANNOTATION, DESIRED_ANNOTATION, STATE_ANNOTATION

pytestmark = [pytest.mark.link("operator"), pytest.mark.cluster_lists("nodes", "sriovnetworknodestates")]

NEXT_STEP = {
    "Reboot_Required": "the config daemon waits for a reboot to apply firmware — power-cycle the node "
                       "(a warm reboot does not apply NVRAM changes)",
    "Drain_Required": "the node's drain does not complete — check PodDisruptionBudgets and the operator's "
                      "drain controller",
}


def _next_step(node_object, sync_status: str, error: str) -> str:
    desired = node_object.state_annotation(DESIRED_ANNOTATION) or ""
    if desired in NEXT_STEP:
        return NEXT_STEP[desired]
    if sync_status == "Failed" or error:
        return "fix the cause in lastSyncError, then the config daemon retries"
    return "wait for the sriov-network-config-daemon to finish, then run again"


def test_node_state_synced(node_object):
    sync = node_object.state_field("status.syncStatus") or ""
    error = node_object.state_field("status.lastSyncError") or ""
    desired = node_object.state_annotation(DESIRED_ANNOTATION)
    assert sync == "Succeeded" and not error, (
        f"SriovNetworkNodeState {node_object} syncStatus expected Succeeded vs {sync or '(empty: not stable yet)'}"
        f" (desired-state {desired}{f', lastSyncError {error!r}' if error else ''}): "
        f"{_next_step(node_object, sync, error)}")


def test_node_state_idle(node_object):
    seen = {
        "Node state": node_object.annotation(STATE_ANNOTATION),
        "desired-state": node_object.state_annotation(DESIRED_ANNOTATION),
        "current-state": node_object.state_annotation(CURRENT_ANNOTATION),
    }
    busy = {k: v for k, v in seen.items() if v != "Idle"}
    step = next((NEXT_STEP[v] for v in busy.values() if v in NEXT_STEP),
                "the operator is draining or configuring the node — wait, then run again")
    assert not busy, (
        f"SR-IOV state of {node_object} expected Idle vs {', '.join(f'{k} {v}' for k, v in busy.items())}: {step}")
