"""The config-daemon transport end to end: the node script run in each node's sriov-network-config-daemon pod
through pods/exec, on the twin (whose API runs each exec inside the namespaces of the pod's node).

On the `faults` twin, a read-only run whose inventory differs only in `transport: config-daemon` gives the SSH
run's results, item for item (the two nodes SSH cannot reach fail for the exec's own reason), with no SSH
session at all, one LIST of the daemon pods and one exec per node. On a small twin serving HTTPS: the real
`kubectl exec`, the RBAC profiles (with and without exec.yaml), a node whose daemon pod is missing or not
Running, an exec handshake slower than kubernetes.timeout, and the twin's own answers to bad execs.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from websocket import WebSocketBadStatusException

from ibconform import inventory, transports
from ibconform.collect.nodes import LiveTransports, collect_node
from ibconform.twin import Twin
from ibconform.twin.apiserver.rbac import service_account
from tests.e2e.conftest import Run, run_suite
from tests.e2e.test_node_faults import NODE_SIDE

NAMESPACE = "network-operator"
DAEMON = "app=sriov-network-config-daemon"
CONTAINER = "sriov-network-config-daemon"
RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
SA = service_account(NAMESPACE, "ibconform")
POD = r"network-operator/sriov-network-config-daemon-[a-z0-9]{5}"
# what the exec meets on the two nodes SSH cannot reach: their address refuses (dgx007) or never answers (dgx008)
EXEC_UNREACHABLE = {
    "dgx007": rf"^dgx007 unreachable: exec in {POD} failed: Internal error occurred: error dialing backend: dial tcp "
    r"127\.\d+\.\d+\.7:10250: connect: connection refused — the API server cannot reach the node's kubelet: "
    r"check the node$",
    "dgx008": r"^dgx008 unreachable: node script did not finish within 20 s \(command timeout\)$",
}
NO_POD = (
    r"^{node} unreachable: no running sriov-network-config-daemon pod on {node} \(namespace network-operator"
    r"{seen}\): the node cannot be collected through the operator — check its pod \(kubectl -n network-operator "
    r"get pods -l app=sriov-network-config-daemon -o wide\), or collect the node over ssh$"
)


def _inventory(twin: Twin, folder: Path, **kubernetes) -> Path:
    """The twin's inventory with `transport: config-daemon` (and ``kubernetes`` keys), nothing else changed."""
    data = yaml.safe_load(twin.inventory_path.read_text())
    data["transport"] = "config-daemon"
    data["kubernetes"].update(kubernetes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _sshd_logs(twin: Twin) -> dict[str, str]:
    """What each running sshd logged so far (every session it accepted or refused)."""
    return {log.parent.name: log.read_text(errors="replace") for log in (twin.workdir / "nodes").glob("*/sshd.log")}


def _nodes(run: Run) -> dict[str, dict]:
    return {n["name"]: n for n in json.loads((run.out / "results.json").read_text())["nodes"]}


def _node_side(run: Run, node: str) -> dict[str, dict]:
    return {i: r for i, r in run.results.items() if r["node"] == node and r["check"] in NODE_SIDE}


def _daemon_pod(twin: Twin, node: str) -> str:
    return next(
        p["metadata"]["name"]
        for p in twin.api.list("pods", NAMESPACE, label_selector=DAEMON)
        if p["spec"]["nodeName"] == node
    )


# ------------------------------------------------------------------------------- the faults twin, both ways


@pytest.fixture(scope="module")
def exec_run(faults_twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`ibconform run --read-only` through the config-daemon pods, with the requests and sshd logs it caused."""
    tmp = tmp_path_factory.mktemp("config-daemon")
    path = _inventory(faults_twin, tmp)
    sshd, before = _sshd_logs(faults_twin), len(faults_twin.api.requests)
    started = time.monotonic()
    run = run_suite(path, tmp / "out", "--read-only")
    run.seconds = time.monotonic() - started
    run.requests = list(faults_twin.api.requests[before:])
    run.sshd = {name: log[len(sshd[name]) :] for name, log in _sshd_logs(faults_twin).items()}
    return run


def test_results_are_the_ssh_runs_item_for_item(faults_run, exec_run):
    assert exec_run.code == faults_run.code == 1, exec_run.stderr[-2000:]
    assert exec_run.results.keys() == faults_run.results.keys()
    differ = {i for i, r in exec_run.results.items() if r != faults_run.results[i]}
    assert {exec_run.results[i]["node"] for i in differ} == set(EXEC_UNREACHABLE)
    for i in differ:  # the nodes neither transport reaches: the same items in error, for the exec's reason
        ssh, ex = faults_run.results[i], exec_run.results[i]
        assert (ex["outcome"], ex["check"], ex["remediation"]) == ("error", ssh["check"], ssh["remediation"])
        assert re.match(EXEC_UNREACHABLE[ex["node"]], ex["message"]), ex["message"]
    ssh_nodes, exec_nodes = _nodes(faults_run), _nodes(exec_run)
    assert {n for n in exec_nodes if exec_nodes[n] != ssh_nodes[n]} == set(EXEC_UNREACHABLE)
    assert "Traceback" not in exec_run.stderr


def test_no_ssh_session_happened(faults_twin, faults_run, exec_run):
    assert exec_run.sshd == dict.fromkeys(exec_run.sshd, "")
    logs = _sshd_logs(faults_twin)  # where they would show: the SSH run's sessions are there
    assert all("Accepted publickey for root" in logs[node] for node in ("dgx001", "dgx020"))


def test_one_list_of_the_daemon_pods_and_one_exec_per_node(faults_twin, exec_run):
    daemon_lists = [r for r in exec_run.requests if r.verb == "list" and r.query.get("labelSelector") == DAEMON]
    assert [(r.resource, r.namespace, r.status) for r in daemon_lists] == [("pods", NAMESPACE, 200)]
    execs = [r for r in exec_run.requests if r.resource == "pods/exec"]
    pods = {_daemon_pod(faults_twin, node): node for node in faults_twin.scenario.nodes}
    assert sorted(pods[r.name] for r in execs) == sorted(faults_twin.scenario.nodes)
    assert {(r.method, r.verb, r.namespace, r.query.get("container"), r.status) for r in execs} == {
        ("GET", "create", NAMESPACE, CONTAINER, 101)
    }
    assert faults_twin.api.internal_errors == []


def test_bundle_records_the_transport_and_pod_per_node(faults_twin, exec_run):
    for node in faults_twin.scenario.nodes:
        status = json.loads((exec_run.out / "bundle" / "nodes" / node / "status.json").read_text())
        assert status["transport"] == "config-daemon"
        assert status["notes"] == [f"exec in pod {NAMESPACE}/{_daemon_pod(faults_twin, node)}, container {CONTAINER}"]


def test_an_exec_that_hangs_is_timed_out_at_the_command_deadline(exec_run):
    status = json.loads((exec_run.out / "bundle" / "nodes" / "dgx008" / "status.json").read_text())
    assert status["error"] == "node script did not finish within 20 s (command timeout)"
    assert 20 <= status["seconds"] < 25


def test_close_aborts_a_running_exec(faults_twin, tmp_path):
    """An interrupt (LiveTransports.close_all) ends an exec waiting on the hung node at once."""
    inv = inventory.load(_inventory(faults_twin, tmp_path))
    live, seen = LiveTransports(), {}
    worker = threading.Thread(
        target=lambda: seen.update(status=collect_node(inv.node("dgx008"), inv, live, transports.Session(inv))[0])
    )
    worker.start()
    time.sleep(1.0)
    closed = time.monotonic()
    live.close_all()
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - closed < 3
    assert not seen["status"].reachable and "interrupt" in seen["status"].error


# ---------------------------------------------------------------------- a small twin serving HTTPS


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("config-daemon-small")
    scenario = tmp / "scenario.yaml"
    scenario.write_text(
        "format: ibconform-twin/v1\ncluster: twin-exec\nprofile: dgx-b200\nnodes:\n  - names: 'dgx[001-003]'\n"
    )
    with Twin(scenario, tmp / "twin") as twin:
        yield twin


@pytest.fixture(scope="module")
def daemon_pods(small: Twin) -> dict[str, str]:
    """Each node's config-daemon pod, before the runs take two of them away."""
    return {node: _daemon_pod(small, node) for node in small.scenario.nodes}


@pytest.fixture(scope="module")
def sa_kubeconfig(small: Twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with the token of the ServiceAccount the RBAC profiles bind."""
    token = secrets.token_urlsafe(32)
    small.api.add_user(token, SA)
    return small.api.write_kubeconfig(
        tmp_path_factory.mktemp("sa") / "kubeconfig", context=small.scenario.cluster, token=token
    )


@pytest.fixture(scope="module")
def runs(
    small: Twin, daemon_pods: dict[str, str], sa_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Read-only runs through the daemon pods: as the admin; as the ServiceAccount with readonly.yaml and
    exec.yaml, then with readonly.yaml only; as the admin once dgx002's pod is Pending and dgx003's gone."""
    tmp = tmp_path_factory.mktemp("config-daemon-runs")
    api, path = small.api, _inventory(small, tmp)
    seen: dict[str, Run] = {}

    def run(name: str, *extra: str) -> None:
        api.clear_requests()
        seen[name] = run_suite(path, tmp / name, "--read-only", *extra)
        seen[name].requests = list(api.requests)

    run("admin")
    exec_role = [doc for doc in yaml.safe_load_all((RBAC_DIR / "exec.yaml").read_text()) if doc]
    for doc in [*yaml.safe_load_all((RBAC_DIR / "readonly.yaml").read_text()), *exec_role]:
        api.put(doc)
    run("readonly+exec", "--kubeconfig", str(sa_kubeconfig))
    for doc in exec_role:
        api.delete(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], NAMESPACE)
    run("readonly", "--kubeconfig", str(sa_kubeconfig))
    api.patch("v1", "Pod", daemon_pods["dgx002"], NAMESPACE, merge={"status": {"phase": "Pending"}})
    api.delete("v1", "Pod", daemon_pods["dgx003"], NAMESPACE)
    run("pods-missing")
    assert api.internal_errors == []
    return seen


def test_read_only_and_exec_profiles_suffice(runs):
    admin, sa = runs["admin"], runs["readonly+exec"]
    assert admin.code == 0, admin.stderr[-2000:]
    assert sa.code == 0 and sa.results == admin.results, sa.stderr[-2000:]
    assert {r.user for r in sa.requests} == {SA.name}
    assert [(r.method, r.path, r.status) for r in sa.requests if r.status >= 400] == []
    assert sum(r.resource == "pods/exec" for r in sa.requests) == 3


def test_without_exec_yaml_each_node_names_the_missing_grant(runs):
    admin, readonly = runs["admin"], runs["readonly"]
    assert readonly.code == 1 and "Traceback" not in readonly.stderr
    forbidden = (
        r"^{node} unreachable: exec in " + POD + r": forbidden \(403\): the account may not create pods/exec "
        r"in namespace network-operator — bind deploy/rbac/exec\.yaml$"
    )
    for node in ("dgx001", "dgx002", "dgx003"):
        items = _node_side(readonly, node)
        assert items.keys() == _node_side(admin, node).keys()
        assert {r["outcome"] for r in items.values()} == {"error"}
        assert all(re.match(forbidden.replace("{node}", node), r["message"]) for r in items.values()), items
    others = {i: r for i, r in readonly.results.items() if r["check"] not in NODE_SIDE}
    assert others == {i: r for i, r in admin.results.items() if i in others}  # the cluster side is unaffected
    execs = {(r.verb, r.resource, r.status) for r in readonly.requests if r.resource == "pods/exec"}
    assert execs == {("create", "pods/exec", 403)}


def test_a_node_without_a_running_daemon_pod_says_so_while_the_others_pass(runs, daemon_pods):
    admin, missing = runs["admin"], runs["pods-missing"]
    assert _node_side(missing, "dgx001") == _node_side(admin, "dgx001")
    for node, seen in (("dgx002", f"; {daemon_pods['dgx002']} is Pending"), ("dgx003", "")):
        items = _node_side(missing, node)
        assert items and {r["outcome"] for r in items.values()} == {"error"}
        assert all(re.match(NO_POD.format(node=node, seen=seen), r["message"]) for r in items.values()), items
    assert [r.name for r in missing.requests if r.resource == "pods/exec"] == [daemon_pods["dgx001"]]


def test_an_exec_handshake_slower_than_the_api_timeout_fails_in_time(small, daemon_pods, tmp_path):
    inv = inventory.load(_inventory(small, tmp_path, timeout=1))
    small.api.set_fault(latency=2, paths=r"/exec$")
    try:
        status, _ = collect_node(inv.node("dgx001"), inv)
    finally:
        small.api.clear_fault()
    assert status.error == (
        f"exec in {NAMESPACE}/{daemon_pods['dgx001']}: no answer within 1 s (kubernetes.timeout): "
        "the API server or the node's kubelet does not answer — check the node and the API "
        "server, or raise kubernetes.timeout"
    )
    assert status.seconds < 3


# ------------------------------------------------------------------------------ the twin's pods/exec


def _kubectl(twin: Twin, *args: str) -> subprocess.CompletedProcess:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    return subprocess.run(
        [kubectl, "--kubeconfig", str(twin.kubeconfig_path), "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kubectl_exec_runs_on_the_pods_node(small, daemon_pods):
    proc = _kubectl(small, "exec", daemon_pods["dgx001"], "--", "hostname")
    assert (proc.returncode, proc.stdout) == (0, "dgx001\n"), proc.stderr


def test_kubectl_exec_returns_the_exit_status(small, daemon_pods):
    proc = _kubectl(small, "exec", daemon_pods["dgx001"], "--", "sh", "-c", "echo oops >&2; exit 3")
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["oops", "command terminated with exit code 3"]


def _exec(kubeconfig: Path, pod: str, command: list[str], **headers: str) -> tuple[str, bytes, bytes, dict]:
    """The official client's exec: (subprotocol, stdout, stderr, final Status)."""
    configuration = client.Configuration()
    config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    core = client.CoreV1Api(client.ApiClient(configuration))
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        NAMESPACE,
        command=command,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
        binary=True,
        _headers=headers or None,
    )
    ws.run_forever(timeout=30)
    out, err, status = (ws.read_channel(c) for c in (STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL))
    ws.close()
    return ws.subprotocol, out, err, json.loads(status)


def _refusal(kubeconfig: Path, pod: str, **headers: str) -> tuple[int, dict]:
    """The status code and Status of an exec the server refuses before the upgrade."""
    with pytest.raises(ApiException) as raised:
        _exec(kubeconfig, pod, ["true"], **headers)
    answer = raised.value.__context__
    assert isinstance(answer, WebSocketBadStatusException), raised.value
    return answer.status_code, json.loads(answer.resp_body)


def test_twin_exec_speaks_v5_and_v4_with_the_kubelets_status(small, daemon_pods):
    pod = daemon_pods["dgx001"]
    assert _exec(small.kubeconfig_path, pod, ["cat", "/sys/class/net/ibp24s0/device/sriov_numvfs"]) == (
        "v5.channel.k8s.io",
        b"8\n",
        b"",
        {"metadata": {}, "status": "Success"},
    )
    protocol, out, err, status = _exec(
        small.kubeconfig_path,
        pod,
        ["sh", "-c", "hostname >&2; exit 7"],
        **{"sec-websocket-protocol": "v4.channel.k8s.io"},
    )
    assert (protocol, out, err) == ("v4.channel.k8s.io", b"", b"dgx001\n")
    assert status == {
        "metadata": {},
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c hostname >&2; exit 7], exit code 7",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
    }


def test_twin_exec_refuses_an_unknown_pod_and_one_not_running(small, runs, daemon_pods):
    gone, pending = daemon_pods["dgx003"], daemon_pods["dgx002"]  # the runs took them away
    code, status = _refusal(small.kubeconfig_path, gone)
    assert (code, status["reason"], status["message"]) == (404, "NotFound", f'pods "{gone}" not found')
    code, status = _refusal(small.kubeconfig_path, pending)
    assert (code, status["reason"], status["message"]) == (
        400,
        "BadRequest",
        f"pod {pending} is not running (phase Pending): cannot exec into container {CONTAINER}",
    )


def test_twin_exec_is_authorized_as_create_on_pods_exec(small, runs, daemon_pods, sa_kubeconfig):
    code, status = _refusal(sa_kubeconfig, daemon_pods["dgx001"])  # the runs left readonly.yaml only
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"].startswith(
        f'pods "{daemon_pods["dgx001"]}" is forbidden: User "{SA.name}" cannot '
        'create resource "pods/exec" in API group "" in the namespace "network-operator"'
    )


def test_twin_exec_to_a_refusing_node_fails_before_the_upgrade_in_v4(faults_twin):
    """kube-apiserver proxies a v4 exec to the kubelet: a node refusing connections fails the handshake (v5: after
    it, on the error channel, as the exec run shows for dgx007)."""
    code, status = _refusal(
        faults_twin.kubeconfig_path,
        _daemon_pod(faults_twin, "dgx007"),
        **{"sec-websocket-protocol": "v4.channel.k8s.io"},
    )
    assert code == 500 and re.fullmatch(
        r"error dialing backend: dial tcp 127\.\d+\.\d+\.7:10250: connect: "
        r"connection refused",
        status["message"],
    ), status
