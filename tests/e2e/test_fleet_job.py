"""The fleet as an Indexed Job (deploy/fleet-job.yaml), run on the faults twin as the Job controller and kubelet would
run it: the snapshot Job's pod, then each index's pod (its init container, then the entry point with the manifest's
args and env, JOB_COMPLETION_INDEX set, `parallelism` at a time), one index killed (SIGKILL, every process of the
pod) while its probe pods exist and retried, then the merge Job's pod.

Proves: the cluster is LISTed once for the whole fleet run; the merged verdicts are those of one unsharded run; the
killed shard leaves no probe pod and no duplicate result; the manifest is valid and its policies are the ones
docs/incluster.md describes. Mounts are emulated by paths: /reports is a folder standing for the ReadWriteMany volume,
/etc/ibconform/inventory.yaml the twin's inventory (which names the twin's kubeconfig: the API is reached with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml
from ClusterShell.NodeSet import NodeSet

from ibconform import inventory as inventory_mod
from ibconform.collect import cluster, probes
from tests.bundle_schema import validate_bundle
from tests.e2e.conftest import ibconform
from tests.e2e.test_incluster_job import _unknown_fields

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
DOCS = [doc for doc in yaml.safe_load_all((DEPLOY / "fleet-job.yaml").read_text()) if doc]
JOBS = {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] == "Job"}
SNAPSHOT, FLEET, MERGE = JOBS["ibconform-snapshot"], JOBS["ibconform-fleet"], JOBS["ibconform-merge"]
CONFIGMAP = next(doc for doc in DOCS if doc["kind"] == "ConfigMap")
SHARDS = FLEET["spec"]["completions"]
SCHEMA = json.loads((DEPLOY.parent / "docs" / "results.schema.json").read_text())
KILLED = 1                                     # the index whose first attempt is killed
PROBE_NAME = re.compile(r"ibconform-probe-([A-Za-z0-9.-]+?)-[0-9a-f]{6}\b")
#: what a pod's incarnation puts in kubelet's words: its sandbox id, its uid (multus' pod reference)
INCARNATION = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}\b")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(text: str, env: dict[str, str]) -> str:
    """$(VAR) as kubelet expands it: a variable defined earlier, else left as written."""
    return _VAR.sub(lambda m: env.get(m[1], m[0]), text)


@dataclass
class Pod:
    """One pod of a Job, emulated: its container's command and environment, its mounts mapped to folders."""

    name: str
    command: list[str]
    env: dict[str, str]
    init: list[tuple[list[str], dict[str, str]]]


def pod(job: dict, volume: Path, inventory: Path, index: int | None = None, attempt: int = 0) -> Pod:
    spec = job["spec"]["template"]["spec"]
    name = f"{job['metadata']['name']}-{'' if index is None else f'{index}-'}{attempt}x7k2q"
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "HOME": "/tmp", "HOSTNAME": name}
    if index is not None:     # the Job controller's own, for every container of an Indexed Job's pod
        base["JOB_COMPLETION_INDEX"] = str(index)

    def environment(container: dict) -> dict[str, str]:
        env = dict(base)
        for entry in container.get("env", []):
            source = entry.get("valueFrom", {})
            if "configMapKeyRef" in source:
                assert source["configMapKeyRef"]["name"] == CONFIGMAP["metadata"]["name"]
                value = CONFIGMAP["data"][source["configMapKeyRef"]["key"]]
            elif "fieldRef" in source:
                assert source["fieldRef"]["fieldPath"] == (
                    "metadata.annotations['batch.kubernetes.io/job-completion-index']")
                value = str(index)
            else:
                value = _expand(entry["value"], env)
            env[entry["name"]] = value
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/reports"] == "reports" and mounts["/etc/ibconform"] == "inventory"
        for key, value in env.items():   # the mounts, as folders of the test
            if value == "/etc/ibconform/inventory.yaml":
                env[key] = str(inventory)
            elif value == "/reports" or value.startswith("/reports/"):
                env[key] = str(volume) + value.removeprefix("/reports")
        return env

    container = spec["containers"][0]
    env = environment(container)
    args = [_expand(a, env) for a in container.get("args", [])]
    assert "command" not in container   # the image's entry point
    init = [(c["command"], environment(c)) for c in spec.get("initContainers", [])]
    return Pod(name, ["/bin/sh", str(ENTRYPOINT), *args], env, init)


def start(p: Pod) -> subprocess.Popen:
    for command, env in p.init:   # kubelet runs the init containers to completion first
        subprocess.run(command, env=env, check=True, timeout=30)
    return subprocess.Popen(p.command, env=p.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_pod(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the pod, as the kubelet does when the container is killed (its cgroup)."""
    pids = [proc.pid]
    frontier = [proc.pid]
    while frontier:
        kids = [k for p in frontier for k in _children(p)]
        pids += kids
        frontier = kids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for task in tasks:
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return kids


def _probe_pods(api, nodes: set[str]) -> list[str]:
    """The probe pods pinned to ``nodes`` (the twin's store: no request of the test in its log)."""
    return [p["metadata"]["name"] for p in api.list("pods", "default", label_selector=probes.PROBE_SELECTOR)
            if p["spec"].get("nodeSelector", {}).get("kubernetes.io/hostname") in nodes]


def _settled(read, pause: float = 0.3, limit: float = 15.0) -> list:
    """``read()`` once two reads ``pause`` apart agree (requests the API server had accepted have completed)."""
    deadline, last = time.monotonic() + limit, read()
    while time.monotonic() < deadline:
        time.sleep(pause)
        if (now := read()) == last:
            break
        last = now
    return last


def _verdicts(results: list[dict] | dict) -> dict[str, tuple]:
    """Item id -> (outcome, message), the probe pods' random suffix, sandbox id and uid left out (each run names its
    own pods)."""
    items = results.values() if isinstance(results, dict) else results
    return {r["id"]: (r["outcome"], INCARNATION.sub("*", PROBE_NAME.sub(r"ibconform-probe-\1-*", r["message"] or "")))
            for r in items}


@pytest.fixture(scope="module")
def fleet(faults_twin, faults_probed, tmp_path_factory):
    """The whole fleet run on the faults twin; what the tests assert on."""
    api = faults_twin.api
    volume = tmp_path_factory.mktemp("fleet") / "reports"
    volume.mkdir()
    inventory = faults_twin.inventory_path
    shards = [set(NodeSet(inventory_mod.load(inventory).shard(i, SHARDS))) for i in range(SHARDS)]
    before = len(api.requests)
    run_dir = volume / CONFIGMAP["data"]["run"]

    # the shards' init container waits while the snapshot is not there
    command, env = pod(FLEET, volume, inventory, 0).init[0]
    waiting = subprocess.Popen(command, env=env)
    time.sleep(0.5)
    assert waiting.poll() is None

    snap = start(pod(SNAPSHOT, volume, inventory))
    snap_out, snap_err = snap.communicate(timeout=120)
    assert snap.returncode == 0, snap_err
    assert waiting.wait(timeout=15) == 0
    snapshot_requests = len(api.requests) - before

    codes: dict[int, list[int]] = {}
    killed_pods: list[str] = []
    queue = list(range(SHARDS))
    parallelism = FLEET["spec"]["parallelism"]
    outputs: dict[int, tuple[str, str]] = {}
    while queue:
        wave = {i: start(pod(FLEET, volume, inventory, i, len(codes.get(i, [])))) for i in queue[:parallelism]}
        queue = queue[parallelism:]
        for index, proc in sorted(wave.items(), key=lambda kv: kv[0] != KILLED):   # the one to kill first
            if index == KILLED and index not in codes:
                deadline = time.monotonic() + 60
                while not (seen := _probe_pods(api, shards[index])) and time.monotonic() < deadline:
                    time.sleep(0.01)
                kill_pod(proc)
                killed_pods = _settled(lambda nodes=shards[index]: _probe_pods(api, nodes))   # creates in flight end
                assert seen and killed_pods, "the killed attempt had created no probe pod"
                codes[index] = [-signal.SIGKILL]
                queue.insert(0, index)      # backoffLimitPerIndex: the controller creates a new pod for the index
                continue
            out, err = proc.communicate(timeout=300)
            outputs[index] = (out, err)
            codes.setdefault(index, []).append(proc.returncode)
    merge = start(pod(MERGE, volume, inventory))
    merge_out, merge_err = merge.communicate(timeout=120)
    return {"api": api, "requests": api.requests[before:], "run_dir": run_dir, "codes": codes, "shards": shards,
            "killed_pods": killed_pods, "merge": (merge.returncode, merge_out, merge_err), "outputs": outputs,
            "reference": faults_probed, "snapshot": snap_out,
            "snapshot_requests": snapshot_requests}


def test_the_cluster_is_listed_once_for_the_whole_fleet(fleet, faults_twin):
    k8s = inventory_mod.load(faults_twin.inventory_path).model.kubernetes
    expected = Counter()
    for res in cluster.RESOURCES:
        for ns in (k8s.component_namespaces if res is cluster.PODS else
                   [k8s.namespace_of(res.component) if res.namespaced else None]):
            expected[(res.plural, ns)] += 1
    plurals = {res.plural for res in cluster.RESOURCES}
    lists = Counter((r.resource, r.namespace) for r in fleet["requests"]
                    if r.verb == "list" and r.resource in plurals
                    and not {"labelSelector", "fieldSelector", "continue"} & set(r.query))   # a List's first page
    assert lists == expected                       # once each, whatever the shard count and the retry
    assert all(v == 1 for v in expected.values())
    shards = fleet["requests"][fleet["snapshot_requests"]:]
    assert [r.path for r in shards if r.verb == "list" and r.resource in plurals
            and not {"labelSelector", "fieldSelector"} & set(r.query)] == []   # the shards LIST none of them
    assert {r.verb for r in fleet["requests"][:fleet["snapshot_requests"]]} <= {"list", None}   # the snapshot: reads


def test_merged_verdicts_equal_one_unsharded_run(fleet):
    code, _, err = fleet["merge"]
    assert code == fleet["reference"].code, err
    document = json.loads((fleet["run_dir"] / "fleet" / "results.json").read_text())
    assert _verdicts(document["results"]) == _verdicts(fleet["reference"].results)
    assert [s["dir"].rsplit("/", 1)[-1] for s in document["run"]["shards"]] == [f"shard-{i}" for i in range(SHARDS)]
    assert all(s["superseded"] == [] and s["complete"] for s in document["run"]["shards"])
    junit = ET.parse(fleet["run_dir"] / "fleet" / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == len(fleet["reference"].results)


def test_each_shard_read_the_snapshot_and_judged_its_own_nodes(fleet):
    snapshot = json.loads((fleet["run_dir"] / "snapshot" / "snapshot.json").read_text())
    schema = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for index, nodes in enumerate(fleet["shards"]):
        validate_bundle(fleet["run_dir"] / f"shard-{index}" / "bundle")
        results = json.loads((fleet["run_dir"] / f"shard-{index}" / "results.json").read_text())
        schema.validate(results)
        assert results["run"]["snapshot"]["id"] == snapshot["id"]
        assert 0 <= results["run"]["snapshot"]["age_s"] < 600
        api = results["run"]["kubernetes_api"]
        assert api.startswith(f"snapshot {snapshot['id']} (taken through kubeconfig ") and "; probes through " in api
        assert {r["node"] for r in results["results"] if r["node"]} == nodes
        assert fleet["codes"][index][-1] == results["run"]["exit_status"]


def test_a_killed_shard_leaves_no_probe_pod_and_no_duplicate(fleet):
    assert fleet["codes"][KILLED] == [-signal.SIGKILL, fleet["codes"][KILLED][-1]]
    attempts = list((fleet["run_dir"] / "attempts").iterdir())
    retry = pod(FLEET, fleet["run_dir"], fleet["run_dir"], KILLED, 1).name   # the pod that set it aside
    assert len(attempts) == 1 and re.fullmatch(rf"shard-{KILLED}-\d{{8}}T\d{{6}}Z-{retry}", attempts[0].name)
    assert not (attempts[0] / "results.json").exists()          # the killed attempt, set aside, never merged
    probes_doc = json.loads((fleet["run_dir"] / f"shard-{KILLED}" / "bundle" / "cluster" / "probes.json").read_text())
    assert sorted(probes_doc["earlier_attempts_deleted"]) == sorted(fleet["killed_pods"])
    assert fleet["api"].list("pods", "default", label_selector=probes.PROBE_SELECTOR) == []
    document = json.loads((fleet["run_dir"] / "fleet" / "results.json").read_text())
    keys = [(r["id"], r["node"]) for r in document["results"]]
    assert len(keys) == len(set(keys)) == len(fleet["reference"].results)


def test_a_snapshot_of_another_inventory_or_too_old_is_refused_in_one_line(fleet, faults_twin, tmp_path):
    snapshot = fleet["run_dir"] / "snapshot"
    other = tmp_path / "inventory.yaml"
    other.write_text(faults_twin.inventory_path.read_text() + "# edited\n")
    before = len(fleet["api"].requests)
    for inventory, extra, reason in (
            (other, (), f"inventory expected {other} vs another inventory"),
            (faults_twin.inventory_path, ("--snapshot-max-age", "0"), "expected at most 0 s (--snapshot-max-age)")):
        proc = ibconform("run", "-i", str(inventory), "--snapshot", str(snapshot), "--shard", "0/4",
                         "--out", str(tmp_path / "out"), *extra)
        assert proc.returncode == 4 and reason in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    assert fleet["api"].requests[before:] == []


# -- the manifest itself


def test_every_object_is_known_to_the_client_and_labelled_with_its_step():
    assert [f for doc in DOCS for f in _unknown_fields(doc, f"V1{doc['kind']}", doc["kind"])] == []
    steps = {doc["metadata"]["name"]: doc["metadata"]["labels"]["ibconform.io/step"] for doc in DOCS}
    assert {steps[name] for name in JOBS} == {"snapshot", "shards", "merge"}
    assert {s for n, s in steps.items() if n not in JOBS} == {"setup"}
    for job in JOBS.values():
        assert job["spec"]["template"]["metadata"]["labels"]["ibconform.io/step"] == job["metadata"]["labels"][
            "ibconform.io/step"]


def test_the_fleet_job_is_indexed_and_retried_per_index_by_kubernetes():
    spec, template = FLEET["spec"], FLEET["spec"]["template"]["spec"]
    args = template["containers"][0]["args"]
    assert spec["completionMode"] == "Indexed"
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{spec['completions']}"
    assert args[args.index("--snapshot") + 1] == "$(IBCONFORM_RUN_DIR)/snapshot"
    assert int(args[args.index("--snapshot-max-age") + 1]) >= spec["activeDeadlineSeconds"]
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["backoffLimitPerIndex"] >= 1 and "backoffLimit" not in spec
    assert spec["maxFailedIndexes"] == spec["completions"]
    assert spec["podReplacementPolicy"] == "Failed" and template["restartPolicy"] == "Never"
    rules = {(r["action"], tuple(r.get("onExitCodes", {}).get("values", ()))) for r in spec["podFailurePolicy"]["rules"]}
    assert rules == {("FailJob", (4,)), ("FailIndex", (1,)), ("Ignore", ())}
    volume = next(v for v in template["volumes"] if v["name"] == "reports")["persistentVolumeClaim"]["claimName"]
    claim = next(d for d in DOCS if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == volume)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_every_pod_runs_without_privilege():
    for job in JOBS.values():
        spec = job["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["securityContext"] == {"privileged": False, "allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["merge"], {"IBCONFORM_RUN_DIR": "{run}"}, "merge: no shard-* folder in {run}: run the fleet Job first"),
    (["snapshot"], {}, "snapshot: IBCONFORM_RUN_DIR is not set: name the fleet run's folder on the volume "
                       "(deploy/fleet-job.yaml)"),
    ([], {"IBCONFORM_RUN_DIR": "{run}", "JOB_COMPLETION_INDEX": "1x"},
     "JOB_COMPLETION_INDEX: expected a number vs '1x' (set by an Indexed Job)"),
])
def test_the_entry_point_refuses_a_fleet_step_it_cannot_do_in_one_line(tmp_path, args, env, expected):
    run = tmp_path / "fleet-01"
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "IBCONFORM_REPORTS": str(tmp_path)}
    proc = subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=60,
                          env=base | {k: v.format(run=run) for k, v in env.items()}, check=False)
    assert (proc.returncode, proc.stderr) == (4, f"ibconform-job: error: {expected.format(run=run)}\n")
