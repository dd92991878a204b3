"""Root causes: per node, the earliest broken link of the chain explains the failures after it."""

from __future__ import annotations

from collections import defaultdict

# The chain (docs/architecture.md#the-chain), in order; a check's link comes from its module's `pytest.mark.link`.
LINKS = ("node", "firmware", "kernel", "ports", "vfs", "operator", "device-plugin", "ipam", "workload", "attach",
         "rdma", "nccl")
BAD = ("failed", "error")
#: The probe's levels and the link each one proves (each level includes the ones before).
LEVEL_LINKS = {"schedule": "workload", "start": "attach", "rdma": "rdma", "nccl": "nccl"}


_RANKS = {link: i for i, link in enumerate(LINKS)}


def link_rank(link: str | None) -> int:
    return _RANKS.get(link, len(LINKS)) if isinstance(link, str) else len(LINKS)


def proven_level(results: list[dict]) -> str | None:
    """The highest probe level whose link and every link before it hold on one node: the level's link has a
    passed check and no check of a link up to it failed or errored; None when not even ``schedule`` is."""
    first_bad = min((link_rank(r.get("link")) for r in results if r["outcome"] in BAD), default=len(LINKS))
    passed = {link for r in results if r["outcome"] == "passed" and isinstance(link := r.get("link"), str)}
    proven = None
    for level, link in LEVEL_LINKS.items():
        if first_bad <= link_rank(link) or link not in passed:
            break
        proven = level
    return proven


def measured(results: list[dict], key: str) -> float | None:
    """What a check of the node measured under ``key`` (``nccl_bus_bandwidth``), None when none did."""
    return next((r["measurements"][key] for r in results if key in (r.get("measurements") or {})), None)


def node_verdicts(results: list[dict]) -> list[dict]:
    """``[{name, verdict, root_cause, consequences, level, nccl_bus_bandwidth}]`` for every node that has results.

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
            "level": proven_level(by_node[name]),
            "nccl_bus_bandwidth": measured(by_node[name], "nccl_bus_bandwidth"),
        })
    return verdicts
