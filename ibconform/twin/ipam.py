"""The NVIDIA Network Operator's NicClusterPolicy and what it deploys: nv-ipam, Multus, the CNI plugins.

Pure builders. The admin applies ``nic-cluster-policy`` (network-operator v25.10.0's example for
nv-ipam, ``spec.nvIpam`` from the scenario); the operator renders each component's DaemonSet or
Deployment (``manifests/state-*``: labels, names, images ``<repository>/<image>:<version>``) and reports
``status.state`` and ``status.appliedStates``. An image the registry does not have (any nv-ipam image
not named ``nvidia-k8s-ipam``) leaves its pods in ImagePullBackOff and the policy ``notReady``.
The nv-ipam controller fills the IPPool's allocations, one block per node.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ibconform.twin.kube import NvIpam
from ibconform.twin.operator import NAMESPACE
from ibconform.twin.workloads import LogEntry, Workload, log_text

NCP_NAME = "nic-cluster-policy"
NCP_API_VERSION = "mellanox.com/v1alpha1"
IPPOOL_API_VERSION = "nv-ipam.nvidia.com/v1alpha1"
IPAM_IMAGE = "nvidia-k8s-ipam"
POOL = "ib-pool"
POOL_SUBNET = "192.168.0.0/16"
POOL_BLOCK = 24
RELEASE = {"repository": "nvcr.io/nvidia/mellanox", "version": "network-operator-v25.10.0"}

#: Every state the operator reports, in its order; those for components absent from spec say "ignore".
STATES = ("state-OFED", "state-SRIOV-device-plugin", "state-RDMA-device-plugin", "state-multus-cni",
          "state-container-networking-plugins", "state-ipoib-cni", "state-ib-kubernetes", "state-nv-ipam-cni",
          "state-nic-feature-discovery", "state-doca-telemetry-service", "state-nic-configuration-operator",
          "state-spectrum-x-operator")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def nic_cluster_policy(nv_ipam: NvIpam) -> dict[str, Any]:
    """``nic-cluster-policy`` as applied: Multus and the CNI plugins, and nv-ipam without its webhook."""
    return {
        "apiVersion": NCP_API_VERSION, "kind": "NicClusterPolicy", "metadata": {"name": NCP_NAME},
        "spec": {
            "secondaryNetwork": {"cniPlugins": {"image": "plugins", **RELEASE},
                                 "multus": {"image": "multus-cni", **RELEASE}},
            "nvIpam": {"image": nv_ipam.image, "repository": nv_ipam.repository, "version": nv_ipam.version,
                       "enableWebhook": False},
        },
    }


def image_path(component: dict[str, Any]) -> str:
    """``imagePath``: ``<repository>/<image>:<version>`` (``@<digest>`` versions keep their ``@``)."""
    version = str(component.get("version", ""))
    joiner = "@" if version.startswith("sha256:") else ":"
    return f"{component.get('repository')}/{component.get('image')}{joiner}{version}"


def _spec(policy: dict[str, Any]) -> dict[str, Any]:
    spec = policy.get("spec")
    return spec if isinstance(spec, dict) else {}


def components(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The components ``policy`` deploys, by state name, each with its image settings."""
    spec = _spec(policy)
    secondary = spec.get("secondaryNetwork") if isinstance(spec.get("secondaryNetwork"), dict) else {}
    found = {"state-multus-cni": secondary.get("multus"), "state-container-networking-plugins":
             secondary.get("cniPlugins"), "state-nv-ipam-cni": spec.get("nvIpam")}
    return {k: v for k, v in found.items() if isinstance(v, dict)}


def pullable(state: str, component: dict[str, Any]) -> bool:
    """Whether the registry has the component's image: the twin knows nv-ipam only as nvidia-k8s-ipam."""
    return state != "state-nv-ipam-cni" or component.get("image") == IPAM_IMAGE


def workloads(policy: dict[str, Any]) -> dict[str, list[Workload]]:
    """What each state of ``policy`` deploys (manifests/state-*), by state name."""
    found = components(policy)
    out: dict[str, list[Workload]] = {}
    if "state-multus-cni" in found:
        out["state-multus-cni"] = [Workload(
            "DaemonSet", "kube-multus-ds", NAMESPACE, {"app": "multus", "name": "multus", "tier": "node"},
            {"name": "multus"}, "kube-multus", image_path(found["state-multus-cni"]), service_account="multus",
            tolerations=({"operator": "Exists", "effect": "NoSchedule"},))]
    if "state-container-networking-plugins" in found:
        out["state-container-networking-plugins"] = [Workload(
            "DaemonSet", "cni-plugins-ds", NAMESPACE, {"app": "cni-plugins", "name": "cni-plugins", "tier": "node"},
            {"name": "cni-plugins"}, "cni-plugins", image_path(found["state-container-networking-plugins"]),
            service_account="cni-plugins", tolerations=({"operator": "Exists", "effect": "NoSchedule"},))]
    if "state-nv-ipam-cni" in found:
        image = image_path(found["state-nv-ipam-cni"])
        out["state-nv-ipam-cni"] = [
            Workload("DaemonSet", "nv-ipam-node", NAMESPACE,
                     {"app": "nv-ipam", "component": "nv-ipam-node", "name": "nv-ipam-node"},
                     {"name": "nv-ipam-node"}, "nv-ipam-node", image, tolerations=(GPU_TOLERATION,)),
            Workload("Deployment", "nv-ipam-controller", NAMESPACE,
                     {"app": "nv-ipam", "component": "nv-ipam-controller", "name": "nv-ipam-controller"},
                     {"name": "nv-ipam-controller"}, "nv-ipam-controller", image, host_network=False, replicas=2,
                     tolerations=(GPU_TOLERATION,)),
        ]
    return out


def status(policy: dict[str, Any]) -> dict[str, Any]:
    """``status`` the operator writes: a state per component (ready, or notReady while its image cannot be
    pulled), ``ignore`` for those absent, and the overall state."""
    found = components(policy)
    applied = []
    for state in STATES:
        if state not in found:
            applied.append({"name": state, "state": "ignore"})
        else:
            applied.append({"name": state, "state": "ready" if pullable(state, found[state]) else "notReady"})
    overall = "notReady" if any(a["state"] == "notReady" for a in applied) else "ready"
    return {"state": overall, "appliedStates": applied}


def ippool(nodes: list[str]) -> dict[str, Any]:
    """``ib-pool``: 192.168.0.0/16 for every node (no nodeSelector), a block of 24 allocated per node
    in node order, as nv-ipam's controller fills ``status.allocations``."""
    network = ipaddress.ip_network(POOL_SUBNET)
    allocations = []
    for i, node in enumerate(nodes):
        start = network.network_address + 1 + i * POOL_BLOCK
        end = start + POOL_BLOCK - 1
        if end >= network.broadcast_address:
            break                     # the pool is exhausted: later nodes get no block
        allocations.append({"nodeName": node, "startIP": str(start), "endIP": str(end)})
    return {
        "apiVersion": IPPOOL_API_VERSION, "kind": "IPPool",
        "metadata": {"name": POOL, "namespace": NAMESPACE},
        "spec": {"subnet": POOL_SUBNET, "perNodeBlockSize": POOL_BLOCK},
        "status": {"allocations": allocations},
    }


def _allocations(pool: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = (pool.get("status") or {}).get("allocations") or []
    return {str(a.get("nodeName")): a for a in found if isinstance(a, dict)}


def _pool_name(pool: dict[str, Any]) -> str:
    return str((pool.get("metadata") or {}).get("name", ""))


def node_log(node: str, pools: list[dict[str, Any]], started: str) -> str:
    """What nv-ipam's node daemon on ``node`` logged: its start, and the block of each IPPool it serves from."""
    entries: list[LogEntry] = [("INFO", "start IPAM node daemon", {"node": node, "IPPools Namespace": NAMESPACE})]
    for pool in pools:
        block = _allocations(pool).get(node)
        fields = {"name": _pool_name(pool)}
        if block is not None:
            fields |= {"startIP": block.get("startIP"), "endIP": block.get("endIP")}
        entries.append(("INFO", "Notification on IPPool", fields))
        if block is None:
            entries.append(("INFO", "no block for this node in IPPool, removing it", {"name": _pool_name(pool)}))
    return log_text(started, entries)


def controller_log(pools: list[dict[str, Any]], nodes: list[str], started: str) -> str:
    """What nv-ipam's controller logged: its start, then per IPPool the blocks it allocated and each node it has no
    free block for."""
    entries: list[LogEntry] = [("INFO", "start IPAM controller", {"IPPools Namespace": NAMESPACE})]
    for pool in pools:
        allocations = _allocations(pool)
        spec = pool.get("spec") or {}
        entries.append(("INFO", "IPPool allocations updated", {
            "name": _pool_name(pool), "subnet": spec.get("subnet"), "perNodeBlockSize": spec.get("perNodeBlockSize"),
            "allocated": len(allocations)}))
        if not spec.get("nodeSelector"):          # every node wants a block
            entries += [("ERROR", "failed to allocate a block for the node: no free block in the subnet",
                         {"name": _pool_name(pool), "node": node}) for node in nodes if node not in allocations]
    return log_text(started, entries)
