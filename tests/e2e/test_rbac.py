"""The shipped RBAC profiles (deploy/rbac/) are enough, and each grant is needed: the real CLI, run on the
twin under the ServiceAccount's token, the twin's API authorizing it as kube-apiserver's RBAC does.

One twin (two healthy nodes); the roles are applied one profile at a time and each run is judged on its
results and on the twin's request log.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
import yaml

from ibconform.collect import cluster
from ibconform.collect.probes import PROBE_SELECTOR
from ibconform.twin import Twin
from ibconform.twin.apiserver.rbac import service_account
from tests.e2e.conftest import Run, ibconform

RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
SA = service_account("network-operator", "ibconform")
PROBE_NS = "default"
PROBE_LINKS = ("workload", "attach", "rdma", "nccl")    # what a probe pod proves
FORBIDDEN_LIST = re.compile(r"^list \S+ (\(cluster-wide\)|in namespace \S+): forbidden \(403\): ")
# Everything probe.yaml grants except create and delete: the probe run gets as far as creating its pods.
WATCH_ONLY = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
     "metadata": {"name": "ibconform-probe-watch-only", "namespace": PROBE_NS},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
               {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "ibconform-probe-watch-only", "namespace": PROBE_NS},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ibconform-probe-watch-only"},
     "subjects": [{"kind": "ServiceAccount", "name": "ibconform", "namespace": "network-operator"}]},
]


def _at_level(inventory: Path, level: str) -> Path:
    """A copy of ``inventory`` probing to ``level``."""
    document = yaml.safe_load(inventory.read_text())
    document["probe"]["level"] = level
    path = inventory.with_name(f"inventory-{level}.yaml")
    path.write_text(yaml.safe_dump(document))
    return path


def _scenario(tmp: Path) -> Path:
    path = tmp / "scenario.yaml"
    path.write_text("format: ibconform-twin/v1\ncluster: twin-rbac\nprofile: dgx-b200\nnodes:\n  - names: 'dgx[001-002]'\n")
    return path


def _manifests(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((RBAC_DIR / f"{name}.yaml").read_text()) if doc]


def _run(inventory: Path, out: Path, *extra: str) -> Run:
    """`ibconform run`; its results by id ({} when it wrote none)."""
    proc = ibconform("run", "-i", str(inventory), "--out", str(out), *extra)
    path = out / "results.json"
    results = {r["id"]: r for r in json.loads(path.read_text())["results"]} if path.exists() else {}
    return Run(proc.returncode, proc.stdout, proc.stderr, out, results)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each run, with the requests it sent: admin read-only; then as the ServiceAccount with no role,
    read-only profile (read-only, then probing), plus a watch-only probe role, then both profiles."""
    tmp = tmp_path_factory.mktemp("rbac")
    seen: dict = {}
    with Twin(_scenario(tmp), tmp / "twin") as twin:
        api = twin.api
        token = secrets.token_urlsafe(32)
        api.add_user(token, SA)
        kubeconfig = str(api.write_kubeconfig(tmp / "ibconform.kubeconfig", context=twin.scenario.cluster, token=token))

        def run(name: str, *extra: str, level: str | None = None) -> None:
            api.clear_requests()
            inventory = _at_level(twin.inventory_path, level) if level else twin.inventory_path
            seen[name] = _run(inventory, tmp / name, *extra)
            seen[name].requests = list(api.requests)
            seen[name].left = api.list("pods", PROBE_NS, label_selector=PROBE_SELECTOR)

        run("admin", "--read-only")
        run("none", "--read-only", "--kubeconfig", kubeconfig)
        for doc in _manifests("readonly"):
            api.put(doc)
        run("readonly", "--read-only", "--kubeconfig", kubeconfig)
        run("readonly-probing", "--kubeconfig", kubeconfig)
        for doc in WATCH_ONLY:
            api.put(doc)
        run("watch-only-probing", "--kubeconfig", kubeconfig)
        for doc in reversed(WATCH_ONLY):
            api.delete(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], PROBE_NS)
        probe = _manifests("probe")
        no_log = [dict(doc, rules=[r for r in doc["rules"] if r["resources"] != ["pods/log"]]) if doc["kind"] == "Role"
                  else doc for doc in probe]
        for doc in no_log:
            api.put(doc)
        run("probe-no-log", "--kubeconfig", kubeconfig, level="rdma")
        for doc in probe:
            api.put(doc)
        run("probe", "--kubeconfig", kubeconfig)
        run("probe-nccl", "--kubeconfig", kubeconfig, level="nccl")
        assert api.internal_errors == []
    return seen


def _outcomes(run: Run, check: str) -> set[str]:
    return {r["outcome"] for r in run.results.values() if r["check"] == check}


def test_read_only_role_passes_every_read_only_check_as_the_admin_does(runs):
    admin, sa = runs["admin"], runs["readonly"]
    assert admin.code == 0, admin.stderr[-2000:]
    assert sa.code == 0, sa.stderr[-2000:]
    assert sa.results == admin.results
    assert {r.user for r in sa.requests} == {SA.name}
    assert [(r.method, r.path, r.status) for r in sa.requests if r.status != 200] == []
    assert {r.method for r in sa.requests} == {"GET"}


def test_without_a_role_every_cluster_check_errors_naming_the_forbidden_list(runs):
    admin, none = runs["admin"], runs["none"]
    assert none.code == 1
    assert none.results.keys() == admin.results.keys()
    # verdicts that changed (node_identity keeps its verdict on the host name alone, its evidence thinner)
    changed = {i: r for i, r in none.results.items()
               if (r["outcome"], r["message"]) != (admin.results[i]["outcome"], admin.results[i]["message"])}
    assert {r["outcome"] for r in changed.values()} == {"error"}
    assert [r["message"] for r in changed.values() if not FORBIDDEN_LIST.match(r["message"])] == []
    assert {r["link"] for r in changed.values()} >= {"device-plugin", "operator", "ipam", "workload"}
    assert {r["link"] for r in admin.results.values() if r["outcome"] == "passed"} - {
        r["link"] for r in changed.values()} >= {"firmware", "kernel"}      # what SSH reads is unaffected
    errors = json.loads((none.out / "bundle" / "cluster" / "errors.json").read_text())
    assert errors["nodes"] == ("list nodes (cluster-wide): forbidden (403): the account may not list nodes "
                               "(cluster-wide) — bind the ibconform role (deploy/rbac/readonly.yaml)")
    assert errors["ippools"].startswith("list ippools.nv-ipam.nvidia.com in namespace network-operator: forbidden (403)")
    assert errors.keys() == {r.plural for r in cluster.RESOURCES} and all(FORBIDDEN_LIST.match(m) for m in errors.values())
    assert {(r.verb, r.status) for r in none.requests if r.resource} == {("list", 403)}


def test_probing_under_the_read_only_role_is_refused_and_writes_nothing(runs):
    probing = runs["readonly-probing"]
    in_probe_ns = [(r.verb, r.resource, r.status) for r in probing.requests if r.namespace == PROBE_NS]
    assert in_probe_ns == [("list", "pods", 403)]           # the leftover sweep, before any create
    assert [r for r in probing.requests if r.is_write] == []
    assert probing.left == []


def test_probing_under_the_read_only_role_reports_the_missing_permission(runs):
    probing, read_only = runs["readonly-probing"], runs["readonly"]
    assert probing.code == 1, probing.stderr[-2000:]
    probes = {i: r for i, r in probing.results.items() if r["check"] == "probe_scheduled"}
    assert len(probes) == 2 and {r["outcome"] for r in probes.values()} <= {"failed", "error"}
    for result in probes.values():
        assert re.search(r"(create|list) pods?\b.*\bdefault\b.*(403|forbidden)", result["message"], re.I), result
    others = {i: r for i, r in probing.results.items() if r["link"] not in PROBE_LINKS}
    assert others == {i: r for i, r in read_only.results.items() if i in others}
    in_pod = [r for i, r in probing.results.items() if r["link"] in PROBE_LINKS and i not in probes]
    assert {r["outcome"] for r in in_pod} <= {"skipped", "error"}, in_pod


def test_probing_without_create_fails_the_probe_checks_only_and_leaves_nothing(runs):
    probing, read_only = runs["watch-only-probing"], runs["readonly"]
    assert probing.code == 1, probing.stderr[-2000:]
    assert _outcomes(probing, "probe_scheduled") == {"failed"}
    others = {i: r for i, r in probing.results.items() if r["link"] not in PROBE_LINKS}
    assert others == {i: r for i, r in read_only.results.items() if r["link"] not in PROBE_LINKS}
    creates = [(r.namespace, r.status) for r in probing.requests if r.verb == "create"]
    assert creates == [(PROBE_NS, 403), (PROBE_NS, 403)]
    assert [r for r in probing.requests if r.is_write and r.status < 400] == []
    assert probing.left == []


def test_probe_create_refusal_names_the_missing_permission(runs):
    for result in runs["watch-only-probing"].results.values():
        if result["check"] == "probe_scheduled":
            assert re.search(r"create pods?\b.*\bdefault\b", result["message"]), result["message"]


def test_read_only_and_probe_roles_pass_everything_on_healthy_nodes(runs):
    probe = runs["probe"]
    assert probe.code == 0, probe.stderr[-2000:]
    skipped = {r["link"] for r in probe.results.values() if r["outcome"] == "skipped"}
    assert skipped == {"rdma", "nccl"}          # the default probe.level start: the in-pod levels are not asked for
    assert {r["outcome"] for r in probe.results.values() if r["link"] not in skipped} == {"passed"}
    assert _outcomes(probe, "probe_scheduled") == {"passed"}
    assert sum(r["check"] == "probe_scheduled" for r in probe.results.values()) == 2
    assert [(r.method, r.path, r.status) for r in probe.requests if r.status >= 400] == []
    writes = sorted((r.verb, r.resource, r.namespace) for r in probe.requests if r.is_write)
    assert writes == [("create", "pods", PROBE_NS)] * 2 + [("delete", "pods", PROBE_NS)] * 2
    assert probe.left == []


def test_the_probe_role_carries_every_level_reading_one_log_per_pod(runs):
    nccl = runs["probe-nccl"]
    assert nccl.code == 0, nccl.stderr[-2000:]
    assert {r["outcome"] for r in nccl.results.values()} == {"passed"}
    assert {r["link"] for r in nccl.results.values()} >= {"workload", "attach", "rdma", "nccl"}
    assert [(r.method, r.path, r.status) for r in nccl.requests if r.status >= 400] == []
    writes = sorted((r.verb, r.resource, r.namespace) for r in nccl.requests if r.is_write)
    assert writes == [("create", "pods", PROBE_NS)] * 2 + [("delete", "pods", PROBE_NS)] * 2
    logs = [(r.verb, r.resource, r.namespace) for r in nccl.requests if r.resource == "pods/log"]
    assert logs == [("get", "pods/log", PROBE_NS)] * 2
    assert not any(r.resource == "pods/exec" for r in nccl.requests)
    assert nccl.left == []


def test_without_pods_log_the_in_pod_checks_fail_naming_the_refused_get(runs):
    run = runs["probe-no-log"]
    assert run.left == []
    in_pod = [r for r in run.results.values() if r["link"] == "rdma"]
    assert in_pod and {r["outcome"] for r in in_pod} == {"failed"}
    for result in in_pod:
        assert re.search(r"get pods/log in namespace default: forbidden \(403\)", result["message"]), result["message"]
    assert {r["outcome"] for r in run.results.values() if r["link"] in ("workload", "attach")} == {"passed"}
