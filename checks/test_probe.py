"""Link 6 of the chain: a workload asking for every VF and the GPUs of a node is scheduled there.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

pytestmark = [pytest.mark.link("workload"), pytest.mark.cluster_lists("nodes")]


def test_probe_scheduled(node_object):
    record = node_object.probe()
    if record is None:
        pytest.skip("read-only run: no probe pod was created")
    assert record, f"probe pod for {node_object} expected vs none created: the node is not in the cluster"
    outcome = record.get("outcome")
    wanted = {"schedule": ("scheduled", "running"), "start": ("running",)}.get(record.get("level"), ("running",))
    assert outcome in wanted, (
        f"probe pod {record.get('pod')} on {node_object} expected {wanted[0]} vs {outcome}: {record.get('message')}")
