"""The real kubectl against the twin, over HTTPS verified with the CA in the kubeconfig the twin wrote.

Every kubectl command about the cluster that ibconform's check messages, remediations, README and docs tell users
to run works here as on a real cluster: get and describe of nodes, pods, node states, policies, the
NicClusterPolicy and IP pools (with the columns kube-apiserver prints), ``auth can-i`` (as the admin, under a
ServiceAccount token, ``--as`` it, ``--list``), ``logs`` of the config daemon and nv-ipam pods, and the gate's
label/taint/uncordon lines. A kubeconfig without the twin's CA is refused: the TLS is real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ibconform import gate
from ibconform.twin import Twin
from ibconform.twin.apiserver.rbac import service_account
from tests.e2e.conftest import ibconform

KUBECTL = shutil.which("kubectl")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary on PATH")]

NS = "network-operator"
SA = service_account(NS, "ibconform")
SA_TOKEN = "ibconform-sa-token"
RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
KEY = "ibconform.io/acceptance"


@dataclass
class Kubectl:
    """The kubectl binary with one kubeconfig (and a HOME of its own for its discovery cache)."""

    kubeconfig: Path
    home: Path

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(self.home)}
        proc = subprocess.run([KUBECTL or "kubectl", "--kubeconfig", str(self.kubeconfig), *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        if ok:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}"
        return proc

    def rows(self, *args: str) -> list[dict[str, str]]:
        """``kubectl get`` output as one dict per row, by column header."""
        return table(self(*args).stdout)


def table(text: str) -> list[dict[str, str]]:
    """Rows of kubectl's aligned columns, cut where the header's names start (a cell may be empty)."""
    header, *lines = text.splitlines()
    names = list(re.finditer(r"\S+(?: \S+)*", header))
    bounds = [(m.start(), names[i + 1].start() if i + 1 < len(names) else None) for i, m in enumerate(names)]
    return [{m.group(): line[start:end].strip() for m, (start, end) in zip(names, bounds, strict=True)}
            for line in lines]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    """The demo twin (dgx030 healthy, dgx031 with firmware pending) with deploy/rbac/readonly.yaml applied and a
    token for its ServiceAccount."""
    tmp = tmp_path_factory.mktemp("kubectl-demo")
    with Twin("demo", tmp / "twin") as twin:
        assert twin.api is not None
        for doc in yaml.safe_load_all((RBAC / "readonly.yaml").read_text()):
            twin.api.put(doc)
        twin.api.add_user(SA_TOKEN, SA)
        yield twin


@pytest.fixture(scope="module")
def kubectl(demo: Twin, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(demo.kubeconfig_path, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture(scope="module")
def sa_kubectl(demo: Twin, kubectl: Kubectl) -> Kubectl:
    assert demo.api is not None
    path = demo.api.write_kubeconfig(demo.workdir / "sa-kubeconfig", context=demo.scenario.cluster, token=SA_TOKEN)
    return Kubectl(path, kubectl.home)


def pod_on(kubectl: Kubectl, selector: str, node: str) -> str:
    rows = kubectl.rows("-n", NS, "get", "pods", "-l", selector, "-o", "wide")
    return next(r["NAME"] for r in rows if r["NODE"] == node)


def test_twin_up_writes_a_kubeconfig_kubectl_trusts(tmp_path: Path):
    up = ibconform("twin", "up", "demo", "--dir", str(tmp_path / "twin"))
    try:
        assert up.returncode == 0, up.stderr
        assert f"kubectl: kubectl --kubeconfig {tmp_path / 'twin' / 'kubeconfig'} get nodes" in up.stdout
        kubectl = Kubectl(tmp_path / "twin" / "kubeconfig", tmp_path / "home")
        server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        assert re.fullmatch(r"https://127\.\d+\.\d+\.\d+:\d+", server)
        assert kubectl("config", "view", "--minify", "--raw", "-o",
                       "jsonpath={.clusters[0].cluster.certificate-authority-data}").stdout
        assert [r["NAME"] for r in kubectl.rows("get", "nodes")] == ["dgx030", "dgx031"]
    finally:
        assert ibconform("twin", "down", "--dir", str(tmp_path / "twin")).returncode == 0


def test_get_nodes_shows_the_cordon_of_the_node_awaiting_its_reboot(demo: Twin, kubectl: Kubectl):
    rows = {r["NAME"]: r for r in kubectl.rows("get", "nodes", "-o", "wide")}
    assert {n: r["STATUS"] for n, r in rows.items()} == {"dgx030": "Ready", "dgx031": "Ready,SchedulingDisabled"}
    assert {n: r["INTERNAL-IP"] for n, r in rows.items()} == demo.addresses
    assert {r["VERSION"] for r in rows.values()} == {"v1.31.4"}
    assert "INTERNAL-IP" not in kubectl("get", "nodes").stdout            # priority-1 columns only with -o wide


def test_get_node_states_shows_the_sync_status_of_each_node(kubectl: Kubectl):
    rows = kubectl.rows("get", "sriovnetworknodestates", "-n", NS)
    assert [(r["NAME"], r["SYNC STATUS"], r["DESIRED SYNC STATE"], r["CURRENT SYNC STATE"]) for r in rows] == [
        ("dgx030", "Succeeded", "Idle", "Idle"), ("dgx031", "InProgress", "Reboot_Required", "DrainComplete")]


def test_get_policies_nic_cluster_policy_and_ip_pools(demo: Twin, kubectl: Kubectl):
    policies = [r["NAME"] for r in kubectl.rows("get", "sriovnetworknodepolicies", "-n", NS)]
    assert policies == sorted(f"policy-{iface}" for iface in demo.scenario.nodes["dgx030"].hcas)
    (policy,) = kubectl.rows("get", "nicclusterpolicies")
    assert (policy["NAME"], policy["STATUS"]) == ("nic-cluster-policy", "ready")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", policy["AGE"])     # the CRD types its Age a string
    pools = kubectl.rows("get", "ippools", "-n", NS)
    assert [(r["NAME"], r["SUBNET"], r["BLOCK SIZE"]) for r in pools] == [("ib-pool", "192.168.0.0/16", "24")]


def test_config_daemon_pods_as_the_transport_message_lists_them(demo: Twin, kubectl: Kubectl):
    rows = kubectl.rows("-n", NS, "get", "pods", "-l", "app=sriov-network-config-daemon", "-o", "wide")
    assert sorted(r["NODE"] for r in rows) == ["dgx030", "dgx031"]
    assert {(r["READY"], r["STATUS"], r["RESTARTS"]) for r in rows} == {("1/1", "Running", "0")}
    assert {r["IP"] for r in rows} == set(demo.addresses.values())        # hostNetwork pods
    name = rows[0]["NAME"]
    pod = yaml.safe_load(kubectl("-n", NS, "get", "pod", name, "-o", "yaml").stdout)
    assert (pod["kind"], pod["metadata"]["name"], pod["spec"]["containers"][0]["name"]) == (
        "Pod", name, "sriov-network-config-daemon")


def test_describe_node_shows_its_state_taint_lease_and_pods(demo: Twin, kubectl: Kubectl):
    text = kubectl("describe", "node", "dgx031").stdout
    assert re.search(r"^Taints:\s+node\.kubernetes\.io/unschedulable:NoSchedule$", text, re.M)
    assert re.search(r"^Unschedulable:\s+true$", text, re.M)
    assert "sriovnetwork.openshift.io/state: Reboot_Required" in text
    assert re.search(r"^Lease:\n\s+HolderIdentity:\s+dgx031$", text, re.M) and "Failed to get lease" not in text
    assert re.search(rf"^\s+InternalIP:\s+{re.escape(demo.addresses['dgx031'])}$", text, re.M)
    daemon = pod_on(kubectl, "app=sriov-network-config-daemon", "dgx031")
    assert re.search(rf"^\s+{NS}\s+{daemon}\s", text, re.M)               # Non-terminated Pods


def test_describe_pod_and_node_state(demo: Twin, kubectl: Kubectl):
    daemon = pod_on(kubectl, "app=sriov-network-config-daemon", "dgx031")
    text = kubectl("-n", NS, "describe", "pod", daemon).stdout
    assert re.search(rf"^Node:\s+dgx031/{re.escape(demo.addresses['dgx031'])}$", text, re.M)
    assert re.search(r"^Status:\s+Running$", text, re.M)
    assert re.search(r"^\s+Image:\s+\S+/sriov-network-operator-config-daemon:", text, re.M)
    state = kubectl("-n", NS, "describe", "sriovnetworknodestates", "dgx031").stdout
    assert re.search(r"^\s+Sync Status:\s+InProgress$", state, re.M)


def test_auth_can_i_as_the_admin_a_service_account_token_and_impersonated(kubectl: Kubectl, sa_kubectl: Kubectl):
    proc = kubectl("auth", "can-i", "list", "pods", "-n", NS)
    assert (proc.returncode, proc.stdout.strip()) == (0, "yes")
    assert sa_kubectl("auth", "can-i", "list", "pods", "-n", NS).stdout.strip() == "yes"
    assert sa_kubectl("auth", "can-i", "list", "sriovnetworknodestates.sriovnetwork.openshift.io", "-n",
                      NS).stdout.strip() == "yes"
    for who in (sa_kubectl, kubectl):
        extra = () if who is sa_kubectl else ("--as", SA.name)
        denied = who("auth", "can-i", "create", "pods", "-n", NS, *extra, ok=False)
        assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert sa_kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == SA.name
    listed = {r["Resources"]: r["Verbs"] for r in table(kubectl(
        "auth", "can-i", "--list", "-n", NS, "--as", SA.name).stdout) if r["Resources"]}
    assert listed["sriovnetworknodestates.sriovnetwork.openshift.io"] == "[get list]"
    assert listed["pods"] == "[get list]" and listed["nodes"] == "[get list]"
    assert "*.*" not in listed
    forbidden = sa_kubectl("get", "nodes", "--as", "twin-admin", ok=False)
    assert forbidden.returncode == 1 and f'User "{SA.name}" cannot impersonate resource "users"' in forbidden.stderr


def test_logs_of_the_config_daemon_and_nv_ipam(demo: Twin, kubectl: Kubectl):
    pending = kubectl("-n", NS, "logs", pod_on(kubectl, "app=sriov-network-config-daemon", "dgx031")).stdout
    assert "syncStatus: InProgress" in pending
    reboot = [line for line in pending.splitlines() if "reboot" in line.lower()]     # what '| grep -i reboot' shows
    assert any("mellanox plugin" in line and '"need-reboot": true' in line for line in reboot)
    synced = kubectl("-n", NS, "logs", "--tail=1", pod_on(kubectl, "app=sriov-network-config-daemon", "dgx030"))
    assert synced.stdout.strip().endswith("setNodeStateStatus(): syncStatus: Succeeded, lastSyncError:")
    assert demo.api is not None
    block = next(a for a in demo.api.get("nv-ipam.nvidia.com/v1alpha1", "IPPool", "ib-pool", NS)["status"][
        "allocations"] if a["nodeName"] == "dgx030")
    ipam_log = kubectl("-n", NS, "logs", pod_on(kubectl, "name=nv-ipam-node", "dgx030")).stdout
    assert f'"startIP": "{block["startIP"]}", "endIP": "{block["endIP"]}"' in ipam_log


def test_logs_follow_stays_open_while_the_container_runs(kubectl: Kubectl):
    daemon = pod_on(kubectl, "app=sriov-network-config-daemon", "dgx030")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(kubectl.home)}
    with subprocess.Popen([KUBECTL or "kubectl", "--kubeconfig", str(kubectl.kubeconfig), "-n", NS, "logs", "-f",
                           daemon], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert "new generation" in (proc.stdout.readline() if proc.stdout else "")
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=1)                                 # still following
        finally:
            proc.terminate()


def test_a_kubeconfig_without_the_twins_ca_is_refused(demo: Twin, kubectl: Kubectl, tmp_path: Path):
    config = yaml.safe_load(demo.kubeconfig_path.read_text())
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    (tmp_path / "no-ca").write_text(yaml.safe_dump(config))
    stripped = Kubectl(tmp_path / "no-ca", kubectl.home)
    refused = stripped("get", "nodes", ok=False)
    assert refused.returncode == 1 and "x509: certificate signed by unknown authority" in refused.stderr
    assert stripped("get", "nodes", "--insecure-skip-tls-verify").returncode == 0    # it was only the CA


def test_another_twins_ca_is_refused_too(demo: Twin, kubectl: Kubectl, ipam_image: Twin, tmp_path: Path):
    config = yaml.safe_load(demo.kubeconfig_path.read_text())
    other = yaml.safe_load(ipam_image.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["certificate-authority-data"] = other["clusters"][0]["cluster"][
        "certificate-authority-data"]
    (tmp_path / "other-ca").write_text(yaml.safe_dump(config))
    refused = Kubectl(tmp_path / "other-ca", kubectl.home)("get", "nodes", ok=False)
    assert refused.returncode == 1 and "x509: certificate signed by unknown authority" in refused.stderr


@pytest.fixture(scope="module")
def ipam_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    """nv-ipam on an image that does not exist: its pods in ImagePullBackOff."""
    with Twin("ipam-image", tmp_path_factory.mktemp("kubectl-ipam") / "twin") as twin:
        yield twin


def test_nv_ipam_on_a_wrong_image_as_describe_and_logs_show_it(ipam_image: Twin, kubectl: Kubectl):
    wrong = Kubectl(ipam_image.kubeconfig_path, kubectl.home)
    rows = wrong.rows("-n", NS, "get", "pods", "-l", "name=nv-ipam-node")
    assert {(r["READY"], r["STATUS"]) for r in rows} == {("0/1", "ImagePullBackOff")}
    assert wrong.rows("get", "nicclusterpolicies")[0]["STATUS"] == "notReady"
    name = rows[0]["NAME"]
    described = wrong("-n", NS, "describe", "pod", name).stdout
    assert re.search(r"^Events:\n(.*\n)*\s+Normal\s+BackOff\s+\S+\s+kubelet\s+Back-off pulling image "
                     r'"ghcr\.io/mellanox/nv-ipam:v0\.2\.0"$', described, re.M)
    refused = wrong("-n", NS, "logs", name, ok=False)
    assert refused.returncode == 1
    assert (f'container "nv-ipam-node" in pod "{name}" is waiting to start: trying and failing to pull image'
            in refused.stderr)


def test_the_gate_commands_label_taint_and_uncordon(demo: Twin, kubectl: Kubectl):
    """Last: it changes the nodes (the lines ``ibconform run --gate-label`` prints, run by a shell)."""
    kubectl("cordon", "dgx030")                               # held back until it passes
    lines = gate.commands([{"name": "dgx030", "verdict": "pass"}, {"name": "dgx031", "verdict": "fail"}], KEY)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {
        "HOME": str(kubectl.home), "KUBECONFIG": str(kubectl.kubeconfig)}
    for line in lines:
        proc = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{line}: {proc.stderr}"
    assert demo.api is not None
    good, bad = demo.api.get("v1", "nodes", "dgx030"), demo.api.get("v1", "nodes", "dgx031")
    assert good["metadata"]["labels"][KEY] == "passed" and not good["spec"].get("unschedulable")
    assert not [t for t in good["spec"].get("taints") or [] if t["key"] in (KEY, "node.kubernetes.io/unschedulable")]
    assert bad["metadata"]["labels"][KEY] == "failed"
    assert {"key": KEY, "value": "failed", "effect": "NoSchedule"} in bad["spec"]["taints"]
    assert {r["NAME"]: r["STATUS"] for r in kubectl.rows("get", "nodes")} == {
        "dgx030": "Ready", "dgx031": "Ready,SchedulingDisabled"}
