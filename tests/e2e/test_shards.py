"""A large fleet is run in shards (`ibconform run --nodes NODESET`): each shard judges only its nodes, the
shards together give exactly the verdicts of one run over every node, and `ibconform merge` makes them one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
from ClusterShell.NodeSet import NodeSet

from ibconform.twin.scenario import load as load_scenario
from tests.e2e.conftest import ibconform, run_suite, validate_bundle

NODES = NodeSet.fromlist(sorted(load_scenario("faults").nodes))
# the faults twin in two halves (dgx022 and dgx023, whose VFs share a GUID, in one: a shard compares its own nodes)
SHARDS = (str(NodeSet.fromlist(list(NODES)[:len(NODES) // 2])), str(NodeSet.fromlist(list(NODES)[len(NODES) // 2:])))
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
    failing = {r["node"] for r in faults_run.results.values() if r["outcome"] not in ("passed", "skipped")}
    passing = NodeSet.fromlist(n for n in NodeSet(",".join(SHARDS)) if n not in failing)
    assert 'href="../shard-0/report.html"' in report and str(passing) in report   # passing nodes folded
    junit = ET.parse(tmp_path / "fleet" / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == len(faults_run.results)


def test_a_shard_naming_unknown_nodes_is_one_line(faults_twin, tmp_path):
    last = len(NODES)
    proc = ibconform("run", "-i", str(faults_twin.inventory_path), "--read-only", "--out", str(tmp_path / "x"),
                     "--nodes", f"dgx[{last - 1:03d}-{last + 2:03d}]")
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines() == [
        f"ibconform: error: --nodes: dgx[{last + 1:03d}-{last + 2:03d}] not in the inventory "
        f"{faults_twin.inventory_path} (it lists {NODES})"]
    assert not (tmp_path / "x").exists()


def test_a_run_over_more_nodes_than_a_part_reads_the_cluster_once_and_is_judged_in_parts(faults_twin, faults_run, tmp_path):
    run = run_suite(faults_twin.inventory_path, tmp_path / "out", "--read-only", "--part-nodes", "7")
    assert run.code == faults_run.code, run.stderr
    assert _verdicts(run.results) == _verdicts(faults_run.results)
    assert run.stdout.splitlines()[:len(NODES)] == faults_run.stdout.splitlines()[:len(NODES)]   # per node
    count = -(-len(NODES) // 7)
    parts = [f"part-{i}" for i in range(count)]
    assert sorted(p.name for p in (run.out / "parts").iterdir()) == sorted(parts)
    judged = [{r["node"] for r in json.loads((run.out / "parts" / p / "results.json").read_text())["results"]}
              for p in parts]
    size, longer = divmod(len(NODES), count)
    cuts = [sum(size + (k < longer) for k in range(i)) for i in range(count + 1)]
    expected = [NodeSet.fromlist(list(NODES)[cuts[i]:cuts[i + 1]]) for i in range(count)]
    assert [NodeSet.fromlist(n for n in nodes if n) for nodes in judged] == expected
    for part in parts:
        validate_bundle(run.out / "parts" / part / "bundle")
    snapshot = json.loads((run.out / "snapshot" / "snapshot.json").read_text())
    assert [json.loads((run.out / "parts" / p / "bundle" / "manifest.json").read_text())["snapshot"]["id"]
            for p in parts] == [snapshot["id"]] * count      # the cluster was LISTed once, for every part
    document = json.loads((run.out / "results.json").read_text())
    assert [s["nodes"] for s in document["run"]["shards"]] == [str(n) for n in expected]
    report = (run.out / "report.html").read_text()
    assert 'href="parts/part-0/report.html"' in report


def test_evaluate_judges_only_the_nodes_asked_for(faults_run, tmp_path):
    proc = ibconform("evaluate", str(faults_run.out / "bundle"), "--out", str(tmp_path / "e"), "--nodes", "dgx00[2-3]",
                     "--quiet")
    assert proc.returncode == 1, proc.stderr
    results = json.loads((tmp_path / "e" / "results.json").read_text())["results"]
    assert {r["node"] for r in results} == {None, "dgx002", "dgx003"}
    assert _verdicts({r["id"]: r for r in results}) == _verdicts(
        {i: r for i, r in faults_run.results.items() if r["node"] in (None, "dgx002", "dgx003")})
    proc = ibconform("evaluate", str(faults_run.out / "bundle"), "--out", str(tmp_path / "f"), "--nodes", "dgx099")
    assert proc.returncode == 4 and proc.stderr.strip().splitlines()[-1].startswith(
        "ibconform: error: --nodes: dgx099 not in the inventory"), proc.stderr
