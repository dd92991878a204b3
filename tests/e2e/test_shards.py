"""A large fleet is run in shards (`ibconform run --nodes NODESET`): each shard judges only its nodes, the
shards together give exactly the verdicts of one run over every node, and `ibconform merge` makes them one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
from ClusterShell.NodeSet import NodeSet

from tests.e2e.conftest import ibconform, run_suite

SHARDS = ("dgx[001-010]", "dgx[011-020,027-033]")
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "results.schema.json").read_text())


def _verdicts(results: dict[str, dict]) -> dict[str, tuple]:
    return {i: (r["outcome"], r["message"]) for i, r in results.items()}


def test_shards_together_give_the_whole_run(faults_twin, faults_run, tmp_path):
    assert NodeSet.fromlist(r["node"] for r in faults_run.results.values() if r["node"]) == NodeSet(",".join(SHARDS))
    node_items, cluster_items = {}, _verdicts({i: r for i, r in faults_run.results.items() if r["node"] is None})
    for k, shard in enumerate(SHARDS):
        run = run_suite(faults_twin.inventory_path, tmp_path / f"shard-{k}", "--read-only", "--nodes", shard)
        assert run.code == faults_run.code, run.stderr
        nodes = {r["node"] for r in run.results.values() if r["node"]}
        assert nodes == set(NodeSet(shard))
        mine = {i: r for i, r in run.results.items() if r["node"]}
        node_items.update(_verdicts(mine))
        assert _verdicts({i: r for i, r in run.results.items() if r["node"] is None}) == cluster_items
        manifest = json.loads((run.out / "bundle" / "manifest.json").read_text())
        assert manifest["nodes"] == shard and manifest["complete"] is True
        assert [n["name"] for n in json.loads((run.out / "results.json").read_text())["nodes"]] == sorted(nodes)
    assert node_items == _verdicts({i: r for i, r in faults_run.results.items() if r["node"]})
    merged = ibconform("merge", *(str(tmp_path / f"shard-{k}") for k in range(len(SHARDS))), "--out",
                       str(tmp_path / "fleet"))
    assert merged.returncode == faults_run.code, merged.stderr
    document = json.loads((tmp_path / "fleet" / "results.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)
    assert _verdicts({r["id"]: r for r in document["results"]}) == _verdicts(faults_run.results)
    assert [n["name"] for n in document["nodes"]] == [n for n in NodeSet(",".join(SHARDS))]
    report = (tmp_path / "fleet" / "report.html").read_text()
    assert 'href="../shard-0/report.html"' in report and "dgx[016-017,020,027-033]" in report   # passing nodes folded
    junit = ET.parse(tmp_path / "fleet" / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == len(faults_run.results)


def test_a_shard_naming_unknown_nodes_is_one_line(faults_twin, tmp_path):
    proc = ibconform("run", "-i", str(faults_twin.inventory_path), "--read-only", "--out", str(tmp_path / "x"),
                     "--nodes", "dgx[019-022]")
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines() == [
        f"ibconform: error: --nodes: dgx[021-022] not in the inventory {faults_twin.inventory_path} "
        "(it lists dgx[001-020,027-033])"]
    assert not (tmp_path / "x").exists()
