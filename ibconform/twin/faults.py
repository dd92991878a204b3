"""The fault registry: one small function per fault kind, editing a scenario's truth.

A device fault takes one :class:`~ibconform.twin.machines.hardware.Hca` and keyword parameters (their defaults
give their types); a node fault takes the :class:`~ibconform.twin.machines.hardware.Node`; a cluster fault the
:class:`~ibconform.twin.kube.ClusterKube`. A scenario names a fault by kind and may pick devices
(``hcas: [ibp24s0]``, by interface or PCI address) and parameters::

    nodes:
      - {names: dgx031, faults: [{kind: firmware-pending, hcas: [ibp24s0], current: 16}]}
    kubernetes:
      faults: [{kind: ipam-image, image: nv-ipam}]

Without ``hcas`` a device fault hits every device its kind targets by default (the node's HCAs, or
its BlueField-3 DPUs for ``dpu-vfs``). Hardware faults change what the node serves and, through the
derivations of the cluster emulation, what the API shows; the Kubernetes-side faults at the end change
only the API (``kube.py``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ibconform.twin.kube import ClusterKube, PolicyDrift
from ibconform.twin.machines.hardware import ZERO_GUID, Hca, Node, assigned_guid
from ibconform.twin.machines.render import PF_ATTRIBUTES

NV_ACCESS_ERROR = "-E- Error when trying to check if NV access registers are supported"
OPEN_ERROR = "-E- Failed to open the device"
#: What a broken terminal stream or a crashed tool leaves: escape sequences, a NUL, no table.
GARBAGE = "\x1b[2J\x1b[H\x00\x7f@@ mst: ioctl 0xc0185a02 returned \x1b[31m-14\x1b[0m ?? \ufffd\ufffd\n"


@dataclass(frozen=True)
class FaultKind:
    name: str
    scope: Literal["hca", "node", "cluster"]
    apply: Callable[..., None]
    params: dict[str, Any]                      # name -> default (its type is the parameter's type)
    targets: Callable[[Node], list[Hca]] | None  # default devices of an "hca" fault
    doc: str


FAULTS: dict[str, FaultKind] = {}


def _hcas(node: Node) -> list[Hca]:
    return list(node.hcas.values())


def _dpus(node: Node) -> list[Hca]:
    return [d for d in node.excluded.values() if d.slot.type.startswith("BlueField")]


def fault(name: str, scope: Literal["hca", "node", "cluster"] = "hca",
          targets: Callable[[Node], list[Hca]] | None = _hcas) -> Callable:
    """Register the decorated function as fault ``name``."""
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        params = {p.name: p.default for p in inspect.signature(fn).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY}
        doc = inspect.getdoc(fn) or ""
        FAULTS[name] = FaultKind(name, scope, fn, params, targets if scope == "hca" else None,
                                 doc.splitlines()[0] if doc else "")
        return fn
    return register


@fault("firmware-pending")
def firmware_pending(hca: Hca, *, current: int = 16) -> None:
    """NVRAM holds NUM_OF_VFS Next Boot, but the firmware still runs ``current``: a warm reboot did not apply it."""
    hca.num_of_vfs.current = current
    hca.sriov_totalvfs = current     # sysfs reflects the active value
    hca.sriov_numvfs = 0             # the operator waits for the reboot that never comes


@fault("mstconfig-nv-access")
def mstconfig_nv_access(hca: Hca) -> None:
    """mstconfig cannot reach the NV configuration registers (exit 3), as after a change that needs a power cycle."""
    hca.mst_error = NV_ACCESS_ERROR


@fault("mstconfig-open-failed")
def mstconfig_open_failed(hca: Hca) -> None:
    """mstconfig cannot open the device (exit 3): kernel lockdown, an mstflint too old for the device."""
    hca.mst_error = OPEN_ERROR


@fault("no-vfs")
def no_vfs(hca: Hca) -> None:
    """The firmware is right but the kernel has no VFs on the PF (sriov_numvfs 0)."""
    hca.sriov_numvfs = 0


@fault("few-vfs")
def few_vfs(hca: Hca, *, vfs: int = 4) -> None:
    """The kernel holds only ``vfs`` VFs on the PF (sriov_numvfs written by hand after the config daemon's last sync,
    which it still reports Succeeded)."""
    if not 0 < vfs <= hca.sriov_totalvfs:
        raise ValueError(f"vfs: expected 1 to {hca.sriov_totalvfs} (the PF's sriov_totalvfs; none is fault no-vfs), "
                         f"got {vfs}")
    hca.sriov_numvfs = vfs


@fault("dpu-vfs", targets=_dpus)
def dpu_vfs(hca: Hca, *, vfs: int = 8) -> None:
    """An excluded device (by default each BlueField-3) carries VFs it must not have."""
    hca.sriov_en.current = hca.sriov_en.next_boot = True
    hca.num_of_vfs.current = hca.num_of_vfs.next_boot = vfs
    hca.sriov_totalvfs = max(hca.sriov_totalvfs, vfs)
    hca.sriov_numvfs = vfs


@fault("port-down")
def port_down(hca: Hca) -> None:
    """The IB port has no link: state 1: DOWN, phys_state 2: Polling, the rate the port idles at."""
    hca.port_state = "DOWN"
    hca.rate = "10 Gb/sec (4X SDR)"


@fault("slow-link")
def slow_link(hca: Hca, *, rate: str = "200 Gb/sec (2X NDR)") -> None:
    """The port trained at a lower rate than expected."""
    hca.rate = rate


@fault("firmware-version")
def firmware_version(hca: Hca, *, version: str = "28.39.1002") -> None:
    """The HCA runs another firmware version than its siblings."""
    hca.fw_ver = version


@fault("sriov-disabled")
def sriov_disabled(hca: Hca) -> None:
    """SRIOV_EN is False(0) in firmware: no VFs can exist."""
    hca.sriov_en.current = hca.sriov_en.next_boot = False
    hca.sriov_totalvfs = 0
    hca.sriov_numvfs = 0


@fault("link-type-eth")
def link_type_eth(hca: Hca) -> None:
    """The PF's port runs Ethernet (its LINK_TYPE_P<port> ETH(2)) where InfiniBand is expected, at the card's
    Ethernet speed."""
    hca.link_type.current = hca.link_type.next_boot = "ETH"
    hca.rate = hca.type.eth_rate


@fault("mst-delay")
def mst_delay(hca: Hca, *, seconds: float = 5.0) -> None:
    """mstconfig takes ``seconds`` to answer."""
    hca.mst_delay = seconds


@fault("mst-hang")
def mst_hang(hca: Hca) -> None:
    """mstconfig never returns (a wedged driver)."""
    hca.mst_delay = math.inf


@fault("mstconfig-garbage")
def mstconfig_garbage(hca: Hca, *, text: str = GARBAGE) -> None:
    """mstconfig prints ``text`` (by default control characters and no table) and exits 0."""
    hca.mst_output = text


@fault("mstconfig-truncated")
def mstconfig_truncated(hca: Hca, *, keep: int = 470) -> None:
    """mstconfig exits 0 but its output stops after ``keep`` characters (by default inside the NUM_OF_VFS row)."""
    hca.mst_cut = keep


@fault("sysfs-missing")
def sysfs_missing(hca: Hca, *, file: str = "sriov_totalvfs") -> None:
    """The PF's sysfs attribute ``file`` does not exist (an older kernel, a driver that did not bind fully)."""
    if file not in PF_ATTRIBUTES:
        raise ValueError(f"file: expected one of {', '.join(PF_ATTRIBUTES)}, got {file!r}")
    hca.sysfs_missing += (file,)


def _vf_index(hca: Hca, vf: int) -> int:
    if not 0 <= vf < hca.sriov_numvfs:
        raise ValueError(f"vf: expected a VF of {hca.iface}, 0 to {hca.sriov_numvfs - 1}, got {vf}")
    return vf


@fault("vf-zero-guid")
def vf_zero_guid(hca: Hca, *, vf: int = 0) -> None:
    """VF ``vf`` has no GUID (node and port 00:00:00:00:00:00:00:00: nobody set it), so its port stays INIT and
    ib-sriov-cni refuses it ("GUID is not valid")."""
    hca.vf_guids[_vf_index(hca, vf)] = ZERO_GUID


@fault("vf-guid-duplicate")
def vf_guid_duplicate(hca: Hca, *, node: str = "", vf: int = 0) -> None:
    """VF ``vf`` has the GUID of VF ``vf`` of the same PF on node ``node`` (a static GUID file copied between
    nodes): two ports of the fabric with one GUID."""
    if not node.strip():
        raise ValueError("node: expected the name of the node whose VF GUID this one copies, got an empty string")
    hca.vf_guids[_vf_index(hca, vf)] = assigned_guid(node, hca.pci, vf)


@fault("vf-unbound")
def vf_unbound(hca: Hca, *, vf: int = 0) -> None:
    """VF ``vf`` has no driver bound (unbound by hand or by a VFIO tool): no RDMA device, no uverbs/umad."""
    hca.vfs_unbound += (_vf_index(hca, vf),)


@fault("vf-port-down")
def vf_port_down(hca: Hca) -> None:
    """The subnet manager does not serve virtual ports (no virtualization): every VF port DOWN, the PF ACTIVE."""
    hca.vf_port_state = "DOWN"


@fault("rdma-netns", scope="node")
def rdma_netns(node: Node, *, mode: str = "exclusive") -> None:
    """ib_core runs in RDMA netns mode ``mode`` (``rdma system set netns <mode>`` by hand), whatever was asked."""
    if mode not in ("shared", "exclusive"):
        raise ValueError(f"mode: expected shared or exclusive, got {mode!r}")
    node.kernel.rdma_netns = mode


@fault("kernel-lockdown", scope="node")
def kernel_lockdown(node: Node, *, mode: str = "integrity") -> None:
    """The kernel is locked down (secure boot): /sys/kernel/security/lockdown shows [``mode``] and mstconfig
    fails to open every device (exit 3)."""
    if mode not in ("integrity", "confidentiality"):
        raise ValueError(f"mode: expected integrity or confidentiality, got {mode!r}")
    node.kernel.lockdown = mode
    for device in node.devices.values():
        device.mst_error = OPEN_ERROR


@fault("unreachable", scope="node")
def unreachable(node: Node) -> None:
    """No sshd: the node's address refuses connections."""
    node.ssh = "unreachable"


@fault("hung", scope="node")
def hung(node: Node) -> None:
    """The address accepts TCP but never answers (no SSH banner)."""
    node.ssh = "hung"


@fault("key-refused", scope="node")
def key_refused(node: Node) -> None:
    """sshd refuses the suite's key: the node's authorized_keys does not hold it."""
    node.host.authorized = False


@fault("sudo-password", scope="node")
def sudo_password(node: Node) -> None:
    """sudo asks for a password, so ``sudo -n`` refuses (matters with the inventory's ``ssh.sudo: true``)."""
    node.host.sudo_password = True


@fault("reboot", scope="node")
def reboot(node: Node, *, after: float = 1.0) -> None:
    """The node goes down ``after`` s into its mstconfig queries: sshd dies and the connection closes."""
    node.host.dies, node.host.dies_after = "reboot", after


@fault("freeze", scope="node")
def freeze(node: Node, *, after: float = 1.0) -> None:
    """The node stops answering ``after`` s into its mstconfig queries: the connection stays open, silent
    (a power loss or a kernel hang: no FIN ever comes)."""
    node.host.dies, node.host.dies_after = "freeze", after


# ------------------------------------------------------------------------------ Kubernetes-side faults

@fault("cordoned", scope="node")
def cordoned(node: Node) -> None:
    """Cordoned and held by the maintenance operator (taint maintenance.nvidia.com/in-progress:NoSchedule)."""
    node.kube.cordoned = True


@fault("vfs-taken", scope="node")
def vfs_taken(node: Node) -> None:
    """A running pod training-<node> in namespace default holds every VF the node advertises."""
    node.kube.vfs_taken = True


@fault("policy-drift")
def policy_drift(hca: Hca, *, vfs: int = 4, priority: int = 10) -> None:
    """A node-specific policy policy-<iface>-<node> outranks the cluster's for this PF with another numVfs."""
    if not 0 <= priority <= 99:
        raise ValueError(f"priority: expected 0 to 99 (lower wins), got {priority}")
    hca.policy_drift = PolicyDrift(num_vfs=vfs, priority=priority)


@fault("operator-failed", scope="node")
def operator_failed(node: Node, *, error: str = "timed out waiting for the condition") -> None:
    """The config daemon fails on healthy hardware: syncStatus Failed with ``error`` as lastSyncError."""
    if not error.strip():
        raise ValueError("error: expected the lastSyncError text, got an empty string")
    node.kube.sync_error = error


@fault("admission-error", scope="node")
def admission_error(node: Node) -> None:
    """Kubelet rejects pods asking for VFs after binding (UnexpectedAdmissionError from the device manager)."""
    node.kube.admission_error = True


# ------------------------------------------------------------------------------ in the probe pod

@fault("definition-missing", scope="node")
def definition_missing(node: Node) -> None:
    """The NetworkAttachmentDefinition of the probe's first network is missing: multus fails CNI ADD."""
    node.kube.definition_missing = True


@fault("cni-add-error")
def cni_add_error(hca: Hca) -> None:
    """ib-sriov-cni fails CNI ADD on this PF's VF: 'VF <pf>v0 GUID is not valid' (the GUID was never set)."""
    hca.cni_add_error = True


@fault("no-uverbs", scope="node")
def no_uverbs(node: Node) -> None:
    """Pods get no /dev/infiniband/uverbsN (the resource is not isRdma): verbs sees no device."""
    node.kube.uverbs = False


@fault("memlock-low", scope="node")
def memlock_low(node: Node, *, memlock: int = 65536) -> None:
    """Containers run with ``memlock`` bytes of locked memory (the runtime's default 64 KiB, not unlimited)."""
    if memlock < 0:
        raise ValueError(f"memlock: expected bytes >= 0, got {memlock}")
    node.kube.memlock = memlock


@fault("gdr-disabled", scope="node")
def gdr_disabled(node: Node) -> None:
    """GPUDirect RDMA unavailable (nvidia-peermem not loaded): NCCL stages through host memory."""
    node.kube.gdr = False


@fault("socket-fallback", scope="node")
def socket_fallback(node: Node) -> None:
    """NCCL finds no usable IB device in the pod and falls back to NET/Socket over eth0."""
    node.kube.nccl_socket = True


@fault("hca-degraded")
def hca_degraded(hca: Hca, *, width: int = 8) -> None:
    """The HCA's PCIe link trained at ``width`` lanes, not 16: its port is ACTIVE at full rate, its traffic is not."""
    if not 1 <= width <= 16:
        raise ValueError(f"width: expected 1 to 16 lanes, got {width}")
    hca.pcie_width = width


@fault("ipam-image", scope="cluster")
def ipam_image(cluster: ClusterKube, *, image: str = "nv-ipam", repository: str = "ghcr.io/mellanox",
               version: str = "v0.2.0") -> None:
    """NicClusterPolicy spec.nvIpam names an image that does not exist: nv-ipam pods in ImagePullBackOff."""
    for key, value in (("image", image), ("repository", repository), ("version", version)):
        if not value.strip():
            raise ValueError(f"{key}: expected a non-empty string")
    cluster.nv_ipam.image, cluster.nv_ipam.repository, cluster.nv_ipam.version = image, repository, version
