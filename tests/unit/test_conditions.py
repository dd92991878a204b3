"""The Node condition of a verdict: its status, reason and message, and lastTransitionTime kept while the status
stays the same."""

import pytest

from ibconform.conditions import CONDITION_TYPE, condition, previous_conditions, reason_of

NOW, EARLIER = "2026-12-04T10:00:00Z", "2026-12-01T08:00:00Z"
PASS = {"name": "dgx030", "verdict": "pass", "root_cause": None}
PENDING = {"name": "dgx031", "verdict": "fail", "root_cause": {
    "check": "firmware_vfs_committed", "outcome": "failed", "remediation": "firmware-change-pending",
    "message": "NUM_OF_VFS on ibp24s0 (0000:18:00.0) Current 16 vs Next Boot 8: firmware change pending"}}
UNREACHABLE = {"name": "dgx007", "verdict": "fail", "root_cause": {
    "check": "node_identity", "outcome": "error", "remediation": "node-unreachable", "message": "dgx007 unreachable"}}


@pytest.mark.parametrize(("verdict", "status", "reason"), [
    (PASS, "True", "AllChecksPassed"),
    (PENDING, "False", "FirmwareChangePending"),
    (UNREACHABLE, "Unknown", "NodeUnreachable"),
    ({"name": "x", "root_cause": {"check": "probe_scheduled", "outcome": "failed"}}, "False", "ProbeScheduled"),
])
def test_status_and_reason(verdict, status, reason):
    cond = condition(verdict, None, NOW)
    assert (cond["type"], cond["status"], cond["reason"]) == (CONDITION_TYPE, status, reason)
    assert cond["lastTransitionTime"] == cond["lastHeartbeatTime"] == NOW


def test_the_transition_time_is_kept_while_the_status_stays():
    same = {"type": CONDITION_TYPE, "status": "False", "lastTransitionTime": EARLIER}
    assert condition(PENDING, same, NOW)["lastTransitionTime"] == EARLIER
    assert condition(PASS, same, NOW)["lastTransitionTime"] == NOW


def test_the_message_is_the_finding_capped():
    long = {**PENDING, "root_cause": {**PENDING["root_cause"], "message": "x" * 5000}}
    assert condition(PENDING, None, NOW)["message"].startswith("firmware_vfs_committed: NUM_OF_VFS on ibp24s0")
    assert len(condition(long, None, NOW)["message"]) == 1024


def test_previous_conditions_from_a_list_of_nodes_untrusted():
    nodes = {"items": [{"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"},
                                                                           {"type": CONDITION_TYPE, "status": "True"}]}},
                       {"metadata": {"name": "b"}, "status": {"conditions": "garbage"}}, None, "x"]}
    assert previous_conditions(nodes) == {"a": {"type": CONDITION_TYPE, "status": "True"}}
    assert previous_conditions(None) == {}


@pytest.mark.parametrize(("name", "reason"), [("firmware-change-pending", "FirmwareChangePending"),
                                              ("probe_scheduled", "ProbeScheduled"), ("", "Unknown")])
def test_reasons_are_camel_case(name, reason):
    assert reason_of(name) == reason
