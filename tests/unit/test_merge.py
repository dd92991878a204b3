"""Merging the shards of a fleet run: each node once (from the shard that finished it), cluster-wide checks once
(a failure kept over a pass), and refusals for shards of different runs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ibconform import merge
from ibconform.errors import UsageError

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "results.schema.json").read_text())
SHA = "a" * 64


def result(item: str, node: str | None, outcome: str = "passed", link: str = "firmware") -> dict:
    return {"id": item, "check": item.split("[")[0].removeprefix("test_"), "node": node, "hca": None, "link": link,
            "outcome": outcome, "message": None if outcome == "passed" else f"{item} {outcome}", "evidence": [],
            "remediation": None}


def shard(path: str, results: list[dict], *, complete: bool = True, finished: str = "2026-12-04T10:00:00+00:00",
          cluster: str = "pod1", sha: str = SHA, exit_status: int = 0) -> merge.Shard:
    run = {"tool": "0.2.0", "cluster": cluster, "bundle": f"{path}/bundle", "inventory": "inv.yaml",
           "inventory_sha256": sha, "read_only": True, "complete": complete, "interrupted": not complete,
           "nodes": 1, "started": "2026-12-04T09:59:00+00:00", "finished": finished, "exit_status": exit_status,
           "counts": {"passed": 0, "failed": 0, "error": 0, "skipped": 0}}
    return merge.Shard(Path(path), {"format": "ibconform-results/v1", "run": run, "nodes": [], "results": results})


def test_each_node_once_and_cluster_checks_once_a_failure_kept():
    a = shard("a", [result("test_ipam_controller[c]", None), result("test_x[n1]", "n1")])
    b = shard("b", [result("test_ipam_controller[c]", None, "failed", "ipam"), result("test_x[n2]", "n2", "failed")],
              exit_status=1)
    document = merge.merge([a, b])
    assert [r["id"] for r in document["results"]] == ["test_ipam_controller[c]", "test_x[n1]", "test_x[n2]"]
    assert document["results"][0]["outcome"] == "failed"
    assert document["run"]["counts"] == {"passed": 1, "failed": 2, "error": 0, "skipped": 0}
    assert document["run"]["exit_status"] == 1 and document["run"]["nodes"] == 2
    assert [n["name"] for n in document["nodes"]] == ["n1", "n2"]
    assert [s["nodes"] for s in document["run"]["shards"]] == ["n1", "n2"]
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def test_a_shard_retried_after_it_was_killed_counts_once_from_the_run_that_finished():
    killed = shard("killed", [result("test_x[n1]", "n1", "error")], complete=False)
    retried = shard("retried", [result("test_x[n1]", "n1")], finished="2026-12-04T10:05:00+00:00")
    for order in ([killed, retried], [retried, killed]):
        document = merge.merge(order)
        assert [(r["id"], r["outcome"]) for r in document["results"]] == [("test_x[n1]", "passed")]
        assert document["run"]["complete"] is True and document["run"]["exit_status"] == 0
    assert next(s for s in merge.merge([killed, retried])["run"]["shards"] if s["dir"] == "killed")["superseded"] \
        == ["n1"]


def test_an_interrupted_shard_makes_the_fleet_incomplete():
    document = merge.merge([shard("a", [result("test_x[n1]", "n1")], complete=False, exit_status=2),
                            shard("b", [result("test_x[n2]", "n2")])])
    assert document["run"]["complete"] is False and document["run"]["interrupted"] is True
    assert document["run"]["exit_status"] == 2


@pytest.mark.parametrize(("other", "message"), [
    ({"cluster": "pod2"}, "the shards judged different clusters (pod1, pod2): merge the shards of one run"),
    ({"sha": "b" * 64}, "the shards ran different inventories"),
])
def test_shards_of_different_runs_are_refused(other, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        merge.merge([shard("a", []), shard("b", [], **other)])


def test_a_folder_without_results_is_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"no results.json \(expected the output folder of an ibconform run\)$"):
        merge.load(tmp_path)
    (tmp_path / "results.json").write_text('{"format": "other"}')
    with pytest.raises(UsageError, match="format: expected 'ibconform-results/v1', got 'other'"):
        merge.load(tmp_path)


def test_junit_keeps_each_kept_testcase_once_with_its_time_and_synthesizes_the_missing(tmp_path):
    import io
    import xml.etree.ElementTree as ET

    from ibconform.report import junit

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = shard(str(tmp_path / "a"), [result("test_ipam_controller[c]", None), result("test_x[n1]", "n1")])
    b = shard(str(tmp_path / "b"), [result("test_ipam_controller[c]", None, "failed", "ipam"),
                                    result("test_x[n2]", "n2", "failed"), result('test_x["n&3"]', "n3")],
              exit_status=1)
    with open(tmp_path / "a" / "junit.xml", "wb") as out:
        junit.write(out, [(r, 0.25) for r in a.results], {"passed": 2})
    with open(tmp_path / "b" / "junit.xml", "wb") as out:
        junit.write(out, [(r, 0.5) for r in b.results], {"passed": 1, "failed": 2})
    text = (tmp_path / "b" / "junit.xml").read_bytes()      # b's is cut short inside its second testcase
    (tmp_path / "b" / "junit.xml").write_bytes(text[:text.index(b"test_x[n2]") + 20])
    document = merge.merge([a, b])
    out = io.BytesIO()
    merge.write_junit(document, [a, b], out)
    root = ET.fromstring(out.getvalue())
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "0")
    cases = [(c.get("name"), c.find("failure") is not None, c.get("time")) for c in suite.iter("testcase")]
    # the failed cluster-wide result is b's (copied with its time): a's passing testcase of it is not the kept one;
    # b's cut testcase and the one after it are synthesized (no time)
    assert sorted(cases) == [("test_ipam_controller[c]", True, "0.500"), ('test_x["n&3"]', False, None),
                             ("test_x[n1]", False, "0.250"), ("test_x[n2]", True, None)]


def test_the_fleet_keeps_the_evidence_of_what_did_not_pass_only(tmp_path):
    passed = {**result("test_x[n1]", "n1"), "evidence": ["sriov_numvfs: '8'"]}
    failed = {**result("test_x[n2]", "n2", "failed"), "evidence": ["sriov_numvfs: '0'"]}
    (tmp_path / "results.json").write_text(json.dumps(shard(str(tmp_path), [passed, failed]).document))
    document = merge.merge([merge.load(tmp_path)])
    assert [(r["id"], r["evidence"]) for r in document["results"]] == [
        ("test_x[n1]", []), ("test_x[n2]", ["sriov_numvfs: '0'"])]     # the shard's results.json keeps them all
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["evidence"] == ["sriov_numvfs: '8'"]


def _guids(path: Path, node: str, guids: list[str]) -> None:
    """A shard's vf-guids.json: ibp24s0 (0000:18:00.0) of ``node`` with these VF node GUIDs."""
    path.mkdir(parents=True, exist_ok=True)
    rows = [[g, vf, f"0000:18:00.{vf + 1}", "node"] for vf, g in enumerate(guids)]
    (path / "vf-guids.json").write_text(json.dumps({"format": "ibconform-vf-guids/v1", "pfs": [
        {"node": node, "iface": "ibp24s0", "pci": "0000:18:00.0", "guids": rows}]}))


def _unique(node: str) -> dict:
    return {**result(f"test_vf_guids_unique[{node}-ibp24s0]", node, link="vfs"), "hca": "ibp24s0"}


def test_a_guid_shared_across_shards_fails_both_from_their_vf_guids(tmp_path):
    shared, own = "02:aa:00:00:00:00:00:01", "02:aa:00:00:00:00:00:02"
    for name, node, guids in (("a", "n1", [shared, own]), ("b", "n2", ["02:aa:00:00:00:00:00:03", shared]),
                              ("c", "n3", [own])):
        _guids(tmp_path / name, node, guids)
    (tmp_path / "c" / "vf-guids.json").write_text('{"format": "ibconform-vf-guids/v1", "pfs": [{"node": "n3"}]}')
    shards = [shard(str(tmp_path / name), [_unique(node)]) for name, node in (("a", "n1"), ("b", "n2"), ("c", "n3"))]
    results = {r["node"]: r for r in merge.merge(shards)["results"]}
    assert results["n1"]["outcome"] == results["n2"]["outcome"] == "failed"
    assert results["n1"]["message"].startswith(
        f"VF GUIDs of ibp24s0 (0000:18:00.0) expected unique in the fleet vs {shared} of n1 ibp24s0 VF 0 "
        "(0000:18:00.1) node GUID also n2 ibp24s0 VF 1 (0000:18:00.2) node GUID:")
    assert results["n1"]["remediation"]["id"] == "vf-guid-duplicate"
    # c's file is unreadable: its GUIDs are unknown (n1's second GUID is not compared with them), its verdict stays
    assert results["n3"]["outcome"] == "passed" and merge.vf_guids.load(tmp_path / "c") is None


def test_a_shard_superseded_for_a_node_lends_none_of_its_guids(tmp_path):
    shared = "02:aa:00:00:00:00:00:01"
    _guids(tmp_path / "killed", "n1", [shared])          # the attempt killed: n1's GUIDs as they were then
    _guids(tmp_path / "retried", "n1", ["02:aa:00:00:00:00:00:09"])
    _guids(tmp_path / "other", "n2", [shared])
    killed = shard(str(tmp_path / "killed"), [_unique("n1")], complete=False)
    retried = shard(str(tmp_path / "retried"), [_unique("n1")], finished="2026-12-04T11:00:00+00:00")
    other = shard(str(tmp_path / "other"), [_unique("n2")])
    results = merge.merge([killed, retried, other])["results"]
    assert [(r["node"], r["outcome"]) for r in results] == [("n1", "passed"), ("n2", "passed")]
