"""``ibconform merge SHARD_DIR... --out DIR``: one fleet verdict from the output folders of a sharded run.

Each shard (``ibconform run --nodes NODESET``, one pod of an Indexed Job, ...) judged its own nodes and, each
again, the cluster-wide checks. The merge keeps every node's results once (a node judged by two shards — a
shard retried after it was killed — counts from the complete, later one), the cluster-wide results once (a
failure wins over a pass, so no shard's finding is lost), and writes for the whole fleet:

- ``results.json`` (format ``ibconform-results/v1``: ``run.shards`` lists each shard's folder, nodes, exit
  status and completeness; ``run.bundle`` is null: each shard keeps its own bundle; the evidence of a passing
  check stays in its shard's results.json, ~200 KB per node, 1.2 GB of Python objects at 1,024 nodes);
- ``junit.xml`` (one testcase per check item, the shards' own testcases);
- ``report.html``: the fleet report, whose size grows with the failing nodes, not with the fleet: the verdict,
  the failing nodes by link of the chain, passing nodes folded into NodeSets per shard, root causes grouped across the
  fleet, and a link to each shard's full report.

Verdicts equal those of one unsharded run over the same nodes (tests/e2e/test_shards.py). A shard sees only its
own nodes, so the one fleet-wide check, ``vf_guids_unique``, is judged again here over the GUIDs every shard found
(its ``vf-guids.json``, ``fleet_wide``): a GUID used on nodes of two shards fails both, as in one run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from ClusterShell.NodeSet import NodeSet

from ibconform import __version__, vfs
from ibconform.bundle import now
from ibconform.errors import UsageError
from ibconform.report import fleet, junit, remediation, rootcause, vf_guids
from ibconform.report.results import RESULTS_FORMAT, one_result_per_line
from ibconform.untrusted import d, lst

BAD = rootcause.BAD


@dataclass(frozen=True)
class Shard:
    """One shard's output folder and its results.json."""

    path: Path
    document: dict

    @property
    def run(self) -> dict:
        return d(self.document.get("run"))

    @cached_property
    def results(self) -> list[dict]:
        return [r for r in lst(self.document.get("results")) if isinstance(r, dict)]

    @cached_property
    def nodes(self) -> list[str]:
        return sorted({str(r["node"]) for r in self.results if r.get("node")})

    @property
    def settled(self) -> tuple[bool, str]:
        """How far this shard got: complete before interrupted, then the later finish."""
        return bool(self.run.get("complete")) and not self.run.get("interrupted"), str(self.run.get("finished") or "")


def load(path: Path) -> Shard:
    """A shard's output folder; UsageError (one line) when it holds no readable results.json."""
    try:
        document = json.loads((path / "results.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no results.json (expected the output folder of an ibconform run)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}/results.json: unreadable ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        raise UsageError(f"{path}/results.json: format: expected {RESULTS_FORMAT!r}, got "
                         f"{d(document).get('format')!r}")
    for result in lst(document.get("results")):
        if isinstance(result, dict) and result.get("outcome") == "passed":
            result["evidence"] = []   # kept in the shard's own results.json: a fleet's would not fit in memory
    return Shard(path, document)


def merge(shards: list[Shard]) -> dict:
    """The fleet's results document from the shards' (and their vf-guids.json, for ``fleet_wide``)."""
    clusters = {s.run.get("cluster") for s in shards}
    if len(clusters) > 1:
        raise UsageError(f"the shards judged different clusters ({', '.join(sorted(map(str, clusters)))}): "
                         "merge the shards of one run")
    inventories = {s.run.get("inventory_sha256") for s in shards}
    if len(inventories) > 1:
        raise UsageError("the shards ran different inventories (their inventory_sha256 differ): merge the shards "
                         "of one run")
    owner = _node_owners(shards)
    results, cluster_items = [], {}
    for shard in shards:
        for result in shard.results:
            node = result.get("node")
            if node:
                if owner[node] is shard:
                    results.append(result)
                continue
            kept = cluster_items.get(result.get("id"))
            if kept is None or (result.get("outcome") in BAD and kept.get("outcome") not in BAD):
                cluster_items[result.get("id")] = result
    results = fleet_wide([*cluster_items.values(), *results], shards, owner)
    counts = {o: sum(r.get("outcome") == o for r in results) for o in ("passed", "failed", "error", "skipped")}
    runs = [s.run for s in shards]
    worst = max((int(r.get("exit_status") or 0) for r in runs if r.get("exit_status") not in (0, 1)), default=None)
    run = {
        "tool": __version__, "cluster": clusters.pop(), "bundle": None,
        "inventory": runs[0].get("inventory"), "inventory_sha256": inventories.pop(),
        "read_only": all(r.get("read_only") for r in runs),
        "complete": all(s.settled[0] for s in shards if any(owner[n] is s for n in s.nodes)),
        "interrupted": any(r.get("interrupted") for s, r in zip(shards, runs, strict=True)
                           if any(owner[n] is s for n in s.nodes)),
        "nodes": len(owner), "started": min(str(r.get("started") or now()) for r in runs), "finished": now(),
        "exit_status": worst if worst is not None else (1 if counts["failed"] or counts["error"] else 0),
        "counts": counts,
        "shards": [{"dir": str(s.path), "nodes": str(NodeSet.fromlist(s.nodes)),
                    "exit_status": s.run.get("exit_status"), "complete": s.run.get("complete"),
                    "interrupted": s.run.get("interrupted", False),
                    "superseded": [n for n in s.nodes if owner[n] is not s],
                    "report": str(s.path / "report.html")} for s in shards],
    }
    return {"format": RESULTS_FORMAT, "run": run, "nodes": rootcause.node_verdicts(results), "results": results}


def fleet_wide(results: list[dict], shards: list[Shard], owner: dict[str, Shard]) -> list[dict]:
    """``results`` with ``vf_guids_unique`` judged again over the VF GUIDs of every shard (those of the nodes each
    shard owns, from its vf-guids.json); results of shards without that file stay as the shard judged them."""
    pfs: dict[tuple[str, str], tuple[str, dict[str, list[vfs.GuidOwner]]]] = {}
    for shard in shards:
        found = vf_guids.load(shard.path)
        pfs.update((key, pf) for key, pf in (found or {}).items() if owner.get(key[0]) is shard)
    index = vfs.index(own for _, own in pfs.values())
    out = []
    for result in results:
        pf = pfs.get((result.get("node"), result.get("hca")))
        if result.get("check") != "vf_guids_unique" or result.get("outcome") != "passed" or pf is None:
            out.append(result)
            continue
        pci, mine = pf
        clashes = vfs.duplicates(mine, index)
        if not clashes:
            out.append(result)
            continue
        message = vfs.not_unique(f"{result['hca']} ({pci})", clashes)
        remedy = remediation.lookup("vf_guids_unique", message)
        out.append({**result, "outcome": "failed", "message": message, "remediation": None if remedy is None else {
            "id": remedy.id, "action": remedy.action, "reference": remedy.reference}})
    return out


def _node_owners(shards: list[Shard]) -> dict[str, Shard]:
    """The shard whose results count for each node: the most settled one that judged it."""
    owner: dict[str, Shard] = {}
    for shard in shards:
        for node in shard.nodes:
            if node not in owner or shard.settled > owner[node].settled:
                owner[node] = shard
    return owner


def write(document: dict, shards: list[Shard], out: Path) -> None:
    """results.json, junit.xml and the fleet report for ``document`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(one_result_per_line(document))
    with open(out / "junit.xml", "wb") as junit:
        write_junit(document, shards, junit)
    (out / "report.html").write_text(fleet.render(document, out))


def write_junit(document: dict, shards: list[Shard], out: BinaryIO) -> None:
    """One testsuite of the shards' own testcases of the kept results (each from the shard whose result was kept,
    its time included), copied line by line (a fleet's junit.xml is tens of MB: never held whole); a kept result
    whose testcase is missing is synthesized."""
    out.write(junit.head(len(document["results"]), document["run"]["counts"]))
    kept = {id(r) for r in document["results"]}   # the result objects merge() kept, each from its own shard
    written: set[int] = set()
    for shard in shards:
        mine = {r.get("id"): r for r in shard.results}
        try:
            with open(shard.path / "junit.xml", "rb") as lines:
                for line in lines:
                    result = mine.get(junit.name_of(line))
                    if result is not None and id(result) in kept and id(result) not in written:
                        written.add(id(result))
                        out.write(line if line.endswith(b"</testcase>\n") else junit.testcase(result))
        except OSError:
            pass  # what it held is synthesized below
    for result in document["results"]:
        if id(result) not in written:
            out.write(junit.testcase(result))
    out.write(junit.TAIL)
