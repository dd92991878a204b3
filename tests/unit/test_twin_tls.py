"""The twin's API over HTTPS (its default): verified with its own CA, refused without it; plain HTTP on request."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client, config

from ibconform.twin.apiserver.api_twin import ApiTwin


@pytest.fixture(scope="module")
def api():
    with ApiTwin(token="tls-admin-token") as twin:
        yield twin
        assert twin.internal_errors == []


def test_serves_https_verified_by_the_ca_in_its_kubeconfig(api: ApiTwin, tmp_path: Path):
    assert api.url.startswith("https://127.0.0.1:")
    configuration = client.Configuration()
    config.load_kube_config(str(api.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
    assert "default" in names


def test_a_client_without_the_ca_is_refused(api: ApiTwin):
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"{api.url}/version", context=ssl.create_default_context(), timeout=10)


def test_the_certificate_is_for_the_served_address_only_and_outlives_a_twin_left_up(api: ApiTwin):
    pem = ssl.get_server_certificate(("127.0.0.1", api.port), timeout=10)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.value.get_values_for_type(x509.DNSName) == []
    assert certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_plain_http_on_request():
    with ApiTwin(tls=False) as plain:
        assert plain.url.startswith("http://") and plain.ca_pem is None
        with urllib.request.urlopen(f"{plain.url}/version", timeout=10) as answer:
            assert answer.status == 200


def test_localhost_gets_a_certificate_for_its_name():
    with ApiTwin(host="localhost") as named:
        pem = ssl.get_server_certificate(("127.0.0.1", named.port), timeout=10)
        names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName)
        assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
        context = ssl.create_default_context(cadata=named.ca_pem.decode())
        with urllib.request.urlopen(f"{named.url}/version", context=context, timeout=10) as answer:
            assert answer.status == 200
