"""The twin's cluster emulation: every Kubernetes object derived from the scenario, kept derived.

``ClusterEmulation(api, scenario, addresses).install()`` (addresses by host name) fills an
:class:`~ibconform.twin.apiserver.api_twin.ApiTwin` (before it starts) with what a DGX cluster running the NVIDIA
Network Operator shows (25.10 unless the scenario's ``kubernetes.operator`` names another release), and hooks small
controllers to the writes clients make over HTTP::

    api = ApiTwin(host, token=token)
    ClusterEmulation(api, scenario, twin.addresses).install()
    api.start()

What the admin applied: SriovOperatorConfig ``default`` and the scenario's SriovNetworkPoolConfigs, the
SriovNetworkNodePolicies (one per HCA, or the scenario's) and a SriovIBNetwork per resource they define
(``operator.py``), ``nic-cluster-policy`` and nv-ipam's pool (an IPPool or a CIDRPool, ``ipam.py``), a Node per
scenario node (the kubelet's registration: labels, capacity, Ready). Each component lives in its namespace
(``kubernetes.namespaces``: by default all in ``network-operator``). What the controllers derive, and re-derive
when a policy, a pool config, the operator config, a Node or the NicClusterPolicy changes over HTTP:

- SR-IOV operator: its config daemon and device plugin on the nodes SriovOperatorConfig selects, each
  SriovNetworkNodeState, the Node's state annotation and device plugin label, the drain cordon as the
  release's generation of state reporting does it (with an external drainer, the NodeMaintenance the
  maintenance operator answers), and the device plugin's ``nvidia.com/<resourceName>`` capacity and
  allocatable (``operator.py``);
- Network Operator: the NicClusterPolicy status and the DaemonSets/Deployments and pods of Multus, the
  CNI plugins and nv-ipam, in ImagePullBackOff when their image does not exist (``ipam.py``); nv-ipam
  installed on its own is deployed once, as its kustomization does;
- node lifecycle: the ``node.kubernetes.io/unschedulable`` taint of a cordoned node;
- kube-scheduler: pods created without ``spec.nodeName`` are bound, or marked Unschedulable with a
  FailedScheduling event in the scheduler's words (``scheduler.py``); pending ones are retried when a pod
  goes or a Node changes;
- kubelet: a bound pod is admitted (or rejected: UnexpectedAdmissionError, OutOf<resource>), gets its
  network (or FailedCreatePodSandBox when nv-ipam is down on the node) and runs (``kubelet.py``).

The Kubernetes-side faults (``twin/kube.py``) are applied here: cordon and maintenance taint, the workload
holding every VF, the drifted policy, the failing daemon, the rejecting kubelet, the nv-ipam image.
Nothing in the objects says "twin": the suite sees a cluster.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time
from typing import Any

from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.apiserver.store import now_rfc3339, object_key
from ibconform.twin.controllers import ipam, kubelet, operator, pod_runtime, scheduler, workloads
from ibconform.twin.kube import MAINTENANCE_TAINT, Namespaces, NvIpam, OperatorRelease
from ibconform.twin.machines import render
from ibconform.twin.machines.hardware import ZERO_GUID, Node
from ibconform.twin.machines.render import KERNEL_RELEASE, machine_id, stable_uuid
from ibconform.twin.scenario import Scenario

PREFIX = operator.RESOURCE_PREFIX
GPU_RESOURCE = "nvidia.com/gpu"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")   # a container whose command is a script runs it, then exits
#: What each node registers with: a DGX B200 (224 CPUs, 2 TiB, 8 GPUs).
BASE_RESOURCES = {"cpu": "224", "ephemeral-storage": "3748963412Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                  "memory": "2113348180Ki", GPU_RESOURCE: "8", "pods": "110"}
KUBELET_VERSION = "v1.31.4"
MELLANOX = "nvcr.io/nvidia/mellanox"
TRAINING_IMAGE = "nvcr.io/nvidia/pytorch:25.01-py3"
EVENT_TTL = 3600.0          # kube-apiserver --event-ttl: a long-lived twin does not pile events up


def operator_workloads(namespaces: Namespaces, release: OperatorRelease,
                       config: dict[str, Any] | None) -> list[workloads.Workload]:
    """The Network Operator's own Deployment, and the SR-IOV Network Operator's components, as ``release``'s Helm
    chart deploys them, each in its component's namespace; the operator places its DaemonSets by SriovOperatorConfig
    ``config`` (``controllers/helper.go``): the config daemon on ``configDaemonNodeSelector``, the device plugin
    there too on nodes labelled for it."""
    sriov, tag = namespaces.sriov_operator, release.sriov_tag
    return [
        workloads.Workload(
            "Deployment", "network-operator", namespaces.network_operator,
            {"app.kubernetes.io/name": "network-operator", "app.kubernetes.io/instance": "network-operator",
             "control-plane": "network-operator-controller"},
            {"control-plane": "network-operator-controller"}, "network-operator",
            f"nvcr.io/nvidia/cloud-native/network-operator:{release.operator_tag}", host_network=False),
        workloads.Workload(
            "Deployment", "network-operator-sriov-network-operator", sriov, {"name": "sriov-network-operator"},
            {"name": "sriov-network-operator"}, "sriov-network-operator",
            f"{MELLANOX}/sriov-network-operator:{tag}", host_network=False,
            service_account="sriov-network-operator"),
        workloads.Workload(
            "DaemonSet", "sriov-network-config-daemon", sriov,
            {"app": "sriov-network-config-daemon", "component": "network", "openshift.io/component": "network",
             "type": "infra"},
            {"app": "sriov-network-config-daemon"}, "sriov-network-config-daemon",
            f"{MELLANOX}/sriov-network-operator-config-daemon:{tag}",
            node_selector=operator.config_daemon_selector(config), tolerations=({"operator": "Exists"},)),
        workloads.Workload(
            "DaemonSet", "sriov-device-plugin", sriov,
            {"app": "sriov-device-plugin", "component": "network", "openshift.io/component": "network",
             "type": "infra"},
            {"app": "sriov-device-plugin"}, "sriov-device-plugin", f"{MELLANOX}/sriov-network-device-plugin:{tag}",
            node_selector=operator.device_plugin_selector(config), service_account="sriov-device-plugin",
            tolerations=({"operator": "Exists"},)),
    ]


def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _name(obj: dict[str, Any]) -> str:
    return str(_d(obj.get("metadata")).get("name", ""))


def _content(obj: dict[str, Any] | None) -> tuple:
    """What a controller writes of an object: labels, annotations, owners, spec, status."""
    if obj is None:
        return ()
    metadata = _d(obj.get("metadata"))
    return (metadata.get("labels"), metadata.get("annotations"), metadata.get("ownerReferences"),
            obj.get("spec"), obj.get("status"))


# ------------------------------------------------------------------------------------------ pure builders

def node_labels(node: Node, name: str) -> dict[str, str]:
    """The labels of Node ``name`` (host ``node``): the kubelet's (its hostname label is the Node's name), node
    feature discovery's and the GPU and SR-IOV operators', then the scenario's own."""
    return {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "feature.node.kubernetes.io/pci-15b3.present": "true", "nvidia.com/gpu.count": "8",
        operator.GPU_LABEL: "true", "nvidia.com/gpu.product": "NVIDIA-B200",
        "network.nvidia.com/operator.mofed.wait": "false", operator.DEVICE_PLUGIN_LABEL: "Enabled",
        **node.kube.labels,
    }


def node_object(node: Node, name: str, index: int, address: str) -> dict[str, Any]:
    """The Node ``name`` as the kubelet of host ``node`` registers it, Ready, before any operator touched it.

    Its hostname label and Hostname address are its name, as kubelet sets them from its (overridden) host name:
    on managed clouds that name Nodes by private IP (OKE) all three are the address, while ``uname -n`` is the
    host's own name (github.com/oracle-terraform-modules/terraform-oci-oke issue 705).
    """
    when = now_rfc3339()
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(node, name),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": f"10.244.{index % 256}.0/24", "podCIDRs": [f"10.244.{index % 256}.0/24"]},
        "status": {
            "capacity": dict(BASE_RESOURCES), "allocatable": dict(BASE_RESOURCES),
            "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": when,
                            "lastTransitionTime": when} for t, s, r, m in conditions],
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": stable_uuid(f"{node.name}/boot"),
                         "containerRuntimeVersion": "containerd://1.7.24", "kernelVersion": KERNEL_RELEASE,
                         "kubeProxyVersion": "", "kubeletVersion": KUBELET_VERSION,
                         "machineID": machine_id(node.name),
                         "operatingSystem": "linux", "osImage": "Ubuntu 22.04.5 LTS",
                         "systemUUID": stable_uuid(f"{node.name}/system")},
        },
    }


def node_lease(node: dict[str, Any]) -> dict[str, Any]:
    """The node's heartbeat Lease in kube-node-lease, as its kubelet keeps it (owned by the Node)."""
    name = node["metadata"]["name"]
    renewed = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renewed},
    }


def managed_taints(taints: list[dict[str, Any]], unschedulable: bool, maintenance: bool) -> list[dict[str, Any]]:
    """``taints`` with the node lifecycle controller's cordon taint and the maintenance operator's taint
    present exactly when they should be (others kept, in order)."""
    wanted = {scheduler.UNSCHEDULABLE_TAINT: unschedulable, MAINTENANCE_TAINT: maintenance}
    out = [t for t in taints if not (isinstance(t, dict) and t.get("key") in wanted and not wanted[t["key"]])]
    for key, on in wanted.items():
        if on and not any(isinstance(t, dict) and t.get("key") == key for t in out):
            out.append({"key": key, "effect": "NoSchedule", "timeAdded": now_rfc3339()})
    return out


def training_pod(node: str, resources: dict[str, int], networks: list[str]) -> dict[str, Any]:
    """A workload bound to ``node`` holding every VF it advertises (the ``vfs-taken`` fault), on ``networks``
    (``<namespace>/<name>``)."""
    held = {name: str(count) for name, count in resources.items()}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"training-{node}", "namespace": "default", "labels": {"app": "training"},
                     "annotations": {NETWORKS_ANNOTATION: ",".join(networks)}},
        "spec": {"nodeName": node, "restartPolicy": "Never", "schedulerName": "default-scheduler", "priority": 0,
                 "containers": [{"name": "trainer", "image": TRAINING_IMAGE, "command": ["torchrun", "train.py"],
                                 "resources": {"requests": held, "limits": held}}]},
        "status": {"qosClass": "BestEffort"},
    }


# ------------------------------------------------------------------------------------------ the controllers

class ClusterEmulation:
    """The operators, scheduler and kubelets of one twin cluster, on one ApiTwin."""

    def __init__(self, api: ApiTwin, scenario: Scenario, addresses: dict[str, str] | None = None) -> None:
        self.api, self.scenario = api, scenario
        self.namespaces = scenario.kubernetes.namespaces
        hosts = {n: (addresses or {}).get(n) or f"127.99.{i // 250}.{i % 250 + 1}"
                 for i, n in enumerate(scenario.nodes)}
        #: Each host's Node name (scenario.nodes is keyed by host name); below, nodes are keyed by Node name.
        self.node_names = {host: node.node_name(hosts[host]) for host, node in scenario.nodes.items()}
        self.nodes = {self.node_names[host]: node for host, node in scenario.nodes.items()}
        self.addresses = {self.node_names[host]: address for host, address in hosts.items()}
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.drained: dict[str, bool] = {}
        self.syncs: dict[str, operator.Sync] = {}         # each node's last config daemon verdict
        self._left: dict[str, dt.datetime] = {}        # when each node left the config daemon's nodes
        self.advertised: dict[str, dict[str, int]] = {}
        self._pod_ips: dict[str, int] = {}
        self._unschedulable: set[tuple[str, str]] = set()      # (namespace, name) of the pods left Unschedulable
        self._events: collections.deque[tuple[float, str, str]] = collections.deque()
        self._container_logs: dict[str, str] = {}       # pod uid -> what its container printed
        self._addresses_used: dict[tuple[str, str], dict[int, str]] = {}   # (node, pool) -> offset -> pod uid

    # -- set-up

    def _apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Put ``obj`` unless the stored one already says the same (no needless MODIFIED event)."""
        metadata = obj["metadata"]
        kind = obj.get("kind") or ""
        stored = self.api.get(obj.get("apiVersion"), kind, metadata["name"], metadata.get("namespace"), copy=False)
        if stored is not None and _content(stored) == _content(obj):
            return stored
        return self.api.put(obj)

    def install(self) -> ClusterEmulation:
        """Put every object (call before ``api.start()``) and listen to HTTP writes."""
        for namespace in self.namespaces.all:
            if self.api.get("v1", "Namespace", namespace) is None:
                self.api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for name, node in self.nodes.items():
            self.api.put(node_lease(self.api.put(node_object(node, name, self.index[name], self.addresses[name]))))
        kube = self.scenario.kubernetes
        sriov = self.namespaces.sriov_operator
        policies = operator.policies(self.nodes, kube, {n: node_labels(node, n) for n, node in self.nodes.items()})
        for obj in [operator.operator_config(kube.operator, kube.sriov_config, sriov),
                    *(operator.pool_config(pool, sriov) for pool in kube.pool_configs),
                    *policies, *operator.ib_networks(policies, kube), ipam.nic_cluster_policy(kube.nv_ipam)]:
            self.api.put(obj)
        self._install_pool()
        self.sync_operator()
        self.deploy_operator()
        if kube.nv_ipam.standalone:
            for workload in ipam.standalone_workloads(self.namespaces.nv_ipam):
                self._deploy(workload, pullable=True)
        self.sync_operator()
        self.deploy_operator()
        self.sync_nic_cluster_policy()
        for name, node in self.nodes.items():
            if node.kube.vfs_taken:
                held = self.advertised.get(name, {})
                pod = training_pod(name, held, self._networks(held))
                pod["status"] = kubelet.running(pod, self.addresses[name], self._pod_ip(name))
                self.api.put(pod)
        self.api.on_change(self.on_change)
        self.api.set_log_source(self.pod_log)
        return self

    def pod_log(self, pod: dict[str, Any], container: str) -> str | None:
        """What a started container logged: the config daemon its node's last sync, nv-ipam its IPPool blocks;
        None (an empty log) for the other pods."""
        printed = self._container_logs.get(str(_d(pod.get("metadata")).get("uid")))
        if printed is not None:
            return printed
        labels = _d(_d(pod.get("metadata")).get("labels"))
        node = str(_d(pod.get("spec")).get("nodeName") or "")
        started = str(_d(pod.get("status")).get("startTime") or now_rfc3339())
        if labels.get("app") == "sriov-network-config-daemon":
            namespace = self.namespaces.sriov_operator
            state = self.api.get(operator.API_VERSION, "SriovNetworkNodeState", node, namespace)
            config = self.api.get(operator.API_VERSION, "SriovOperatorConfig", operator.OPERATOR_CONFIG, namespace)
            return operator.config_daemon_log(node, state, started, self.syncs.get(node),
                                              operator.mellanox_enabled(config))
        if labels.get("name") in ("nv-ipam-node", "nv-ipam-controller"):
            namespace = self.namespaces.nv_ipam
            pools = self.api.list("ippools", namespace, api_version=ipam.IPAM_API_VERSION)
            if labels["name"] == "nv-ipam-node":
                return ipam.node_log(node, pools, namespace, started)
            return ipam.controller_log(pools, [_name(n) for n in self.api.peek("nodes")], namespace, started)
        return None

    def _install_pool(self) -> None:
        """nv-ipam's pool as its controller leaves it; a CIDRPool also gets a NoFreePrefixes Warning per node the
        CIDR has no prefix left for."""
        pool, namespace = self.scenario.kubernetes.pool, self.namespaces.nv_ipam
        labels = {name: node_labels(node, name) for name, node in self.nodes.items()}
        if pool.kind == "IPPool":
            self.api.put(ipam.ippool(labels, pool, namespace))
            return
        obj, starved = ipam.cidrpool(labels, pool, namespace)
        stored = self.api.put(obj)
        for node in starved:
            self._record(kubelet.event(stored, reason="NoFreePrefixes", message=ipam.no_free_prefix(node),
                                       component="ipam-controller"))

    def _networks(self, resources: dict[str, int]) -> list[str]:
        """``<namespace>/<name>`` of the SriovIBNetwork of each of ``resources`` (``nvidia.com/<resourceName>``)."""
        found = []
        for network in self.api.list("sriovibnetworks", self.namespaces.sriov_operator):
            spec = _d(network.get("spec"))
            if f"{PREFIX}/{spec.get('resourceName')}" in resources:
                found.append(f"{spec.get('networkNamespace') or self.namespaces.sriov_operator}/{_name(network)}")
        return found

    def _record(self, event: dict[str, Any]) -> None:
        """Store an event; those older than EVENT_TTL go, as etcd's lease drops them."""
        now = time.monotonic()
        while self._events and now - self._events[0][0] > EVENT_TTL:
            _, namespace, name = self._events.popleft()
            self.api.delete("v1", "Event", name, namespace)
        stored = self.api.put(event)
        self._events.append((now, stored["metadata"]["namespace"], stored["metadata"]["name"]))

    def _pod_ip(self, node: str) -> str:
        count = self._pod_ips[node] = self._pod_ips.get(node, 0) + 1
        return f"10.244.{self.index.get(node, 255) % 256}.{count % 254 + 1}"

    def _host_ip(self, node: str) -> str:
        if node in self.addresses:
            return self.addresses[node]
        obj = self.api.get("v1", "Node", node, copy=False) or {}
        found = [a.get("address") for a in _d(obj.get("status")).get("addresses") or []
                 if _d(a).get("type") == "InternalIP"]
        return str(found[0]) if found else self.addresses.get(node, "")

    def _placement(self, workload: workloads.Workload) -> list[str]:
        nodes = self.api.peek("nodes")
        fitting = [_name(n) for n in nodes if all(
            _d(_d(n.get("metadata")).get("labels")).get(k) == v for k, v in workload.node_selector.items())]
        if workload.kind == "DaemonSet":
            return fitting
        cordoned = {_name(n) for n in nodes if _d(n.get("spec")).get("unschedulable")}
        schedulable = [n for n in fitting if n not in cordoned] or fitting
        return [schedulable[i % len(schedulable)] for i in range(workload.replicas)] if schedulable else []

    def _deploy(self, workload: workloads.Workload, pullable: bool) -> None:
        """Its DaemonSet or Deployment + ReplicaSet and its pods, as their controllers and kubelets leave them;
        pods of an older template go."""
        placement = self._placement(workload)
        owners = workloads.owner(workload, len(placement), len(placement) if pullable else 0)
        stored = [self._apply(owners[0])]
        if len(owners) == 2:                   # the ReplicaSet belongs to its Deployment
            owners[1]["metadata"]["ownerReferences"] = [workloads.owner_reference(stored[0])]
            stored.append(self._apply(owners[1]))
        controller = stored[-1]
        wanted = []
        for replica, node in enumerate(placement):
            pod = workloads.pod(workload, node, controller, f"{self.scenario.cluster}/{workload.image}", replica)
            wanted.append(_name(pod))
            if self.api.get("v1", "Pod", _name(pod), workload.namespace) is not None:
                continue
            host_ip = self._host_ip(node)
            pod_ip = None if workload.host_network else self._pod_ip(node)
            if pullable:
                pod["status"] = kubelet.running(pod, host_ip, pod_ip)
            else:
                pod["status"] = kubelet.image_pull_backoff(pod, host_ip, pod_ip, workload.image)
            stored_pod = self.api.put(pod)
            if not pullable:
                field = f"spec.containers{{{workload.container}}}"
                for reason, kind, message in (("BackOff", "Normal", f'Back-off pulling image "{workload.image}"'),
                                              ("Failed", "Warning", "Error: ImagePullBackOff")):
                    self._record(kubelet.event(stored_pod, reason=reason, message=message, kind=kind, host=node,
                                               field_path=field))
        selector = ",".join(f"{k}={v}" for k, v in workload.selector.items())
        for old in self.api.list("pods", workload.namespace, label_selector=selector):
            if _name(old) not in wanted:
                self.api.delete("v1", "Pod", _name(old), workload.namespace)

    # -- SR-IOV Network Operator + device plugin

    def deploy_operator(self) -> None:
        """The operators' Deployments and DaemonSets, placed by the SriovOperatorConfig the API holds."""
        config = self.api.get(operator.API_VERSION, "SriovOperatorConfig", operator.OPERATOR_CONFIG,
                              self.namespaces.sriov_operator)
        for workload in operator_workloads(self.namespaces, self.scenario.kubernetes.operator, config):
            self._deploy(workload, pullable=True)

    def sync_operator(self) -> None:
        """Re-derive, under the SriovOperatorConfig and pool configs the API holds, every node's
        SriovNetworkNodeState, state annotation, drain cordon, NodeMaintenance, device plugin label and SR-IOV
        resources; a node outside the config daemon's nodes loses its device plugin and, after a delay, its node
        state."""
        release = self.scenario.kubernetes.operator
        namespace = self.namespaces.sriov_operator
        policies = self.api.list("sriovnetworknodepolicies", namespace)
        config = self.api.get(operator.API_VERSION, "SriovOperatorConfig", operator.OPERATOR_CONFIG, namespace)
        pools = self.api.list("sriovnetworkpoolconfigs", namespace)
        for name, node in self.nodes.items():
            obj = self.api.get("v1", "Node", name)
            if obj is None:
                continue
            labels = dict(_d(_d(obj.get("metadata")).get("labels")))
            managed = operator.managed(config, labels)
            if managed:
                self._left.pop(name, None)
            keep_until = None if managed else self._keep_until(name, release)
            patch: dict[str, Any] = {"metadata": {}}
            plugin, resources = None, {}
            if keep_until == "":                                 # its node state is gone
                self.api.delete(operator.API_VERSION, "SriovNetworkNodeState", name, namespace)
            else:
                state, sync = operator.node_state(name, node, policies, labels, namespace, release=release,
                                                  mellanox=operator.mellanox_enabled(config),
                                                  rdma=operator.rdma_mode(pools, labels), keep_until=keep_until)
                self._apply(state)
                self.syncs[name] = sync
                plugin = operator.device_plugin_label(managed, bool(state["spec"].get("interfaces")))
                labels = {k: v for k, v in labels.items() if k != operator.DEVICE_PLUGIN_LABEL} | (
                    {operator.DEVICE_PLUGIN_LABEL: plugin} if plugin else {})
                resources = operator.advertised(node, state["spec"].get("interfaces", []), labels, sync, PREFIX)
                drain = operator.drain(release.generation, sync)
                self._sync_maintenance(name, drain.maintenance)
                patch["metadata"]["annotations"] = {operator.STATE_ANNOTATION: drain.node_state}
                spec = _d(obj.get("spec"))
                if self.drained.get(name) != drain.cordoned:            # the drainer cordons / uncordons
                    unschedulable = drain.cordoned or node.kube.cordoned
                    patch["spec"] = {"unschedulable": unschedulable or None,
                                     "taints": managed_taints(list(spec.get("taints") or []), unschedulable,
                                                              node.kube.cordoned) or None}
                    self.drained[name] = drain.cordoned
            if _d(_d(obj.get("metadata")).get("labels")).get(operator.DEVICE_PLUGIN_LABEL) != plugin:
                patch["metadata"]["labels"] = {operator.DEVICE_PLUGIN_LABEL: plugin}
            stale = set(self.advertised.get(name, {})) - set(resources)
            self.advertised[name] = resources
            quantities = {**{r: None for r in stale}, **{r: str(n) for r, n in resources.items()}}
            patch["status"] = {"capacity": quantities, "allocatable": quantities}
            self.api.patch("v1", "Node", name, merge={k: v for k, v in patch.items() if v})

    def _keep_until(self, name: str, release: OperatorRelease) -> str:
        """Until when the operator keeps the node state of ``name``, which its config daemon left (RFC 3339);
        "" once deleted: at once before Network Operator 24.10, after STALE_STATE_DELAY since."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        left = self._left.setdefault(name, now)
        if release.version < (24, 10) or now >= left + operator.STALE_STATE_DELAY:
            return ""
        return (left + operator.STALE_STATE_DELAY).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _sync_maintenance(self, node: str, wanted: bool) -> None:
        """The Network Operator's drain controller: a NodeMaintenance for ``node`` while it drains (the maintenance
        operator answers Ready at once: nothing holds the drain), deleted when the node is idle again."""
        name = f"nvidia-operator-{node}"
        stored = self.api.get(operator.MAINTENANCE_API_VERSION, "NodeMaintenance", name, operator.MAINTENANCE_NAMESPACE,
                              copy=False)
        if wanted and stored is None:
            self.api.put(operator.node_maintenance(node, len(self._bound(node)), now_rfc3339()))
        elif not wanted and stored is not None:
            self.api.delete(operator.MAINTENANCE_API_VERSION, "NodeMaintenance", name, operator.MAINTENANCE_NAMESPACE)

    # -- node lifecycle

    def sync_taints(self, name: str) -> None:
        """The node lifecycle controller: taint node.kubernetes.io/unschedulable iff spec.unschedulable."""
        obj = self.api.get("v1", "Node", name)
        if obj is None:
            return
        spec = _d(obj.get("spec"))
        taints = list(spec.get("taints") or [])
        keys = {_d(t).get("key") for t in taints}
        maintenance = MAINTENANCE_TAINT in keys
        wanted = managed_taints(taints, bool(spec.get("unschedulable")), maintenance)
        if [_d(t).get("key") for t in wanted] != [_d(t).get("key") for t in taints]:
            self.api.patch("v1", "Node", name, merge={"spec": {"taints": wanted or None}})

    # -- Network Operator (NicClusterPolicy)

    def sync_nic_cluster_policy(self) -> None:
        """Deploy what ``nic-cluster-policy`` asks for and report its state; remove what it no longer asks."""
        policy = self.api.get(ipam.NCP_API_VERSION, "NicClusterPolicy", ipam.NCP_NAME) or {}
        namespace = self.namespaces.network_operator
        deployed = ipam.workloads(policy, namespace) if policy else {}
        found = ipam.components(policy) if policy else {}
        for state, items in deployed.items():
            for workload in items:
                self._deploy(workload, ipam.pullable(state, found[state]))
        names = {w.name for items in deployed.values() for w in items}
        for items in ipam.workloads(ipam.nic_cluster_policy(NvIpam()), namespace).values():   # all it may deploy
            for workload in items:
                if workload.name not in names:
                    kind = "daemonsets" if workload.kind == "DaemonSet" else "deployments"
                    self.api.delete("apps/v1", kind, workload.name, workload.namespace)
        if policy:
            self.api.patch(ipam.NCP_API_VERSION, "NicClusterPolicy", ipam.NCP_NAME, merge={
                "status": ipam.status(policy)})

    # -- kube-scheduler

    def _bound(self, node: str) -> list[dict[str, Any]]:
        """The pods bound to ``node`` (stored objects: never modify them)."""
        return self.api.peek("pods", node_name=node)

    def schedule(self, pod: dict[str, Any]) -> None:
        """Bind ``pod`` (then run it), or mark it Unschedulable with the scheduler's FailedScheduling event."""
        metadata = _d(pod.get("metadata"))
        name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
        target, verdicts = scheduler.schedule(pod, self.api.peek("nodes"), self._bound)
        when = now_rfc3339()
        if target is not None:
            self._unschedulable.discard((namespace, name))
            bound = self.api.patch("v1", "Pod", name, namespace, merge={
                "spec": {"nodeName": target},
                "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                           "lastTransitionTime": when}]}})
            self._scheduler_event(bound, "Normal", "Scheduled", "Binding",
                                  f"Successfully assigned {namespace}/{name} to {target}")
            self._kubelet(bound, target)
            return
        self._unschedulable.add((namespace, name))
        message = scheduler.failure_message(pod, verdicts)
        conditions = [c for c in _d(pod.get("status")).get("conditions") or [] if _d(c).get("type") == "PodScheduled"]
        if conditions and conditions[0].get("message") == message:
            return                                  # the same verdict again: nothing new to say
        failed = self.api.patch("v1", "Pod", name, namespace, merge={"status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
             "lastProbeTime": None, "lastTransitionTime": when}]}})
        self._scheduler_event(failed, "Warning", "FailedScheduling", "Scheduling", message)

    def _scheduler_event(self, pod: dict[str, Any], kind: str, reason: str, action: str, message: str) -> None:
        """An events.k8s.io/v1 event from default-scheduler, as the core/v1 API shows it."""
        event = kubelet.event(pod, reason=reason, message=message, kind=kind, component="default-scheduler")
        event.update({"source": {}, "firstTimestamp": None, "lastTimestamp": None, "action": action,
                      "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                      "reportingInstance": "default-scheduler-twin-control-plane"})
        event.pop("count", None)
        self._record(event)

    @staticmethod
    def _waiting(pod: dict[str, Any]) -> bool:
        """Marked Unschedulable, not bound and not being deleted: a pod the scheduler tries again."""
        waiting = any(_d(c).get("type") == "PodScheduled" and _d(c).get("reason") == "Unschedulable"
                      for c in _d(pod.get("status")).get("conditions") or [])
        return waiting and not _d(pod.get("spec")).get("nodeName") and not _d(pod.get("metadata")).get(
            "deletionTimestamp")

    def retry_pending(self) -> None:
        """Try every pod left Unschedulable again, in namespace/name order (a pod went, a node changed); those
        gone, bound or being deleted are forgotten."""
        for namespace, name in sorted(self._unschedulable, key=lambda key: object_key(*key)):
            pod = self.api.get("v1", "Pod", name, namespace, copy=False)
            if pod is not None and self._waiting(pod):
                self.schedule(pod)
            else:
                self._unschedulable.discard((namespace, name))

    # -- kubelet

    def _kubelet(self, pod: dict[str, Any], node: str, *, check_resources: bool = False) -> None:
        """Hand ``pod`` to its node's kubelet: at once, or ``kubeletDelay`` later (then on the server's
        loop, for the pod as it is by then) as a real kubelet answers after the binding is seen."""
        delay = self.scenario.kubernetes.kubelet_delay
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if not delay or loop is None:
            self.run(pod, node, check_resources=check_resources)
            return
        metadata = _d(pod.get("metadata"))

        def later() -> None:
            try:
                current = self.api.get("v1", "Pod", str(metadata.get("name")), metadata.get("namespace"))
                if current is not None and self._newly_bound(current) and \
                        _d(current.get("metadata")).get("uid") == metadata.get("uid"):
                    self.run(current, node, check_resources=check_resources)
            except Exception as exc:             # kept where the listeners' failures are kept
                self.api.emulator.listener_errors.append(exc)

        loop.call_later(delay, later)

    def run(self, pod: dict[str, Any], node: str, *, check_resources: bool = False) -> None:
        """The kubelet of ``node`` takes ``pod``: admission, network, then running."""
        metadata = _d(pod.get("metadata"))
        name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
        node_obj = self.api.get("v1", "Node", node)
        if node_obj is None:
            return                                  # no such node: no kubelet ever picks it up
        rejection = self._admission(pod, node, node_obj, check_resources)
        if rejection is not None:
            reason, message = rejection
            self.api.patch("v1", "Pod", name, namespace, merge={"status": kubelet.rejected(pod, reason, message)})
            self._record(kubelet.event(pod, reason=reason, message=message, host=node))
            return
        host_ip = self._host_ip(node)
        networks = [n.strip() for n in str(_d(metadata.get("annotations")).get(NETWORKS_ANNOTATION, "")).split(",")
                    if n.strip()]
        if networks and not self._ipam_ready(node):
            self.api.patch("v1", "Pod", name, namespace, merge={"status": kubelet.sandbox_failed(pod, host_ip)})
            self._record(kubelet.event(pod, reason="FailedCreatePodSandBox", host=node,
                                       message=kubelet.sandbox_error(pod, networks[0].rsplit("/", 1)[-1])))
            return
        pod_ip = None if _d(pod.get("spec")).get("hostNetwork") else self._pod_ip(node)
        view = None
        if networks and pod_ip and node in self.nodes:
            view, failure = self._attach(pod, node, networks, pod_ip)
            if failure is not None:
                self.api.patch("v1", "Pod", name, namespace, merge={"status": kubelet.sandbox_failed(pod, host_ip)})
                self._record(kubelet.event(pod, reason="FailedCreatePodSandBox", host=node, message=failure))
                return
            self.api.patch("v1", "Pod", name, namespace, merge={"metadata": {"annotations": {
                NETWORK_STATUS_ANNOTATION: pod_runtime.network_status(pod_ip, view.attachments)}}})
        started = now_rfc3339()
        running = self.api.patch("v1", "Pod", name, namespace,
                                 merge={"status": kubelet.running(pod, host_ip, pod_ip, started)})
        command = [str(c) for c in (kubelet.containers(pod) or [{}])[0].get("command") or []]
        if command[:1] and command[0] in SHELLS and node in self.nodes:
            view = view or pod_runtime.PodView(name, self.nodes[node], [], 0, False, pod_ip or host_ip)
            self._start_container(running, view, command, host_ip, pod_ip, started)

    def _attach(self, pod: dict[str, Any], node: str, networks: list[str],
                pod_ip: str) -> tuple[pod_runtime.PodView, str | None]:
        """CNI ADD of each requested network on ``node`` (multus, ib-sriov-cni, nv-ipam): the pod's view of its VFs,
        or the FailedCreatePodSandBox words of the first failure."""
        hardware = self.nodes[node]
        container = (kubelet.containers(pod) or [{}])[0]
        limits = _d(_d(container.get("resources")).get("limits"))
        gpus = int(str(limits.get(GPU_RESOURCE, "0"))) if str(limits.get(GPU_RESOURCE, "0")).isdigit() else 0
        added = _d(_d(container.get("securityContext")).get("capabilities")).get("add") or []
        view = pod_runtime.PodView(str(_d(pod.get("metadata")).get("name")), hardware, [], gpus,
                                   "IPC_LOCK" in added or "CAP_IPC_LOCK" in added, pod_ip, faults={
                                       "uverbs": hardware.kube.uverbs, "memlock": hardware.kube.memlock,
                                       "gdr": hardware.kube.gdr, "socket": hardware.kube.nccl_socket})
        if hardware.kube.definition_missing:
            return view, kubelet.sandbox_failure(pod, kubelet.definition_missing(networks[0]))
        sriov = self.namespaces.sriov_operator
        ib_networks = {_name(n): _d(n.get("spec")) for n in self.api.peek("sriovibnetworks", sriov)}
        policies = [_d(p.get("spec")) for p in self.api.peek("sriovnetworknodepolicies", sriov)]
        used: dict[str, int] = {}
        for i, network in enumerate(networks):
            spec = ib_networks.get(network.rpartition("/")[2], {})
            pfs = [str(pf).split("#", 1)[0] for p in policies if p.get("resourceName") == spec.get("resourceName")
                   for pf in _d(p.get("nicSelector")).get("pfNames") or []]
            pf = next((hardware.hcas[iface] for iface in pfs if iface in hardware.hcas), None)
            if pf is None or pf.sriov_numvfs <= used.get(pf.iface, 0):
                return view, kubelet.sandbox_failure(pod, f'SRIOV-CNI failed to load netconf: LoadConf(): failed to '
                                                          f'get VF information: "no VF left on {network}"', network)
            index = used[pf.iface] = used.get(pf.iface, 0)
            used[pf.iface] += 1
            vf = hardware.vfs(pf.iface)[index]
            if pf.cni_add_error or vf.guid == ZERO_GUID:   # nobody set its GUID: ib-sriov-cni refuses the VF
                return view, kubelet.sandbox_failure(pod, kubelet.guid_not_valid(f"{pf.iface}v{index}"), network)
            address = self._address(node, spec.get("ipam"), str(_d(pod.get("metadata")).get("uid")))
            if isinstance(address, tuple):
                return view, kubelet.sandbox_failure(pod, kubelet.no_pool_block(*address), network)
            view.attachments.append(pod_runtime.Attachment(
                network=network, interface=f"net{i + 1}", pf=pf, vf_index=index, pci=vf.pci, rdma=vf.rdma,
                ip=address or "", guid=render.sysfs_guid(vf.guid), port_state=vf.port_state, uverbs=vf.uverbs))
        return view, None

    def _address(self, node: str, ipam_config: object, uid: str) -> str | tuple[str, str] | None:
        """The lowest free address of ``node``'s block in the pool a network's ipam config names, given to pod
        ``uid`` until it is deleted (nv-ipam's node daemon); (pool, poolType) when the node has no block there;
        None without nv-ipam."""
        try:
            config = _d(json.loads(str(ipam_config or "{}")))
        except ValueError:
            return None
        if config.get("type") != "nv-ipam":
            return None
        kind = "cidrpools" if str(config.get("poolType", "")).lower() == "cidrpool" else "ippools"
        pool_name = str(config.get("poolName") or "").split(",")[0]
        pool = next((p for p in self.api.peek(kind, self.namespaces.nv_ipam, api_version=ipam.IPAM_API_VERSION)
                     if _name(p) == pool_name), None)
        block = next((_d(a) for a in _d(_d(pool).get("status")).get("allocations") or []
                      if _d(a).get("nodeName") == node), None)
        if block is None:
            return pool_name, kind.removesuffix("s")
        used = self._addresses_used.setdefault((node, pool_name), {})
        offset = next(i for i in range(len(used) + 1) if i not in used)
        used[offset] = uid
        return pod_runtime.address_in(block, offset)

    def _start_container(self, pod: dict[str, Any], view: pod_runtime.PodView, command: list[str], host_ip: str,
                         pod_ip: str | None, started: str) -> None:
        """Run the container's script (off the server's loop when there is one); when it exits, keep what it printed
        and mark the pod Succeeded or Failed."""
        metadata = _d(pod.get("metadata"))
        uid = str(metadata.get("uid"))

        def finish(printed: str, code: int) -> None:
            current = self.api.get("v1", "Pod", str(metadata.get("name")), metadata.get("namespace"))
            if current is None or _d(current.get("metadata")).get("uid") != uid:
                return                                  # deleted meanwhile: nothing to report
            self._container_logs[uid] = printed
            self.api.patch("v1", "Pod", str(metadata.get("name")), metadata.get("namespace"), merge={
                "status": kubelet.completed(current, host_ip, pod_ip, code, started)})

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            finish(*pod_runtime.Container(view).run(command))
            return

        def done(future: asyncio.Future) -> None:
            try:
                finish(*future.result())
            except Exception as exc:             # kept where the listeners' failures are kept
                self.api.emulator.listener_errors.append(exc)

        loop.run_in_executor(None, pod_runtime.Container(view).run, command).add_done_callback(done)

    def _admission(self, pod: dict[str, Any], node: str, node_obj: dict[str, Any],
                   check_resources: bool) -> tuple[str, str] | None:
        requests = scheduler.pod_requests(pod)
        if check_resources:                          # bound without the scheduler: kubelet's own fit check
            others = [p for p in self._bound(node) if _name(p) != _name(pod)]
            for reason in scheduler.fit_reasons(pod, node_obj, others):
                if reason.startswith("Insufficient "):
                    resource = reason.removeprefix("Insufficient ")
                    capacity = _d(_d(node_obj.get("status")).get("allocatable")).get(resource, "0")
                    used = sum(scheduler.pod_requests(p).get(resource, 0) for p in others
                               if not scheduler.terminated(p))
                    return f"OutOf{resource}", (f"Node didn't have enough resource: {resource}, requested: "
                                                f"{requests[resource]}, used: {used}, capacity: {capacity}")
        scenario_node = self.nodes.get(node)
        if scenario_node is not None and scenario_node.kube.admission_error:
            sriov = set(self.advertised.get(node, {}))
            wanted = next((r for r in requests if r in sriov and requests[r] > 0), None)
            if wanted is not None:
                return "UnexpectedAdmissionError", kubelet.admission_message(wanted, int(requests[wanted]), 0)
        return None

    def _ipam_ready(self, node: str) -> bool:
        """Whether nv-ipam's node daemon runs Ready on ``node`` (without it no IPAM for the pod's networks)."""
        for pod in self.api.peek("pods", self.namespaces.nv_ipam, node_name=node):
            if _d(_d(pod.get("metadata")).get("labels")).get("name") == "nv-ipam-node":
                status = _d(pod.get("status"))
                ready = [c for c in status.get("conditions") or [] if _d(c).get("type") == "Ready"]
                return status.get("phase") == "Running" and bool(ready) and ready[0].get("status") == "True"
        return False

    # -- the HTTP writes

    @staticmethod
    def _newly_bound(pod: dict[str, Any]) -> bool:
        """Bound to a node whose kubelet has not taken it yet (no container status, still Pending)."""
        status = _d(pod.get("status"))
        return bool(_d(pod.get("spec")).get("nodeName")) and status.get("phase", "Pending") == "Pending" \
            and not status.get("containerStatuses") and not _d(pod.get("metadata")).get("deletionTimestamp")

    def on_change(self, event: str, obj: dict[str, Any]) -> None:
        """React to a write a client made over HTTP, as the cluster's controllers would."""
        kind, name = obj.get("kind"), _name(obj)
        if kind == "Pod":
            if event == "ADDED":
                node = _d(obj.get("spec")).get("nodeName")
                scheduler_name = _d(obj.get("spec")).get("schedulerName") or "default-scheduler"
                current = self.api.get("v1", "Pod", name, _d(obj.get("metadata")).get("namespace"))
                if current is None:
                    return
                if node:
                    self._kubelet(current, str(node), check_resources=True)
                elif scheduler_name == "default-scheduler":
                    self.schedule(current)
            elif event == "MODIFIED" and self._newly_bound(obj):     # bound through pods/binding
                current = self.api.get("v1", "Pod", name, _d(obj.get("metadata")).get("namespace"))
                if current is not None and self._newly_bound(current):
                    self._kubelet(current, str(current["spec"]["nodeName"]), check_resources=True)
            elif event == "MODIFIED" and self._waiting(obj):         # marked Unschedulable through pods/status
                self._unschedulable.add((str(_d(obj.get("metadata")).get("namespace")), name))
            elif event == "DELETED":
                uid = _d(obj.get("metadata")).get("uid")
                for used in self._addresses_used.values():      # CNI DEL: nv-ipam takes the addresses back
                    for offset in [o for o, holder in used.items() if holder == uid]:
                        del used[offset]
                self._container_logs.pop(str(uid), None)
                self.retry_pending()
        elif (kind == "Node" and event != "DELETED") or kind == "SriovOperatorConfig":
            if kind == "Node":
                self.sync_taints(name)
            self.sync_operator()
            self.deploy_operator()                  # its DaemonSets follow the nodes' labels and the config
            self.retry_pending()
        elif kind == "SriovNetworkNodePolicy" or kind == "SriovNetworkPoolConfig":
            self.sync_operator()
            self.retry_pending()
        elif kind == "NicClusterPolicy":
            self.sync_nic_cluster_policy()
