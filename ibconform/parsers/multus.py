"""Parse Multus pod annotations: the request ``k8s.v1.cni.cncf.io/networks`` and the result
``k8s.v1.cni.cncf.io/network-status`` (or its deprecated twin ``k8s.v1.cni.cncf.io/networks-status``).

Both take the annotation's VALUE (what ``metadata.annotations[key]`` holds), not a YAML or
``kubectl describe`` rendering of it.

>>> status = parse_network_status('[{"name": "k8s-pod-network", "ips": ["192.168.107.206"], "default": true},'
...     '{"name": "default/sriov-net1", "interface": "net1", "device-info": {"type": "pci", "version": "1.1.0",'
...     ' "pci": {"pci-address": "0000:03:00.3", "rdma-device": "mlx5_4"}}}]')
>>> [(s.namespace, s.network, s.interface, s.default) for s in status]
[(None, 'k8s-pod-network', None, True), ('default', 'sriov-net1', 'net1', False)]
>>> status[1].device_info.pci.rdma_device
'mlx5_4'
>>> parse_network_requests("sriovnet1, ns2/ib-net@ib1")
(NetworkRequest(name='sriovnet1', namespace=None, interface=None, infiniband_guid=None), \
NetworkRequest(name='ib-net', namespace='ns2', interface='ib1', infiniband_guid=None))
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ibconform.errors import ParseError

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS_STATUS_DEPRECATED = "k8s.v1.cni.cncf.io/networks-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"

# One element of the text form: [<namespace>/]<name>[@<interface>] (Multus parsePodNetworkObjectName).
_TEXT_ELEMENT = re.compile(r"(?:(?P<ns>[^/@\s]+)/)?(?P<name>[^/@\s]+)(?:@(?P<interface>[^/@\s]+))?")


@dataclass(frozen=True)
class PciDeviceInfo:
    """``device-info.pci``: the VF's PCI address and, from SR-IOV device plugin builds of 2024 on, its
    RDMA device."""

    pci_address: str | None
    rdma_device: str | None


@dataclass(frozen=True)
class DeviceInfo:
    """``device-info`` (device-info spec): ``type`` ``pci``, ``version`` ``1.0.0`` or ``1.1.0``."""

    type: str | None
    version: str | None
    pci: PciDeviceInfo | None


@dataclass(frozen=True)
class NetworkStatus:
    """One network-status entry. ``name`` as written (``<ns>/<nad>``, or the default network's name, or
    ``""`` from older Multus), split into ``namespace`` (``None`` without a ``/``) and ``network``.
    ``gateway`` keeps the strings as written (older Multus writes ``<nil>``)."""

    name: str
    namespace: str | None
    network: str
    interface: str | None
    ips: tuple[str, ...]
    mac: str | None
    default: bool
    gateway: tuple[str, ...]
    mtu: int | None
    device_info: DeviceInfo | None


@dataclass(frozen=True)
class NetworkRequest:
    """One network asked for in ``k8s.v1.cni.cncf.io/networks``."""

    name: str
    namespace: str | None
    interface: str | None
    infiniband_guid: str | None


def parse_network_status(text: str) -> tuple[NetworkStatus, ...]:
    """The entries of a ``network-status`` (or ``networks-status``) annotation value, in order.

    Raises ``ParseError`` when the value is not JSON, not a list of objects, or an entry lacks a string
    ``name`` or has a field of the wrong type. Unknown fields (``dns``, ...) are ignored.
    """
    entries = _json(text, "network-status")
    if not isinstance(entries, list):
        raise ParseError(f"network-status: expected a JSON list, got {type(entries).__name__}", raw=text)
    return tuple(_status(entry, n, text) for n, entry in enumerate(entries))


def parse_network_requests(text: str) -> tuple[NetworkRequest, ...]:
    """The networks a ``k8s.v1.cni.cncf.io/networks`` value asks for.

    Three forms: ``a,b`` (names in the pod's namespace), ``ns/name`` and ``name@ifname`` in that list, or
    a JSON list of ``{"name", "namespace", "interface", "infiniband-guid", ...}`` (a value holding any of
    ``[{"`` is JSON, as Multus decides). An empty value asks for nothing. Raises ``ParseError`` for a
    malformed element or JSON.
    """
    value = text.strip()
    if not value:
        return ()
    if any(c in value for c in '[{"'):  # how Multus tells JSON from the text form
        elements = _json(value, "networks", raw=text)
        if not isinstance(elements, list):
            raise ParseError("networks: expected a JSON list", raw=text)
        return tuple(_request(element, n, text) for n, element in enumerate(elements))
    requests = []
    for element in value.split(","):
        match = _TEXT_ELEMENT.fullmatch(element.strip())
        if not match:
            raise ParseError(f"networks: expected '[<namespace>/]<name>[@<interface>]', got {element.strip()[:60]!r}",
                             raw=text)
        requests.append(NetworkRequest(name=match["name"], namespace=match["ns"], interface=match["interface"],
                                       infiniband_guid=None))
    return tuple(requests)


def _json(text: str, what: str, raw: str | None = None) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParseError(f"{what}: not valid JSON ({first})", raw=text if raw is None else raw) from None


def _status(entry: object, n: int, text: str) -> NetworkStatus:
    if not isinstance(entry, dict):
        raise ParseError(f"network-status: entry {n} is not an object", raw=text)
    name = _field(entry, "name", str, n, text, required=True)
    namespace, slash, network = name.partition("/")
    info = _field(entry, "device-info", dict, n, text)
    mtu = _field(entry, "mtu", int, n, text)
    default = _field(entry, "default", bool, n, text)
    return NetworkStatus(name=name, namespace=namespace if slash else None, network=network if slash else name,
                         interface=_field(entry, "interface", str, n, text), ips=_strings(entry, "ips", n, text),
                         mac=_field(entry, "mac", str, n, text), default=bool(default),
                         gateway=_strings(entry, "gateway", n, text), mtu=mtu,
                         device_info=None if info is None else _device_info(info, n, text))


def _device_info(info: dict, n: int, text: str) -> DeviceInfo:
    pci = _field(info, "pci", dict, n, text)
    return DeviceInfo(type=_field(info, "type", str, n, text), version=_field(info, "version", str, n, text),
                      pci=None if pci is None else PciDeviceInfo(pci_address=_field(pci, "pci-address", str, n, text),
                                                                 rdma_device=_field(pci, "rdma-device", str, n, text)))


def _request(element: object, n: int, text: str) -> NetworkRequest:
    if not isinstance(element, dict):
        raise ParseError(f"networks: element {n} is not an object", raw=text)
    return NetworkRequest(name=_field(element, "name", str, n, text, required=True),
                          namespace=_field(element, "namespace", str, n, text),
                          interface=_field(element, "interface", str, n, text),
                          infiniband_guid=_field(element, "infiniband-guid", str, n, text))


def _field(entry: dict, key: str, kind: type, n: int, text: str, required: bool = False):
    value = entry.get(key)
    if value is None and not required:
        return None
    # bool is an int in Python: an "mtu": true is as wrong as an "mtu": "9000".
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParseError(f"Multus annotation: entry {n}: '{key}' should be a {kind.__name__}, got {value!r}"[:200],
                         raw=text)
    return value


def _strings(entry: dict, key: str, n: int, text: str) -> tuple[str, ...]:
    values = _field(entry, key, list, n, text) or []
    if not all(isinstance(v, str) for v in values):
        raise ParseError(f"Multus annotation: entry {n}: '{key}' should list strings", raw=text)
    return tuple(values)
