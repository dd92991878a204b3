"""The cluster side of a scenario's truth: what Kubernetes holds that no hardware explains.

Most of the cluster follows from the hardware (``machines/hardware.py``): the operator's sync state, the
node's allocatable, the probe's fate are derived from it (``controllers/``: ``operator.py``, ``ipam.py``,
``scheduler.py``). These few facts are not: an admin's cordon, a workload holding the VFs, a policy
applied by hand, an operator or kubelet failing on its own, the image NicClusterPolicy asks nv-ipam to
run. Faults (``faults.py``) set them; healthy values are the defaults. What the admin chose is here too:
the policies' shapes, the namespaces each component runs in, how nv-ipam is installed and which pool it
serves, the Network Operator release and how it drains, the SR-IOV operator's config and pool configs::

    scenario.nodes["dgx016"].kube.cordoned             # True
    scenario.kubernetes.nv_ipam.image                  # 'nvidia-k8s-ipam'
    scenario.kubernetes.namespaces.sriov_operator      # 'network-operator'
    scenario.kubernetes.operator.generation            # 'drain-controller'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: The taint the NVIDIA maintenance operator puts on a node it holds (the probe tolerates it).
MAINTENANCE_TAINT = "maintenance.nvidia.com/in-progress"
#: The Network Operator chart's SriovOperatorConfig ``configDaemonNodeSelector`` (values.yaml, 24.1 to 26.1).
CONFIG_DAEMON_NODE_SELECTOR = {"beta.kubernetes.io/os": "linux", "network.nvidia.com/operator.mofed.wait": "false"}
Generation = Literal["legacy", "drain-controller", "external-drainer"]


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
    definition_missing: bool = False    # the probe's first network has no NetworkAttachmentDefinition for multus
    uverbs: bool = True                 # the device plugin mounts the VFs' /dev/infiniband/uverbsN in pods
    memlock: int | None = None          # the runtime's locked-memory limit in containers (bytes; None: unlimited)
    gdr: bool = True                    # GPUDirect RDMA works (nvidia-peermem loaded)
    nccl_socket: bool = False           # NCCL finds no usable IB device and falls back to sockets
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


@dataclass(frozen=True)
class OperatorRelease:
    """The NVIDIA Network Operator release installed, and whether its drain controller drains through the
    maintenance operator (Helm ``maintenanceOperator.useDrainControllerRequestor``, 25.10+).

    >>> OperatorRelease("24.1.0").generation, OperatorRelease("24.1.0").sriov_tag
    ('legacy', 'network-operator-24.1.0')
    >>> OperatorRelease("26.1.0", external_drainer=True).generation, OperatorRelease("26.1.0").sriov_tag
    ('external-drainer', 'network-operator-v26.1.0')
    """

    release: str = "25.10.0"
    external_drainer: bool = False

    @property
    def version(self) -> tuple[int, int]:
        major, minor, _ = self.release.split(".", 2)
        return int(major), int(minor)

    @property
    def generation(self) -> Generation:
        """How its SR-IOV operator reports a node busy: the config daemon drains itself up to 24.1 (upstream
        v1.2), the operator's drain controller from 24.4, the Network Operator's with an external drainer."""
        if self.version < (24, 4):
            return "legacy"
        return "external-drainer" if self.external_drainer else "drain-controller"

    @property
    def sriov_tag(self) -> str:
        """The tag of the SR-IOV operator's images: ``network-operator-25.1.0``, with a ``v`` from 25.7."""
        return f"network-operator-{'v' if self.version >= (25, 7) else ''}{self.release}"

    @property
    def operator_tag(self) -> str:
        """The tag of the Network Operator's own image: ``v25.10.0``."""
        return f"v{self.release}"


@dataclass(frozen=True)
class SriovConfig:
    """SriovOperatorConfig ``default``: the Network Operator chart's values unless the scenario says otherwise."""

    disable_plugins: tuple[str, ...] = ()
    config_daemon_node_selector: dict[str, str] = field(default_factory=lambda: dict(CONFIG_DAEMON_NODE_SELECTOR))


@dataclass(frozen=True)
class PoolConfig:
    """A SriovNetworkPoolConfig: the RDMA netns mode for the nodes its LabelSelector selects."""

    name: str
    rdma_mode: str | None
    node_selector: dict[str, Any]


@dataclass
class ClusterKube:
    """Cluster-wide facts: what the admin installed and applied (operator release, its config and pool configs,
    policies, NicClusterPolicy, nv-ipam's pool, the namespaces) and cluster faults."""

    num_vfs: int = 8                    # numVfs of each HCA's SriovNetworkNodePolicy (the scenario's numOfVfs)
    kubelet_delay: float = 0.0          # seconds between a pod's binding and its kubelet's verdict
    nv_ipam: NvIpam = field(default_factory=NvIpam)
    faults: list[str] = field(default_factory=list)   # the cluster fault kinds applied, in order
    policies: tuple[Policy, ...] | None = None        # None: one policy-<iface> per HCA (resource res<iface>)
    namespaces: Namespaces = field(default_factory=Namespaces)
    pool: IpamPool = field(default_factory=IpamPool)
    operator: OperatorRelease = field(default_factory=OperatorRelease)
    sriov_config: SriovConfig = field(default_factory=SriovConfig)
    pool_configs: list[PoolConfig] = field(default_factory=list)
