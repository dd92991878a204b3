"""The cluster side of a scenario's truth: what Kubernetes holds that no hardware explains.

Most of the cluster follows from the hardware (``hardware.py``): the operator's sync state, the node's
allocatable, the probe's fate are derived from it (``operator.py``, ``ipam.py``, ``scheduler.py``). These
few facts are not: an admin's cordon, a workload holding the VFs, a policy applied by hand, an operator
or kubelet failing on its own, the image NicClusterPolicy asks nv-ipam to run. Faults (``faults.py``)
set them; healthy values are the defaults. What the admin chose is here too: the policies' shapes, the
namespaces each component runs in, how nv-ipam is installed and which pool it serves::

    scenario.nodes["dgx016"].kube.cordoned             # True
    scenario.kubernetes.nv_ipam.image                  # 'nvidia-k8s-ipam'
    scenario.kubernetes.namespaces.sriov_operator      # 'network-operator'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: The taint the NVIDIA maintenance operator puts on a node it holds (the probe tolerates it).
MAINTENANCE_TAINT = "maintenance.nvidia.com/in-progress"


@dataclass
class PolicyDrift:
    """A node-specific SriovNetworkNodePolicy someone applied for one PF, outranking the cluster's."""

    num_vfs: int
    priority: int


@dataclass
class NodeKube:
    """One node's Kubernetes-side facts beyond its hardware."""

    cordoned: bool = False              # kubectl cordon + the maintenance taint
    vfs_taken: bool = False             # a running workload requests every VF of the node
    sync_error: str | None = None       # the config daemon fails with this lastSyncError, hardware or not
    admission_error: bool = False       # kubelet's device manager rejects pods asking for SR-IOV VFs
    labels: dict[str, str] = field(default_factory=dict)   # Node labels beyond the kubelet's and the operators'


@dataclass
class NvIpam:
    """NicClusterPolicy ``spec.nvIpam``: network-operator v25.10.0's release defaults unless a fault says otherwise."""

    image: str = "nvidia-k8s-ipam"
    repository: str = "nvcr.io/nvidia/mellanox"
    version: str = "network-operator-v25.10.0"
    standalone: bool = False            # from nvidia-k8s-ipam's deploy/ kustomization, not NicClusterPolicy

    @property
    def ref(self) -> str:
        return f"{self.repository}/{self.image}:{self.version}"


DEFAULT_NAMESPACE = "network-operator"


@dataclass(frozen=True)
class Namespaces:
    """Where each component's objects and pods live (all in the Network Operator's by default)."""

    sriov_operator: str = DEFAULT_NAMESPACE   # policies, node states, SriovIBNetworks, operator, daemon, device plugin
    network_operator: str = DEFAULT_NAMESPACE  # the Network Operator and what NicClusterPolicy deploys
    nv_ipam: str = DEFAULT_NAMESPACE           # nv-ipam's pods and pools

    @property
    def custom(self) -> bool:
        """Whether any component runs outside the default namespace (the inventory must then say where)."""
        return any(ns != DEFAULT_NAMESPACE for ns in (self.sriov_operator, self.network_operator, self.nv_ipam))

    @property
    def all(self) -> list[str]:
        """Each namespace once, in the order above."""
        return list(dict.fromkeys((self.sriov_operator, self.network_operator, self.nv_ipam)))


@dataclass(frozen=True)
class Policy:
    """A SriovNetworkNodePolicy the admin applied, in the fields the twin lets a scenario choose."""

    name: str
    resource_name: str
    num_vfs: int
    nic_selector: dict[str, Any]        # vendor, deviceID, pfNames (``ibp24s0#0-3``), rootDevices, as the API has them
    node_selector: dict[str, str]
    priority: int | None = None         # None: left out, as written without one (the operator reads 0)
    link_type: str = "ib"


@dataclass(frozen=True)
class IpamPool:
    """The nv-ipam pool every SriovIBNetwork names: an IPPool (a block of ``per_node`` addresses per node) or a
    CIDRPool (a /``per_node`` prefix per node, its gateway at ``gateway_index``)."""

    kind: Literal["IPPool", "CIDRPool"] = "IPPool"
    name: str = "ib-pool"
    cidr: str = "192.168.0.0/16"
    per_node: int = 24
    gateway_index: int | None = None
    node_selector: dict[str, str] = field(default_factory=dict)   # labels a node needs (In), empty: every node


@dataclass
class ClusterKube:
    """Cluster-wide facts: what the admin applied (policies, NicClusterPolicy, nv-ipam's pool, the namespaces)
    and cluster faults."""

    num_vfs: int = 8                    # numVfs of each HCA's SriovNetworkNodePolicy (the scenario's numOfVfs)
    kubelet_delay: float = 0.0          # seconds between a pod's binding and its kubelet's verdict
    nv_ipam: NvIpam = field(default_factory=NvIpam)
    faults: list[str] = field(default_factory=list)   # the cluster fault kinds applied, in order
    policies: tuple[Policy, ...] | None = None        # None: one policy-<iface> per HCA (resource res<iface>)
    namespaces: Namespaces = field(default_factory=Namespaces)
    pool: IpamPool = field(default_factory=IpamPool)
