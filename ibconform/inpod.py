"""Judgements on what the probe pod showed: its networks attached (multus' network-status, the CNI's events), RDMA
usable from inside (uverbs, ibv_devinfo, memlock, CAP_IPC_LOCK) and NCCL over InfiniBand at speed.

Pure functions over parsed, untrusted values; each returns why the evidence falls short (one line, or a list of
them) or None / [] when it does not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ibconform.parsers.limits import Capabilities, MemlockLimit
from ibconform.parsers.multus import NetworkStatus
from ibconform.parsers.nccl import NcclLog
from ibconform.parsers.nccl_tests import NcclTestsRun
from ibconform.parsers.sandbox import SandboxFailure
from ibconform.parsers.verbs import Devinfo

#: Multus' words when a requested network has no NetworkAttachmentDefinition (k8sclient.getKubernetesDelegate).
_NAD_MISSING = re.compile(r"cannot find a network-attachment-definition \((?P<name>[^()\s]*)\) in namespace "
                          r"\((?P<namespace>[^()\s]*)\)")
ZERO_GUID = "00:00:00:00:00:00:00:00"


def summary(problems: list[str], shown: int = 3) -> str:
    """The first ``shown`` problems joined, and how many more (a message stays one readable line).

    >>> summary(["a", "b", "c", "d", "e"])
    'a; b; c; and 2 more'
    """
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more


def missing_definition(message: str) -> tuple[str, str] | None:
    """(namespace, name) of the NetworkAttachmentDefinition multus could not find, from a sandbox failure's text.

    >>> missing_definition('... getKubernetesDelegate: cannot find a network-attachment-definition (ib-net) in '
    ...                    'namespace (default): network-attachment-definitions.k8s.cni.cncf.io "ib-net" not found')
    ('default', 'ib-net')
    """
    match = _NAD_MISSING.search(" ".join(message.split()))
    return (match["namespace"], match["name"]) if match else None


def cni_failure_text(failure: SandboxFailure) -> str:
    """A FailedCreatePodSandBox in the CNI's own words: ``network "<net>": <the plugin's message>``."""
    where = f'network "{failure.network}"' if failure.network else "pod sandbox"
    return f"{where}: {failure.cni_message}"


def attachment_problems(requested: Iterable[tuple[str, str]], statuses: Iterable[NetworkStatus]) -> list[str]:
    """Why the network-status does not show each requested ``(namespace, network)`` attached once, as one interface
    with a PCI device; [] when it does."""
    entries = [s for s in statuses if not s.default]
    problems = []
    for namespace, network in requested:
        found = [s for s in entries if s.network == network and s.namespace in (namespace, None)]
        if not found:
            problems.append(f"{namespace}/{network} not in network-status")
        elif len(found) > 1:
            problems.append(f"{namespace}/{network} attached {len(found)} times (one VF requested)")
        elif not found[0].interface:
            problems.append(f"{namespace}/{network} without an interface")
        elif not (found[0].device_info and found[0].device_info.pci and found[0].device_info.pci.pci_address):
            problems.append(f"{namespace}/{network} ({found[0].interface}) without device-info PCI address")
    return problems


def address_problem(ips: Iterable[str], block: str | None) -> str | None:
    """Why none of ``ips`` lies in the node's block of the pool (``a.b.c.d-e.f.g.h`` of an IPPool, a CIDRPool
    prefix), or None."""
    ips = list(ips)
    if not ips:
        return "no address"
    if block is None:
        return f"{', '.join(ips)}: the pool has no block for the node"
    try:
        if "-" in block:
            first, last = (ipaddress.ip_address(p.strip()) for p in block.split("-", 1))
            inside = [ip for ip in ips if _address(ip) is not None and first <= _address(ip) <= last]  # type: ignore[operator]
        else:
            net = ipaddress.ip_network(block, strict=False)
            inside = [ip for ip in ips if _address(ip) in net]
    except (ValueError, TypeError):
        return f"{', '.join(ips)}: the pool's block {block!r} is not an address range"
    return None if inside else f"{', '.join(ips)} outside the node's block {block}"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("/", 1)[0])
    except ValueError:
        return None


def vf_problem(pci: str, pf_vfs: dict[str, dict[int, str]]) -> str | None:
    """Why ``pci`` is not a VF of one of the expected PFs (``pf_vfs``: PF name -> its VFs by index), or None."""
    for vfs in pf_vfs.values():
        if pci.lower() in (v.lower() for v in vfs.values()):
            return None
    return f"{pci} is not a VF of {' or '.join(pf_vfs) or 'an expected PF'}"


def uverbs_problems(devices: Iterable[str], listing: str | None, ibdev: dict[str, str]) -> list[str]:
    """Why an RDMA device of ``devices`` has no uverbs node in the pod (``listing``: ``ls /dev/infiniband``,
    None when it failed; ``ibdev``: uverbsN -> the RDMA device it opens)."""
    nodes = set((listing or "").split())
    problems = []
    for device in devices:
        found = [u for u, dev in ibdev.items() if dev.strip() == device and u in nodes]
        if not found:
            problems.append(f"{device} has no /dev/infiniband/uverbs node")
    return problems


def port_problems(devinfo: Devinfo, devices: Iterable[str]) -> list[str]:
    """Why a device of ``devices`` is not usable per ``ibv_devinfo``: absent, a GUID zero, port 1 not
    PORT_ACTIVE, SM LID 0."""
    by_name: dict = {}
    for dev in devinfo.devices:       # a device listed twice (two runs in one paste): its first block
        by_name.setdefault(dev.hca_id, dev)
    problems = []
    for device in devices:
        dev = by_name.get(device)
        if dev is None:
            said = "; ".join(devinfo.errors) or "not listed"
            problems.append(f"{device}: ibv_devinfo {said}")
            continue
        if dev.node_guid in (None, ZERO_GUID):
            problems.append(f"{device}: node_guid {dev.fields.get('node_guid', 'absent')}")
        if dev.sys_image_guid in (None, ZERO_GUID):
            problems.append(f"{device}: sys_image_guid {dev.fields.get('sys_image_guid', 'absent')}")
        port = next((p for p in dev.ports if p.port == 1), None)
        if port is None:
            problems.append(f"{device}: no port 1")
            continue
        if port.state != "PORT_ACTIVE":
            problems.append(f"{device}: port 1 {port.fields.get('state', port.state)}")
        if not port.sm_lid:
            problems.append(f"{device}: sm_lid {port.fields.get('sm_lid', 'absent')}")
    return problems


def memlock_problem(limit: MemlockLimit, minimum: int | None) -> str | None:
    """Why the soft locked-memory limit is below ``minimum`` bytes (None: unlimited required), or None."""
    soft = limit.soft_bytes
    if soft is None:
        return None
    if minimum is None:
        return f"{soft} bytes (unlimited expected)"
    return f"{soft} bytes (at least {minimum} expected)" if soft < minimum else None


def ipc_lock_problem(caps: Capabilities) -> str | None:
    effective = caps.ipc_lock_effective
    if effective:
        return None
    return "CapEff absent from /proc/self/status" if effective is None else "CAP_IPC_LOCK not in CapEff"


def transport_problem(log: NcclLog) -> str | None:
    """Why NCCL did not carry the traffic over InfiniBand (``Using network Socket``, ``NET/IB : No device found``,
    channels via NET/Socket), or None."""
    sockets = [c for c in log.net_channels if c.net == "Socket"]
    if "Socket" in log.networks or sockets or (log.ib_no_device and not log.ib_devices):
        why = "NET/IB : No device found" if log.ib_no_device else "Using network Socket"
        where = f" over {', '.join(dict.fromkeys(log.socket_interfaces))}" if log.socket_interfaces else ""
        return f"NET/Socket{where} ({why})"
    if not log.networks and not log.net_channels:
        return "no 'Using network' line and no NET channel in the NCCL log"
    return None


def gdr_problem(log: NcclLog) -> str | None:
    """Why NCCL did not use GPUDirect RDMA (a HCA reported Disabled, or a NET channel without /GDRDMA), or None."""
    disabled = list(dict.fromkeys(f"{g.hca} '{g.device}'" for g in log.gdr if not g.enabled))
    if disabled:
        return "GPU Direct RDMA Disabled for HCA " + summary(disabled).replace("; ", ", ")
    if log.gdr_in_use is False:
        plain = next(c for c in log.net_channels if not c.gdrdma)
        return f"channel {plain.channel:02d} via {plain.transport} (no GDRDMA)"
    if log.gdr_in_use is None and not any(g.enabled for g in log.gdr):
        return "no GPU Direct RDMA line and no NET channel in the NCCL log"
    return None


def bandwidth_of(run: NcclTestsRun) -> float | None:
    """The run's ``# Avg bus bandwidth`` (GB/s), the lowest when several ranks printed one; None without."""
    return min((a.value for a in run.avg_bus_bandwidth), default=None)


def bandwidth_problem(busbw: float | None, minimum: float | None) -> str | None:
    if busbw is None:
        return "no '# Avg bus bandwidth' line"
    if minimum is not None and busbw < minimum:
        return f"{busbw:g} GB/s"
    return None
