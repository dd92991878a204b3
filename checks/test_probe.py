"""Link workload of the chain: a workload asking for every VF and the GPUs of a node is scheduled there and
admitted by its kubelet (what happens after admission is link attach's).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.probe_facts import ProbeFacts

pytestmark = [pytest.mark.link("workload"), pytest.mark.cluster_lists("nodes")]

#: outcomes that prove the pod was scheduled and admitted, whatever came after (at levels from start on, a pod that
#: times out bound to its node was admitted: why it did not run is link attach's to say)
ADMITTED = ("scheduled", "running", "completed")


def test_probe_scheduled(node_object):
    record = node_object.probe()
    if record is None:
        pytest.skip("read-only run: no probe pod was created")
    assert record, f"probe pod for {node_object} expected vs none created: the node is not in the cluster"
    outcome = record.get("outcome")
    admitted = outcome in ADMITTED or (
        outcome == "timeout" and record.get("level") != "schedule" and ProbeFacts(node_object, record).admitted)
    assert admitted, (
        f"probe pod {record.get('pod')} on {node_object} expected scheduled vs {outcome}: {record.get('message')}")
