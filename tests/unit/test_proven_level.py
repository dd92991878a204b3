"""A node's proven probe level: the highest level whose link passed with nothing bad up to it."""

import pytest

from ibconform.report.rootcause import proven_level


def _r(link: object, outcome: str = "passed") -> dict:
    return {"link": link, "outcome": outcome}


HEALTHY = [_r("firmware"), _r("vfs"), _r("workload"), _r("attach"), _r("rdma")]


@pytest.mark.parametrize(("results", "level"), [
    (HEALTHY, "rdma"),
    ([*HEALTHY, _r("nccl")], "nccl"),
    ([*HEALTHY, _r("nccl", "failed")], "rdma"),            # a bad link after a level does not undo it
    ([*HEALTHY, _r("attach", "error")], "schedule"),       # a bad result at a level's own link breaks it
    ([*HEALTHY, _r("firmware", "failed")], None),          # a bad link before every level: nothing proven
    ([_r("firmware"), _r("attach"), _r("rdma")], None),    # schedule's link never passed: nothing above counts
    ([*HEALTHY, _r("bogus-link", "failed")], "rdma"),      # an unknown link ranks after the chain
    ([*HEALTHY, _r(["not", "a", "link"], "failed")], "rdma"),  # an untrusted shard's odd link does not crash
    ([], None),
])
def test_proven_level(results: list[dict], level: str | None) -> None:
    assert proven_level(results) == level
