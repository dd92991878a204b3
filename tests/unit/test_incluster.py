"""In-cluster API access: the pod's ServiceAccount folder read through the official client's loader, and one line
naming the file when the mount is broken (never the token)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from kubernetes import client

from ibconform.collect import cluster, incluster
from ibconform.errors import UsageError
from ibconform.twin.apiserver.tls import server_context

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2ln"
POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


@pytest.fixture(scope="module")
def ca_pem() -> bytes:
    return server_context("127.0.0.1")[1]


@pytest.fixture
def account(tmp_path: Path, ca_pem: bytes) -> Path:
    """A ServiceAccount folder as the kubelet mounts it."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(TOKEN)
    (folder / "ca.crt").write_bytes(ca_pem)
    (folder / "namespace").write_text("ibconform")
    return folder


def load(folder: Path, environ: dict[str, str] = POD_ENV) -> tuple[client.Configuration, str]:
    configuration = client.Configuration()
    return configuration, incluster.load(configuration, environ, folder)


def test_a_pod_is_the_service_address_and_a_mounted_token(account: Path, tmp_path: Path):
    assert incluster.in_pod(POD_ENV, account)
    assert not incluster.in_pod({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, account)
    assert not incluster.in_pod({**POD_ENV, "KUBERNETES_SERVICE_HOST": ""}, account)
    assert not incluster.in_pod(POD_ENV, tmp_path / "no-such-folder")


def test_the_official_loader_sets_https_the_ca_the_token_and_its_refresh(account: Path):
    configuration, access = load(account)
    assert configuration.host == "https://10.96.0.1:443"
    assert configuration.ssl_ca_cert == str(account / "ca.crt")
    assert configuration.api_key["BearerToken"] == f"bearer {TOKEN}"
    assert configuration.refresh_api_key_hook is not None  # the token file is re-read every minute
    assert access == "in-cluster ServiceAccount of namespace ibconform, https://10.96.0.1:443"


def test_an_odd_namespace_file_is_not_echoed(account: Path):
    (account / "namespace").write_text("<script>\n")
    assert load(account)[1] == "in-cluster ServiceAccount of namespace unknown, https://10.96.0.1:443"


BROKEN = {  # case: (file, what becomes of it: "dangling", "directory", "missing" or its new text), the message
    "token-dangling": (
        "token",
        "dangling",
        r"{f}/token: missing \(the ServiceAccount token\): mount the ServiceAccount",
    ),
    "token-unreadable": ("token", "directory", r"{f}/token: unreadable \(the ServiceAccount token: Is a directory\)"),
    "token-newline": ("token", TOKEN + "\n", r"{f}/token: not a bearer token \(empty, or holds spaces or control"),
    "token-empty": ("token", "", r"{f}/token: not a bearer token "),
    "ca-missing": (
        "ca.crt",
        "missing",
        r"{f}/ca.crt: missing \(the cluster's CA bundle\): mount the ServiceAccount "
        r"volume whole \(ca.crt comes from the kube-root-ca.crt ConfigMap\), or give --kubeconfig$",
    ),
    "ca-garbage": (
        "ca.crt",
        "not a certificate\n",
        r"{f}/ca.crt: not a PEM CA certificate \(SSLError\): mount the "
        r"ServiceAccount volume whole, unmodified$",
    ),
}


def damage(path: Path, how: str) -> None:
    if how in ("dangling", "directory", "missing"):
        path.unlink()
    if how == "dangling":
        path.symlink_to(path.with_name("gone"))
    elif how == "directory":
        path.mkdir()
    elif how != "missing":
        path.write_text(how)


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_mount_is_one_line_naming_the_file_never_the_token(account: Path, case: str):
    name, how, expected = BROKEN[case]
    damage(account / name, how)
    with pytest.raises(UsageError) as info:
        load(account)
    message = str(info.value)
    assert "\n" not in message and TOKEN not in message
    assert re.match(expected.format(f=account), message), message


def test_no_service_address_names_the_variables(account: Path):
    with pytest.raises(
        UsageError,
        match=r"^in-cluster API access: Service host/port is not set\. "
        r"\(KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT\)$",
    ):
        load(account, {})


@pytest.mark.skipif(incluster.in_pod(), reason="this machine is a pod: its ServiceAccount would be used")
def test_in_a_pod_without_a_token_the_kubeconfig_error_says_to_mount_it(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(
        UsageError,
        match=r"^kubeconfig ~/.kube/config: .* \(in a pod, but no ServiceAccount token at "
        r"/var/run/secrets/kubernetes.io/serviceaccount/token: set "
        r"automountServiceAccountToken: true\)$",
    ):
        cluster.api_client()


def test_a_kubeconfig_run_says_which_file_context_and_server(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
        "clusters: [{name: lab, cluster: {server: 'https://ops:pw@127.0.0.1:6443'}}]\n"
        f"users: [{{name: ops, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: ops}}]\n"
    )
    os.chmod(kubeconfig, 0o600)
    api = cluster.api_client(str(kubeconfig), "lab")
    assert api.ibconform_access == f"kubeconfig {kubeconfig}, context lab, https://127.0.0.1:6443"
