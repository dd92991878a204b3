"""Link 3 of the chain: the SR-IOV Network Operator manages the node, has synced it and is not waiting on it.

Each operator generation is judged by the signals it writes (ibconform.operator_state); a reboot it waits for
is attributed to the cause the evidence shows (ibconform.reboot).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.operator_state import DESIRED_ANNOTATION, LEGACY, STATE_ANNOTATION
from ibconform.reboot import UNKNOWN

pytestmark = [pytest.mark.link("operator"), pytest.mark.cluster_lists("nodes", "sriovnetworknodestates")]

DRAIN_STUCK = ("the node's drain does not complete — check PodDisruptionBudgets and the drain controller's log "
               "(sriov-network-operator, or the Network Operator's with an external drainer)")


def _next_step(node_object, requests: set[str], sync_status: str, error: str) -> str:
    """What to do for a node the operator has not finished with, first proven cause first."""
    if "Reboot_Required" in requests:
        return f"the config daemon waits for a reboot: {node_object.reboot_cause()}"
    if requests & {"Draining", "Draining_MCP_Paused"} and node_object.generation().name == LEGACY:
        cause = node_object.reboot_cause()    # that daemon drains the node itself, to reboot it or reconfigure it
        if not cause.startswith(UNKNOWN):
            return f"the config daemon drains the node to reboot it: {cause}"
    if requests & {"Drain_Required", "Draining", "Draining_MCP_Paused"}:
        return DRAIN_STUCK
    if sync_status == "Failed" or error:
        return "fix the cause in lastSyncError, then the config daemon retries"
    return node_object.stuck_cause() or (
        "the config daemon is still applying the policies — wait for syncStatus Succeeded, then run again")


def test_node_state_synced(node_object):
    unmanaged = node_object.unmanaged()
    assert unmanaged is None, unmanaged
    sync = node_object.state_field("status.syncStatus") or ""
    error = node_object.state_field("status.lastSyncError") or ""
    requests = {node_object.annotation(STATE_ANNOTATION), node_object.state_annotation(DESIRED_ANNOTATION)}
    desired = next((r for r in requests if r and r != "Idle"), None)
    assert sync == "Succeeded" and not error, (
        f"SriovNetworkNodeState {node_object} syncStatus expected Succeeded vs {sync or '(empty: not stable yet)'}"
        f"{f' ({desired})' if desired else ''}{f' (lastSyncError {error!r})' if error else ''}: "
        f"{_next_step(node_object, requests, sync, error)}")


def test_node_state_idle(node_object):
    unmanaged = node_object.unmanaged()
    assert unmanaged is None, unmanaged
    generation = node_object.generation()
    busy = node_object.busy()
    assert not busy, (
        f"SR-IOV state of {node_object} expected Idle vs {', '.join(f'{k} {v}' for k, v in busy.items())} "
        f"({generation.name} operator): {_next_step(node_object, set(busy.values()), 'Succeeded', '')}")
