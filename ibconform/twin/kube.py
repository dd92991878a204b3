"""The cluster side of a scenario's truth: what Kubernetes holds that no hardware explains.

Most of the cluster follows from the hardware (``hardware.py``): the operator's sync state, the node's
allocatable, the probe's fate are derived from it (``operator.py``, ``ipam.py``, ``scheduler.py``). These
few facts are not: an admin's cordon, a workload holding the VFs, a policy applied by hand, an operator
or kubelet failing on its own, the image NicClusterPolicy asks nv-ipam to run. Faults (``faults.py``)
set them; healthy values are the defaults::

    scenario.nodes["dgx016"].kube.cordoned             # True
    scenario.kubernetes.nv_ipam.image                  # 'nvidia-k8s-ipam'
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class NvIpam:
    """NicClusterPolicy ``spec.nvIpam``: network-operator v25.10.0's release defaults unless a fault says otherwise."""

    image: str = "nvidia-k8s-ipam"
    repository: str = "nvcr.io/nvidia/mellanox"
    version: str = "network-operator-v25.10.0"

    @property
    def ref(self) -> str:
        return f"{self.repository}/{self.image}:{self.version}"


@dataclass
class ClusterKube:
    """Cluster-wide facts: what the admin applied (policies' numVfs, NicClusterPolicy) and cluster faults."""

    num_vfs: int = 8                    # numVfs of each HCA's SriovNetworkNodePolicy (the scenario's numOfVfs)
    kubelet_delay: float = 0.0          # seconds between a pod's binding and its kubelet's verdict
    nv_ipam: NvIpam = field(default_factory=NvIpam)
    faults: list[str] = field(default_factory=list)   # the cluster fault kinds applied, in order
