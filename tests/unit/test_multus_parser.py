"""Table-driven tests of ibconform.parsers.multus against captured pod annotations.

The captures render the annotations as 'kubectl get -o yaml' block scalars, as 'kubectl describe' lines,
or as pasted JSON; the helpers below take the annotation's value out of each, as the API would give it.
No public capture of an ib-sriov network-status entry (a 20-byte IPoIB 'mac') exists: that row is
composed from the device-info spec and Multus' NetworkStatus type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibconform.errors import ParseError
from ibconform.parsers.multus import (
    NETWORK_STATUS,
    NETWORKS,
    NETWORKS_STATUS_DEPRECATED,
    DeviceInfo,
    NetworkRequest,
    NetworkStatus,
    PciDeviceInfo,
    parse_network_requests,
    parse_network_status,
)
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample

BOTH_ANNOTATIONS = "k8s-network-status-and-legacy-networks-status-device-info-1.0.0-sriov-dp-issue401"
RDMA_DEVICE_TABS = "k8s-network-status-annotation-rdma-device-tabs-sriov-dp-pr530"
HOST_DEVICE = "k8s-network-status-host-device-no-ips-interface-added-cni-plugins-pr1147"
DESCRIBE_POD = "k8s-describe-pod-containercreating-ib-sriov-request-ib-sriov-cni-issue66"


def yaml_value(text: str, key: str) -> str:
    """The value of annotation ``key`` in '-o yaml' text: a '|-' block scalar (its lines dedented) or a
    plain or single-quoted scalar on the key's line. Read by hand: the captures are cut mid-document."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = re.fullmatch(rf"(\s*){re.escape(key)}: ?(.*)", line)
        if not head:
            continue
        indent, rest = len(head[1]), head[2]
        if rest != "|-":
            return rest[1:-1].replace("''", "'") if rest.startswith("'") else rest
        block = []
        for body in lines[i + 1:]:
            if body.strip() and len(body) - len(body.lstrip()) <= indent:
                break
            block.append(body)
        depth = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        return "\n".join(b[depth:] for b in block)
    raise KeyError(key)


def tabbed_value(text: str) -> str:
    """The JSON under the key line of the TAB-indented paste."""
    key, _, value = text.partition("\n")
    assert key == f"{NETWORK_STATUS}:"
    return value


def described_value(text: str, key: str) -> str:
    """The value of ``key`` on its 'kubectl describe' annotation line."""
    match = re.search(rf"^\s*(?:Annotations:\s+)?{re.escape(key)}: (.*)$", text, flags=re.M)
    assert match, key
    return match[1]


OPENSHIFT_SDN = NetworkStatus(name="openshift-sdn", namespace=None, network="openshift-sdn", interface="eth0",
                              ips=("10.128.0.195",), mac=None, default=True, gateway=(), mtu=None, device_info=None)
SRIOVNET1 = NetworkStatus(name="default/sriovnet1", namespace="default", network="sriovnet1", interface="net1",
                          ips=("10.56.217.1",), mac=None, default=False, gateway=(), mtu=None,
                          device_info=DeviceInfo("pci", "1.0.0", PciDeviceInfo("0000:3b:10.5", None)))

STATUS_CASES = [
    pytest.param(yaml_value(sample(BOTH_ANNOTATIONS), NETWORK_STATUS), (OPENSHIFT_SDN, SRIOVNET1),
                 id="sriov-dp-401-device-info-1.0.0"),
    # Older Multus: the default network's entry has no 'interface'; 'gateway' holds the string '<nil>'.
    pytest.param(tabbed_value(sample(RDMA_DEVICE_TABS)),
                 (NetworkStatus("k8s-pod-network", None, "k8s-pod-network", None, ("192.168.107.206",), None, True,
                                (), None, None),
                  NetworkStatus("default/sriov-net1", "default", "sriov-net1", "net1", ("10.56.217.2",),
                                "7a:bb:87:d9:b4:94", False, ("<nil>",), None,
                                DeviceInfo("pci", "1.1.0", PciDeviceInfo("0000:03:00.3", "mlx5_4")))),
                 id="sriov-dp-530-rdma-device-tabs-nil-gateway"),
    pytest.param(yaml_value(sample(HOST_DEVICE), NETWORK_STATUS),
                 (NetworkStatus("ovn-kubernetes", None, "ovn-kubernetes", "eth0", ("fd02:0:0:1::2ed",),
                                "0a:58:70:d0:c0:27", True, (), None, None),
                  NetworkStatus("sriramy/net-a", "sriramy", "net-a", "net1", (), None, False, (), None,
                                DeviceInfo("pci", "1.1.0", PciDeviceInfo("0000:07:00.0", None)))),
                 id="cni-plugins-1147-host-device-no-ips"),
    # Composed: an ib-sriov-cni entry (IPoIB 20-byte mac, mtu of OpenShift 4.14+) and a default entry named "".
    pytest.param(json.dumps([
        {"name": "", "ips": ["10.0.0.5"], "default": True, "dns": {}},
        {"name": "gpu-ns/ibp24s0", "interface": "net1", "ips": ["192.168.24.7"], "mtu": 4092,
         "mac": "00:00:01:27:fe:80:00:00:00:00:00:00:a8:6a:e6:97:54:c1:71:79", "dns": {},
         "device-info": {"type": "pci", "version": "1.1.0",
                         "pci": {"pci-address": "0000:18:00.2", "rdma-device": "mlx5_12"}}}], indent=4),
                 (NetworkStatus("", None, "", None, ("10.0.0.5",), None, True, (), None, None),
                  NetworkStatus("gpu-ns/ibp24s0", "gpu-ns", "ibp24s0", "net1", ("192.168.24.7",),
                                "00:00:01:27:fe:80:00:00:00:00:00:00:a8:6a:e6:97:54:c1:71:79", False, (), 4092,
                                DeviceInfo("pci", "1.1.0", PciDeviceInfo("0000:18:00.2", "mlx5_12")))),
                 id="composed-ib-sriov-entry"),
    pytest.param("[]", (), id="composed-empty"),
]


@pytest.mark.parametrize(("text", "expected"), STATUS_CASES)
def test_parse_network_status(text: str, expected: tuple[NetworkStatus, ...]) -> None:
    assert parse_network_status(text) == expected


def test_deprecated_networks_status_reads_alike_but_this_capture_is_cut() -> None:
    # The index cut the capture inside the deprecated duplicate: its JSON is incomplete.
    text = sample(BOTH_ANNOTATIONS)
    cut = yaml_value(text, NETWORKS_STATUS_DEPRECATED)
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_network_status(cut)
    # As far as it goes, Multus wrote the same document there as in network-status.
    assert yaml_value(text, NETWORK_STATUS).startswith(cut.rstrip())


REQUEST_CASES = [
    pytest.param(yaml_value(sample(BOTH_ANNOTATIONS), NETWORKS), (NetworkRequest("sriovnet1", None, None, None),),
                 id="sriov-dp-401-name"),
    pytest.param(yaml_value(sample(HOST_DEVICE), NETWORKS), (NetworkRequest("net-a", "sriramy", None, None),),
                 id="cni-plugins-1147-json-namespace"),
    pytest.param(described_value(sample(DESCRIBE_POD), NETWORKS), (NetworkRequest("ib-sriov-network", None, None, None),),
                 id="ib-sriov-cni-66-json-describe"),
    # Composed: the text forms Multus accepts (pkg/k8sclient/k8sclient.go parsePodNetworkAnnotation).
    pytest.param("ibp24s0,ibp64s0", (NetworkRequest("ibp24s0", None, None, None), NetworkRequest("ibp64s0", None, None, None)),
                 id="composed-comma-list"),
    pytest.param(" gpu-ns/ibp24s0@net1 , ibp64s0 ",
                 (NetworkRequest("ibp24s0", "gpu-ns", "net1", None), NetworkRequest("ibp64s0", None, None, None)),
                 id="composed-namespace-and-interface"),
    pytest.param('[{"name": "ibp24s0", "namespace": "gpu-ns", "interface": "net1",'
                 ' "infiniband-guid": "0a:1b:2c:3d:4e:5f:60:71"}]',
                 (NetworkRequest("ibp24s0", "gpu-ns", "net1", "0a:1b:2c:3d:4e:5f:60:71"),), id="composed-json-guid"),
    pytest.param("", (), id="composed-empty"),
]


@pytest.mark.parametrize(("text", "expected"), REQUEST_CASES)
def test_parse_network_requests(text: str, expected: tuple[NetworkRequest, ...]) -> None:
    assert parse_network_requests(text) == expected


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("", parse_network_status), ("{}", parse_network_status), ("[1]", parse_network_status),
        ('[{"ips": []}]', parse_network_status), ('[{"name": 3}]', parse_network_status),
        ('[{"name": "a", "ips": "10.0.0.1"}]', parse_network_status), ('[{"name": "a", "ips": [1]}]', parse_network_status),
        ('[{"name": "a", "default": "true"}]', parse_network_status), ('[{"name": "a", "mtu": true}]', parse_network_status),
        ('[{"name": "a", "device-info": {"pci": []}}]', parse_network_status),
        ('[{"name": "a", "device-info": {"pci": {"rdma-device": 4}}}]', parse_network_status),
        ("[" * 5000, parse_network_status), ('[{"name": "a"}', parse_network_status),
        ("a,,b", parse_network_requests), ("ns/a/b", parse_network_requests), ("a@b@c", parse_network_requests),
        ("[{}]", parse_network_requests), ('["a"]', parse_network_requests), ("[", parse_network_requests),
        ('[{"name": "a", "namespace": 1}]', parse_network_requests),
    ],
)
def test_raises_parse_error_with_raw_text(text: str, parse: Callable[[str], object]) -> None:
    assert_refused(parse, text)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "interface", "ips", "mac", "default", "gateway", "mtu", "device-info", "type",
                         "version", "pci", "pci-address", "rdma-device", "namespace", "infiniband-guid", "dns"]),
        children, max_size=6),
    max_leaves=20)


@pytest.mark.parametrize("parse", [parse_network_status, parse_network_requests])
@settings(max_examples=200)
@given(text=garbage(max_size=100, extra=_json_values.map(json.dumps)))
def test_arbitrary_text_raises_only_parse_error(parse: Callable[[str], object], text: str) -> None:
    parsed_or_refused(parse, text)
