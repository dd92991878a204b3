"""The cluster collector against the twin's API when it refuses: 401, 403, 404 (CRD missing), 500,
down. Each becomes one line naming what failed and what to do; node checks are judged regardless."""

from __future__ import annotations

import pytest

from ibconform import inventory
from ibconform.collect import cluster
from ibconform.twin.apiserver.api_twin import ApiTwin


@pytest.fixture
def api(tmp_path):
    with ApiTwin(token="right-token") as twin:
        yield twin


def _inventory(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text('format: ibconform/v1\ncluster: c\nprofiles: {p: {hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]}}\n'
                    "nodes: [{names: dgx030, profile: p}]\n")
    return inventory.load(path)


def _collect(api, tmp_path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    client = cluster.api_client(str(kubeconfig), None, timeout=5)
    return cluster.collect_cluster(client, _inventory(tmp_path))


def test_all_lists_collected_when_the_api_answers(api, tmp_path):
    lists, errors = _collect(api, tmp_path)
    assert errors == {} and set(lists) == {r.plural for r in cluster.RESOURCES}
    assert lists["nodes"]["kind"] == "NodeList"


def test_missing_crd_says_which_operator_is_not_installed(api, tmp_path):
    api.uninstall_crd("nicclusterpolicies.mellanox.com")
    lists, errors = _collect(api, tmp_path)
    assert "nicclusterpolicies" not in lists
    assert errors["nicclusterpolicies"] == (
        "list nicclusterpolicies.mellanox.com (cluster-wide): not found (404): the nicclusterpolicies.mellanox.com "
        "API is not served — is the NVIDIA Network Operator installed?")


def test_wrong_token_is_401(api, tmp_path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace("right-token", "wrong-token"))
    _, errors = cluster.collect_cluster(cluster.api_client(str(kubeconfig), None, timeout=5), _inventory(tmp_path))
    assert errors["nodes"].startswith("list nodes (cluster-wide): unauthorized (401)")
    assert "wrong-token" not in " ".join(errors.values()) and "right-token" not in " ".join(errors.values())


def test_forbidden_names_verb_resource_and_namespace(api, tmp_path):
    api.set_fault(status=403, paths=r"/sriovnetworknodestates")
    lists, errors = _collect(api, tmp_path)
    assert errors == {"sriovnetworknodestates": (
        "list sriovnetworknodestates.sriovnetwork.openshift.io in namespace network-operator: forbidden (403): "
        "the account may not list sriovnetworknodestates.sriovnetwork.openshift.io in namespace network-operator "
        "— bind the ibconform role (deploy/rbac/readonly.yaml)")}
    assert "nodes" in lists


def test_server_error_and_api_down(api, tmp_path):
    api.set_fault(status=500, paths=r"/pods")
    _, errors = _collect(api, tmp_path)
    assert errors["pods"].startswith("list pods in namespace network-operator: API error 500")
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.stop()
    _, errors = cluster.collect_cluster(cluster.api_client(str(kubeconfig), None, timeout=2), _inventory(tmp_path))
    assert set(errors) == {r.plural for r in cluster.RESOURCES}
    assert "API server unreachable or too slow" in errors["nodes"]


def test_read_only_client_refuses_writes_before_sending(api, tmp_path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    client = cluster.api_client(str(kubeconfig), None, timeout=5, read_only=True)
    from kubernetes.client import CoreV1Api
    api.clear_requests()
    with pytest.raises(cluster.ReadOnlyViolation, match="read-only run refused to send POST"):
        CoreV1Api(client).create_namespaced_pod("default", {"metadata": {"name": "x"}, "spec": {"containers": []}})
    assert [r for r in api.requests if r.is_write] == []
