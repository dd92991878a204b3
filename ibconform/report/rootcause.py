"""Root causes: per node, the earliest broken link of the chain explains the failures after it."""

from __future__ import annotations

from collections import defaultdict

# The chain (docs/architecture.md#the-chain), in order; a check's link comes from its module's `pytest.mark.link`.
LINKS = ("node", "firmware", "kernel", "ports", "vfs", "operator", "device-plugin", "ipam", "workload", "attach",
         "rdma", "nccl")
BAD = ("failed", "error")


def link_rank(link: str | None) -> int:
    return LINKS.index(link) if link in LINKS else len(LINKS)


def node_verdicts(results: list[dict]) -> list[dict]:
    """``[{name, verdict, root_cause, consequences}]`` for every node that has results.

    verdict is ``pass`` (nothing failed or errored) or ``fail``; root_cause is the first bad result in
    chain order, with how many of the node's HCAs the same check fails on ("8/8 HCAs"); consequences
    are the ids of every other bad result of the node.
    """
    by_node: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        if result.get("node"):
            by_node[result["node"]].append(result)
    verdicts = []
    for name in sorted(by_node):
        # stable sort: within a link, the suite's own order (the inventory's HCA order)
        bad = sorted((r for r in by_node[name] if r["outcome"] in BAD), key=lambda r: link_rank(r.get("link")))
        root = bad[0] if bad else None
        same_check = [r for r in by_node[name] if root is not None and r["check"] == root["check"]]
        hit = sum(r["outcome"] in BAD for r in same_check)

        verdicts.append({
            "name": name,
            "verdict": "fail" if bad else "pass",
            "root_cause": None if root is None else {
                "link": root.get("link"), "check": root["check"], "id": root["id"], "outcome": root["outcome"],
                "affected": f"{hit}/{len(same_check)} HCAs" if root.get("hca") else None,
                "message": root["message"],
                "remediation": (root.get("remediation") or {}).get("id"),
            },
            "consequences": [r["id"] for r in bad[1:]],
        })
    return verdicts
