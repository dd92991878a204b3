"""The NVIDIA Network Operator's NicClusterPolicy and what it deploys: nv-ipam, Multus, the CNI plugins.

Pure builders. The admin applies ``nic-cluster-policy`` (network-operator v25.10.0's example for
nv-ipam, ``spec.nvIpam`` from the scenario); the operator renders each component's DaemonSet or
Deployment (``manifests/state-*``: labels, names, images ``<repository>/<image>:<version>``) in its own
namespace and reports ``status.state`` and ``status.appliedStates``. An image the registry does not have
(any nv-ipam image not named ``nvidia-k8s-ipam``) leaves its pods in ImagePullBackOff and the policy
``notReady``. nv-ipam installed on its own (``standalone``) comes from nvidia-k8s-ipam's ``deploy/``
kustomization instead, and NicClusterPolicy has no ``spec.nvIpam``. The nv-ipam controller fills the pool's
allocations: an IPPool's blocks, or a CIDRPool's per-node prefixes and gateways.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ibconform.twin.controllers.workloads import LogEntry, Workload, log_text
from ibconform.twin.kube import IpamPool, NvIpam

NCP_NAME = "nic-cluster-policy"
NCP_API_VERSION = "mellanox.com/v1alpha1"
IPAM_API_VERSION = "nv-ipam.nvidia.com/v1alpha1"
IPAM_IMAGE = "nvidia-k8s-ipam"
#: nv-ipam as its own kustomization deploys it (deploy/overlays/no-webhook: namePrefix nv-ipam-, commonLabels
#: app=nvidia-k8s-ipam), at a release tag instead of the manifests' :latest.
STANDALONE_IMAGE = "ghcr.io/mellanox/nvidia-k8s-ipam:v0.3.7"
STANDALONE_LABEL = {"app": "nvidia-k8s-ipam"}
STANDALONE_TOLERATIONS = (
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
)
RELEASE = {"repository": "nvcr.io/nvidia/mellanox", "version": "network-operator-v25.10.0"}

#: Every state the operator reports, in its order; those for components absent from spec say "ignore".
STATES = ("state-OFED", "state-SRIOV-device-plugin", "state-RDMA-device-plugin", "state-multus-cni",
          "state-container-networking-plugins", "state-ipoib-cni", "state-ib-kubernetes", "state-nv-ipam-cni",
          "state-nic-feature-discovery", "state-doca-telemetry-service", "state-nic-configuration-operator",
          "state-spectrum-x-operator")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def nic_cluster_policy(nv_ipam: NvIpam) -> dict[str, Any]:
    """``nic-cluster-policy`` as applied: Multus and the CNI plugins, and nv-ipam without its webhook (unless
    nv-ipam is installed on its own)."""
    spec: dict[str, Any] = {"secondaryNetwork": {"cniPlugins": {"image": "plugins", **RELEASE},
                                                 "multus": {"image": "multus-cni", **RELEASE}}}
    if not nv_ipam.standalone:
        spec["nvIpam"] = {"image": nv_ipam.image, "repository": nv_ipam.repository, "version": nv_ipam.version,
                          "enableWebhook": False}
    return {"apiVersion": NCP_API_VERSION, "kind": "NicClusterPolicy", "metadata": {"name": NCP_NAME}, "spec": spec}


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


def workloads(policy: dict[str, Any], namespace: str) -> dict[str, list[Workload]]:
    """What each state of ``policy`` deploys (manifests/state-*) in the operator's ``namespace``, by state name."""
    found = components(policy)
    out: dict[str, list[Workload]] = {}
    if "state-multus-cni" in found:
        out["state-multus-cni"] = [Workload(
            "DaemonSet", "kube-multus-ds", namespace, {"app": "multus", "name": "multus", "tier": "node"},
            {"name": "multus"}, "kube-multus", image_path(found["state-multus-cni"]), service_account="multus",
            tolerations=({"operator": "Exists", "effect": "NoSchedule"},))]
    if "state-container-networking-plugins" in found:
        out["state-container-networking-plugins"] = [Workload(
            "DaemonSet", "cni-plugins-ds", namespace, {"app": "cni-plugins", "name": "cni-plugins", "tier": "node"},
            {"name": "cni-plugins"}, "cni-plugins", image_path(found["state-container-networking-plugins"]),
            service_account="cni-plugins", tolerations=({"operator": "Exists", "effect": "NoSchedule"},))]
    if "state-nv-ipam-cni" in found:
        image = image_path(found["state-nv-ipam-cni"])
        out["state-nv-ipam-cni"] = [
            Workload("DaemonSet", "nv-ipam-node", namespace,
                     {"app": "nv-ipam", "component": "nv-ipam-node", "name": "nv-ipam-node"},
                     {"name": "nv-ipam-node"}, "nv-ipam-node", image, tolerations=(GPU_TOLERATION,)),
            Workload("Deployment", "nv-ipam-controller", namespace,
                     {"app": "nv-ipam", "component": "nv-ipam-controller", "name": "nv-ipam-controller"},
                     {"name": "nv-ipam-controller"}, "nv-ipam-controller", image, host_network=False, replicas=2,
                     tolerations=(GPU_TOLERATION,)),
        ]
    return out


def standalone_workloads(namespace: str) -> list[Workload]:
    """nv-ipam from its own kustomization (nvidia-k8s-ipam ``deploy/``): DaemonSet ``nv-ipam-node-ds`` and
    Deployment ``nv-ipam-controller``, their labels and selectors carrying ``app=nvidia-k8s-ipam``."""
    return [
        Workload("DaemonSet", "nv-ipam-node-ds", namespace,
                 {"tier": "node", "name": "nv-ipam-node", **STANDALONE_LABEL},
                 {"name": "nv-ipam-node", **STANDALONE_LABEL}, "node", STANDALONE_IMAGE, host_network=False,
                 tolerations=STANDALONE_TOLERATIONS, service_account="nv-ipam-node"),
        Workload("Deployment", "nv-ipam-controller", namespace, {"name": "controller", **STANDALONE_LABEL},
                 {"name": "controller", **STANDALONE_LABEL}, "controller", STANDALONE_IMAGE, host_network=False,
                 tolerations=STANDALONE_TOLERATIONS, service_account="nv-ipam-controller"),
    ]


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


def node_selector(labels: dict[str, str]) -> dict[str, Any]:
    """A core NodeSelector requiring each label (``In`` its value), as nv-ipam's pools take it."""
    return {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": key, "operator": "In", "values": [value]} for key, value in labels.items()]}]}


def selected(pool: IpamPool, nodes: dict[str, dict[str, str]]) -> list[str]:
    """The nodes (name -> labels, in cluster order) whose labels the pool's nodeSelector wants."""
    return [name for name, labels in nodes.items()
            if all(labels.get(k) == v for k, v in pool.node_selector.items())]


def ippool(nodes: dict[str, dict[str, str]], pool: IpamPool, namespace: str) -> dict[str, Any]:
    """The IPPool (default ``ib-pool``, 192.168.0.0/16 for every node): a block of ``perNodeBlockSize`` addresses
    allocated per selected node in node order, as nv-ipam's controller fills ``status.allocations``."""
    network = ipaddress.ip_network(pool.cidr)
    allocations = []
    for i, node in enumerate(selected(pool, nodes)):
        start = network.network_address + 1 + i * pool.per_node
        end = start + pool.per_node - 1
        if end >= network.broadcast_address:
            break                     # the pool is exhausted: later nodes get no block
        allocations.append({"nodeName": node, "startIP": str(start), "endIP": str(end)})
    return _pool_object(pool, namespace, {"subnet": pool.cidr, "perNodeBlockSize": pool.per_node}, allocations)


def _pool_object(pool: IpamPool, namespace: str, spec: dict[str, Any], allocations: list[dict]) -> dict[str, Any]:
    """An IPPool or CIDRPool as the admin applied ``spec`` (plus the pool's nodeSelector) and its controller left
    its ``allocations``."""
    if pool.node_selector:
        spec["nodeSelector"] = node_selector(pool.node_selector)
    return {"apiVersion": IPAM_API_VERSION, "kind": pool.kind, "metadata": {"name": pool.name, "namespace": namespace},
            "spec": spec, "status": {"allocations": allocations}}


def _allocations(pool: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = (pool.get("status") or {}).get("allocations") or []
    return {str(a.get("nodeName")): a for a in found if isinstance(a, dict)}


def _pool_name(pool: dict[str, Any]) -> str:
    return str((pool.get("metadata") or {}).get("name", ""))


def node_log(node: str, pools: list[dict[str, Any]], namespace: str, started: str) -> str:
    """What nv-ipam's node daemon on ``node`` logged: its start, and the block of each IPPool it serves from."""
    entries: list[LogEntry] = [("INFO", "start IPAM node daemon", {"node": node, "IPPools Namespace": namespace})]
    for pool in pools:
        block = _allocations(pool).get(node)
        fields = {"name": _pool_name(pool)}
        if block is not None:
            fields |= {"startIP": block.get("startIP"), "endIP": block.get("endIP")}
        entries.append(("INFO", "Notification on IPPool", fields))
        if block is None:
            entries.append(("INFO", "no block for this node in IPPool, removing it", {"name": _pool_name(pool)}))
    return log_text(started, entries)


def controller_log(pools: list[dict[str, Any]], nodes: list[str], namespace: str, started: str) -> str:
    """What nv-ipam's controller logged: its start, then per IPPool the blocks it allocated and each node it has no
    free block for."""
    entries: list[LogEntry] = [("INFO", "start IPAM controller", {"IPPools Namespace": namespace})]
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


def cidrpool(nodes: dict[str, dict[str, str]], pool: IpamPool, namespace: str) -> tuple[dict[str, Any], list[str]]:
    """The CIDRPool and the selected nodes left without a prefix. nv-ipam's controller (``controllers/cidrpool``)
    takes the selected nodes by name and gives each the next ``/perNodeNetworkPrefix`` of the CIDR, its gateway
    at ``gatewayIndex`` in it; once the CIDR has no prefix left, the later nodes get none."""
    prefixes = ipaddress.ip_network(pool.cidr).subnets(new_prefix=pool.per_node)
    allocations, starved = [], []
    for node in sorted(selected(pool, nodes)):
        prefix = next(prefixes, None)
        if prefix is None:
            starved.append(node)
            continue
        allocation = {"nodeName": node, "prefix": str(prefix)}
        if pool.gateway_index is not None:
            allocation["gateway"] = str(prefix.network_address + pool.gateway_index)
        allocations.append(allocation)
    spec: dict[str, Any] = {"cidr": pool.cidr, "perNodeNetworkPrefix": pool.per_node}
    if pool.gateway_index is not None:
        spec["gatewayIndex"] = pool.gateway_index
    return _pool_object(pool, namespace, spec, allocations), starved


def no_free_prefix(node: str) -> str:
    """The Warning the nv-ipam controller records on a CIDRPool for a node it has no prefix for (its words)."""
    return f"failed to allocated prefix for Node: {node}, no free prefixes"
