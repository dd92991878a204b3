"""deploy/job.yaml and the image's entry point, run on the twin the way a cluster runs the Job.

The twin's API serves HTTPS. Every object of deploy/job.yaml is created in it over HTTP, the roles of
deploy/rbac/ are stored, and the Job's ServiceAccount gets a token. Then the real entry point
(deploy/entrypoint.sh) runs in a private mount namespace arranged like the Job's pod: the token, ca.crt
and namespace mounted at /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT set,
the root filesystem read-only but for the folder standing in for the reports volume, no capability.
The in-cluster runs are compared with `ibconform run` as an admin with a kubeconfig, on the same twin.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, utils

from ibconform import inventory as inventory_mod
from ibconform.collect.incluster import SERVICE_ACCOUNT_DIR
from ibconform.twin import Twin
from ibconform.twin.apiserver.api_twin import ApiTwin, RequestRecord
from ibconform.twin.apiserver.rbac import Policy, authorize, request_attributes, service_account
from ibconform.twin.apiserver.request import parse_api_path
from tests.e2e.conftest import ibconform

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


JOB_DOCS = _docs(DEPLOY / "job.yaml")
RBAC_DOCS = [doc for path in sorted((DEPLOY / "rbac").glob("*.yaml")) for doc in _docs(path)]
JOB = next(doc for doc in JOB_DOCS if doc["kind"] == "Job")
POD = JOB["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
ENV = {e["name"]: e["value"] for e in CONTAINER.get("env", [])}
SA = service_account(JOB["metadata"]["namespace"], POD["serviceAccountName"])
BINDINGS = [doc for doc in JOB_DOCS if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]
PROBE_BINDING = next(b for b in BINDINGS if b["roleRef"]["name"] == "ibconform-probe")
CONFIGMAP = next(doc for doc in JOB_DOCS if doc["kind"] == "ConfigMap")
# The cluster the ConfigMap's inventory describes (its name and nodes); dgx031 runs another firmware version.
SCENARIO = f"""\
format: ibconform-twin/v1
cluster: {yaml.safe_load(CONFIGMAP["data"]["inventory.yaml"])["cluster"]}
profile: dgx-b200
nodes:
  - names: dgx030
  - names: dgx031
    faults: [{{kind: firmware-version, hcas: [ibp192s0], version: 28.39.1002}}]
"""


@dataclass
class JobRun:
    """One run of the entry point: exit code, output, the volume it wrote, the requests the twin saw."""

    code: int
    stdout: str
    stderr: str
    volume: Path
    requests: list[RequestRecord] = field(default_factory=list)

    @property
    def out(self) -> Path:
        (folder,) = self.volume.iterdir()
        return folder

    @property
    def document(self) -> dict:
        return json.loads((self.out / "results.json").read_text())


def outcomes(out: Path) -> dict[str, str]:
    return {r["id"]: r["outcome"] for r in json.loads((out / "results.json").read_text())["results"]}


def pod_namespace_script(account: Path, volume: Path) -> str:
    """What the kubelet and the container runtime arrange for the Job's pod, then the image's entry point."""
    mount, volume_ = shlex.quote(str(SERVICE_ACCOUNT_DIR)), shlex.quote(str(volume))
    return "\n".join(
        [
            "set -e",
            "mount -t tmpfs -o mode=0755,size=1m pod-run /var/run",  # the pod's own /run, not the host's
            f"mkdir -p {mount}",
            f"mount --bind -o ro {shlex.quote(str(account))} {mount}",
            f"mount --bind {volume_} {volume_}",  # the volume stays writable ...
            "mount -o remount,bind,ro /",  # ... the root filesystem does not
            f'exec setpriv --no-new-privs --bounding-set -all --inh-caps -all -- {shlex.quote(str(ENTRYPOINT))} "$@"',
        ]
    )


def run_job(api: ApiTwin, account: Path, inventory: Path, volume: Path, *args: str) -> JobRun:
    volume.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "HOSTNAME": "ibconform-x7k2q",
        "KUBERNETES_SERVICE_HOST": api.host,
        "KUBERNETES_SERVICE_PORT": str(api.port),
        "IBCONFORM_INVENTORY": str(inventory),
        "IBCONFORM_REPORTS": str(volume),
    }
    command = [
        shutil.which("unshare") or "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        pod_namespace_script(account, volume),
        "ibconform-job",
        *args,
    ]
    before = len(api.requests)
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    return JobRun(proc.returncode, proc.stdout, proc.stderr, volume, api.requests[before:])


def configmap_inventory(path: Path) -> Path:
    """The Job's ConfigMap inventory, mounted as it is."""
    path.parent.mkdir()
    path.write_text(CONFIGMAP["data"]["inventory.yaml"])
    return path


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The twin with deploy/job.yaml applied; a normal and an in-cluster run, each probing and read-only."""
    tmp = tmp_path_factory.mktemp("job")
    (tmp / "scenario.yaml").write_text(SCENARIO)
    seen: dict = {}
    with Twin(tmp / "scenario.yaml", tmp / "twin") as twin:
        api = twin.api
        for doc in RBAC_DOCS:
            api.put(doc)
        configuration = client.Configuration()
        config.load_kube_config(str(twin.kubeconfig_path), client_configuration=configuration)
        with client.ApiClient(configuration) as admin:
            api.clear_requests()
            for doc in JOB_DOCS:
                utils.create_from_dict(admin, doc)
            seen["created"] = [(r.verb, r.resource, r.namespace, r.status) for r in api.requests]
        token = secrets.token_urlsafe(32)
        api.add_user(token, SA)
        account = tmp / "serviceaccount"
        account.mkdir()
        (account / "token").write_text(token)
        (account / "ca.crt").write_bytes(api.ca_pem)
        (account / "namespace").write_text(SA.name.split(":")[2])
        inventory = configmap_inventory(tmp / "configmap" / Path(ENV["IBCONFORM_INVENTORY"]).name)

        seen["normal"] = ibconform("run", "-i", str(twin.inventory_path), "--out", str(tmp / "normal"))
        seen["normal-read-only"] = ibconform(
            "run", "-i", str(twin.inventory_path), "--out", str(tmp / "normal-read-only"), "--read-only"
        )
        seen["job"] = run_job(api, account, inventory, tmp / "volume", *CONTAINER.get("args", []))
        seen["policy"] = api.emulator.rbac_policy()
        api.delete(
            PROBE_BINDING["apiVersion"],
            PROBE_BINDING["kind"],
            PROBE_BINDING["metadata"]["name"],
            PROBE_BINDING["metadata"]["namespace"],
        )
        seen["job-read-only"] = run_job(api, account, inventory, tmp / "volume-read-only", "--read-only")
        seen.update(tmp=tmp, token=token, admin_token=api.token, api_url=api.url)
        assert api.internal_errors == []
    return seen


def test_the_job_exits_as_ibconform_run_does(job):
    normal, run = job["normal"], job["job"]
    assert normal.returncode == 1, normal.stderr[-2000:]  # dgx031's firmware version differs
    assert run.code == normal.returncode, run.stderr[-2000:]
    assert job["job-read-only"].code == job["normal-read-only"].returncode == 1


def test_the_report_lands_in_one_new_folder_on_the_volume(job):
    run = job["job"]
    assert run.out.name.startswith("run-") and run.out.name.endswith("-ibconform-x7k2q")
    for name in ("report.html", "results.json", "junit.xml", "bundle/manifest.json"):
        assert (run.out / name).is_file(), name
    assert f"report: {run.out / 'report.html'}" in run.stdout


def test_the_results_are_those_of_a_normal_run(job):
    assert outcomes(job["job"].out) == outcomes(job["tmp"] / "normal")
    assert outcomes(job["job-read-only"].out) == outcomes(job["tmp"] / "normal-read-only")
    assert "passed" in outcomes(job["job"].out).values()


def test_the_api_is_reached_with_the_pods_service_account(job):
    run = job["job"]
    namespace = SA.name.split(":")[2]
    assert (
        run.document["run"]["kubernetes_api"] == f"in-cluster ServiceAccount of namespace {namespace}, {job['api_url']}"
    )
    assert {r.user for r in run.requests} == {SA.name}
    assert [(r.method, r.path, r.status) for r in run.requests if r.status is None or r.status >= 400] == []


def test_the_nodes_are_read_through_their_config_daemon_pods(job):
    run = job["job"]
    execs = [r.name for r in run.requests if r.resource == "pods/exec"]
    assert len(execs) == len(set(execs)) == 2 and all(n.startswith("sriov-network-config-daemon-") for n in execs)
    for node in ("dgx030", "dgx031"):
        assert json.loads((run.out / "bundle" / "nodes" / node / "status.json").read_text())["transport"] == (
            "config-daemon"
        )


def test_no_token_in_any_output_or_artefact(job):
    secrets_ = [job["token"].encode(), job["admin_token"].encode()]
    for name in ("job", "job-read-only"):
        run = job[name]
        assert not any(s.decode() in run.stdout + run.stderr for s in secrets_)
        for path in run.volume.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not any(s in content for s in secrets_), path


def test_a_read_only_job_without_the_probe_binding_passes_the_read_only_checks(job):
    run = job["job-read-only"]
    assert [(r.method, r.path, r.status) for r in run.requests if r.status is None or r.status >= 400] == []
    assert [r for r in run.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")] == []  # exec reads the node
    assert run.document["run"]["read_only"] is True


# -- the manifest itself


def _unknown_fields(value: object, model: str, where: str) -> list[str]:
    """Fields of ``value`` the official client's model ``model`` (e.g. V1Job) does not know, by path."""
    if model.startswith("list["):
        return [f for i, item in enumerate(value) for f in _unknown_fields(item, model[5:-1], f"{where}[{i}]")]
    cls = getattr(client.models, model, None)
    if cls is None or not isinstance(value, dict):
        return []
    known = {key: attr for attr, key in cls.attribute_map.items()}
    return [
        f
        for key, item in value.items()
        for f in (
            [f"{where}.{key}"]
            if key not in known
            else _unknown_fields(item, cls.openapi_types[known[key]], f"{where}.{key}")
        )
    ]


def test_every_object_is_known_to_the_client_and_created_by_the_api(job):
    assert _unknown_fields({"spec": {"template": {"spec": {"restartPolicyy": "Never"}}}}, "V1Job", "Job") == [
        "Job.spec.template.spec.restartPolicyy"
    ]
    assert [f for doc in JOB_DOCS for f in _unknown_fields(doc, f"V1{doc['kind']}", doc["kind"])] == []
    assert [status for *_, status in job["created"]] == [201] * len(JOB_DOCS)
    assert [resource for _, resource, *_ in job["created"]] == [
        "namespaces",
        "serviceaccounts",
        "clusterrolebindings",
        "rolebindings",
        "rolebindings",
        "rolebindings",
        "configmaps",
        "persistentvolumeclaims",
        "jobs",
    ]


def test_the_job_runs_the_entry_point_once_without_privilege():
    containerfile = (DEPLOY / "Containerfile").read_text()
    installed = next(
        line.split()[-1] for line in containerfile.splitlines() if line.startswith("COPY deploy/entrypoint.sh")
    )
    assert f'ENTRYPOINT ["{installed}"]' in containerfile
    assert "command" not in CONTAINER  # the image's entry point runs
    assert JOB["spec"]["backoffLimit"] == 0 and JOB["spec"]["activeDeadlineSeconds"] > 0
    assert POD["restartPolicy"] == "Never"
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert CONTAINER["securityContext"] == {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(CONTAINER["resources"]) == {"requests", "limits"}


def test_the_job_mounts_what_the_entry_point_reads():
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["volumes"]}
    inventory = Path(ENV["IBCONFORM_INVENTORY"])
    assert volumes[mounts[str(inventory.parent)]]["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    assert inventory.name in CONFIGMAP["data"]
    claim = volumes[mounts[ENV["IBCONFORM_REPORTS"]]]["persistentVolumeClaim"]["claimName"]
    assert claim in {d["metadata"]["name"] for d in JOB_DOCS if d["kind"] == "PersistentVolumeClaim"}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_configmap_inventory_uses_the_service_account_and_the_config_daemons(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(CONFIGMAP["data"]["inventory.yaml"])
    inventory = inventory_mod.load(path)
    assert inventory.model.kubernetes.kubeconfig is None
    assert {node.transport for node in inventory.nodes} == {"config-daemon"}


def test_the_service_account_gets_the_deploy_rbac_roles_only():
    roles = {(doc["kind"], doc["metadata"]["name"]) for doc in RBAC_DOCS if doc["kind"] in ("Role", "ClusterRole")}
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in BINDINGS} <= roles
    assert [b["subjects"] for b in BINDINGS] == [
        [{"kind": "ServiceAccount", "name": SA.name.split(":")[3], "namespace": SA.name.split(":")[2]}]
    ] * len(BINDINGS)
    assert {doc["kind"] for doc in JOB_DOCS} & {"Role", "ClusterRole"} == set()


def _allowed(requests: list[RequestRecord], policy: Policy) -> bool:
    return all(
        authorize(request_attributes(SA, r.method, r.path, parse_api_path(r.path), r.verb, r.query), policy).allowed
        for r in requests
    )


def _key(binding: dict) -> tuple:
    return binding.get("kind"), binding["metadata"]["name"], binding["metadata"].get("namespace")


def test_each_binding_is_needed_by_the_run(job):
    requests, policy = job["job"].requests, job["policy"]
    assert _allowed(requests, policy)
    for binding in BINDINGS:
        without = Policy(
            policy.cluster_roles,
            policy.roles,
            [b for b in policy.cluster_role_bindings if _key(b) != _key(binding)],
            [b for b in policy.role_bindings if _key(b) != _key(binding)],
        )
        assert not _allowed(requests, without), f"{_key(binding)} grants nothing the run uses"


def test_the_entry_point_refuses_a_missing_reports_volume(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "IBCONFORM_REPORTS": str(tmp_path / "not-mounted")}
    proc = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 4
    assert proc.stderr == (
        f"ibconform-job: error: {tmp_path / 'not-mounted'}: not a writable folder: mount the "
        "reports volume there (deploy/job.yaml) or set IBCONFORM_REPORTS\n"
    )
