"""The SR-IOV Network Operator and its device plugin, played from the hardware truth.

Pure builders: the policies and SriovIBNetworks an admin applies (by default one policy per HCA, resource
``res<iface>``; else the scenario's ``kubernetes.policies``), and what the operator, its config daemon and the
device plugin make of them on each node — the SriovNetworkNodeState (spec rendered from the policies as the
policy controller renders it, status from the hardware, syncStatus and drain annotations from the mellanox
plugin's verdict), the Node's ``sriovnetwork.openshift.io/state`` and its ``nvidia.com/<resourceName>``
resources. The shapes are the 25.10 fork's (``api/v1``: ``omitempty`` fields are left out when empty), and
each generation of state reporting writes what it wrote (``drain``): the legacy daemon (24.1) only the Node's
state, the drain controller (24.4+) the node state's annotations too, the Network Operator's drain controller
with an external drainer (25.10+) a NodeMaintenance the maintenance operator answers::

    sync = node_sync(scenario.nodes["dgx031"], policies, labels)
    sync.sync_status, sync.desired                       # ('InProgress', 'Reboot_Required')
    drain("legacy", sync).node_state                     # 'Draining'

What the twin's daemon does not do: change the hardware. The scenario is the truth; the operator only
reports on it (a real daemon would create VFs, or reboot, and end up Succeeded).
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from ibconform.twin.apiserver.selectors import LabelRequirement
from ibconform.twin.controllers.workloads import LogEntry, log_text
from ibconform.twin.kube import ClusterKube, Generation, IpamPool, OperatorRelease, Policy, PoolConfig, SriovConfig
from ibconform.twin.machines.hardware import Hca, Node
from ibconform.twin.machines.render import kernel_cmdline, netdev_address, vf_address

RESOURCE_PREFIX = "nvidia.com"
API_VERSION = "sriovnetwork.openshift.io/v1"
STATE_ANNOTATION = "sriovnetwork.openshift.io/state"
DESIRED_ANNOTATION = "sriovnetwork.openshift.io/desired-state"
CURRENT_ANNOTATION = "sriovnetwork.openshift.io/current-state"
EXTERNAL_DRAINER_ANNOTATION = "sriovnetwork.openshift.io/use-external-drainer"
KEEP_UNTIL_ANNOTATION = "sriovnetwork.openshift.io/keep-state-until"
DEVICE_PLUGIN_LABEL = "sriovnetwork.openshift.io/device-plugin"
OPERATOR_CONFIG = "default"               # the only SriovOperatorConfig the operator reads
#: How long the operator keeps the node state of a node its config daemon left (Network Operator 24.10+:
#: STALE_NODE_STATE_CLEANUP_DELAY_MINUTES, chart default 30); older releases delete it at once.
STALE_STATE_DELAY = dt.timedelta(minutes=30)
MAINTENANCE_API_VERSION = "maintenance.nvidia.com/v1alpha1"
MAINTENANCE_NAMESPACE = "default"          # Helm maintenanceOperator.nodeMaintenanceNamespace
DRAIN_REQUESTOR = "nvidia.network-operator-drain-controller"
DEFAULT_RELEASE = OperatorRelease()
#: The kernel argument the generic plugin wants for each RDMA netns mode (``pkg/consts`` KernelArgRdmaExclusive,
#: KernelArgRdmaShared); it wants the other one, and both without a mode, off the command line.
RDMA_KERNEL_ARGS = {"exclusive": "ib_core.netns_mode=0", "shared": "ib_core.netns_mode=1"}
#: Pods a NodeMaintenance drain leaves alone (Network Operator pkg/drain/drain_requestor.go).
DRAIN_POD_SELECTOR = "nvidia.com/gpu-driver-upgrade-drain.skip!=true,nvidia.com/ofed-driver-upgrade-drain.skip!=true"
GPU_LABEL = "nvidia.com/gpu.present"
VENDOR = "15b3"
VF_DEVICE_ID = "101e"
DEFAULT_POLICY = "default"   # the operator's deprecated default policy: ignored
_PF_NAME = re.compile(r"^(?P<name>[^#]+)(?:#(?P<first>\d+)-(?P<last>\d+))?$")


def device_id(hca: Hca) -> str:
    """The PF's PCI device id as the operator writes it: ``1021`` for a ConnectX-7."""
    return hca.type.pci_device.removeprefix("0x")


def resource_name(iface: str) -> str:
    return f"res{iface}"


# ------------------------------------------------------------------------------ what the admin applies

def policy(name: str, iface: str, pf_device_id: str, num_vfs: int, namespace: str, *, priority: int = 90,
           node_selector: dict[str, str] | None = None, resource: str | None = None) -> dict[str, Any]:
    """One SriovNetworkNodePolicy for one PF, as the NO InfiniBand example writes it."""
    return {
        "apiVersion": API_VERSION, "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resourceName": resource or resource_name(iface),
            "nodeSelector": node_selector or {GPU_LABEL: "true"},
            "nicSelector": {"vendor": VENDOR, "deviceID": pf_device_id, "pfNames": [iface]},
            "numVfs": num_vfs, "deviceType": "netdevice", "isRdma": True, "linkType": "ib",
            "priority": priority,
        },
    }


def policy_object(spec: Policy, namespace: str) -> dict[str, Any]:
    """A scenario's policy as the admin applied it (its priority only when the scenario gives one)."""
    obj = {
        "apiVersion": API_VERSION, "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": spec.name, "namespace": namespace},
        "spec": {"resourceName": spec.resource_name, "nodeSelector": dict(spec.node_selector),
                 "nicSelector": dict(spec.nic_selector), "numVfs": spec.num_vfs, "deviceType": "netdevice",
                 "isRdma": True, "linkType": spec.link_type},
    }
    if spec.priority is not None:
        obj["spec"]["priority"] = spec.priority
    return obj


def hca_models(nodes: list[Node]) -> dict[str, str]:
    """Every compute HCA interface of the cluster's profiles (in profile order) and its PF device id."""
    found: dict[str, str] = {}
    for node in nodes:
        for iface, hca in node.hcas.items():
            found.setdefault(iface, device_id(hca))
    return found


def policies(nodes: dict[str, Node], cluster: ClusterKube, labels: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The cluster's policies (``policy-<iface>`` per HCA for every GPU node, or the scenario's), then each
    drifted node-specific policy, for the resource the cluster's policies give that PF on that node (``nodes`` and
    ``labels`` by Node name)."""
    namespace = cluster.namespaces.sriov_operator
    if cluster.policies is None:
        out = [policy(f"policy-{iface}", iface, dev, cluster.num_vfs, namespace)
               for iface, dev in hca_models(list(nodes.values())).items()]
    else:
        out = [policy_object(p, namespace) for p in cluster.policies]
    drifts = []
    for name, node in nodes.items():
        rendered = {s["name"]: s for s in spec_interfaces(out, labels.get(name, {}), interfaces_status(node))}
        for iface, hca in node.hcas.items():
            if hca.policy_drift is not None:
                groups = rendered.get(iface, {}).get("vfGroups") or [{}]
                drifts.append(policy(f"policy-{iface}-{name}", iface, device_id(hca), hca.policy_drift.num_vfs,
                                     namespace, priority=hca.policy_drift.priority,
                                     node_selector={"kubernetes.io/hostname": name},
                                     resource=groups[0].get("resourceName")))
    return out + drifts


def network_name(resource: str) -> str:
    """The SriovIBNetwork an admin names after a resource: ``ibnet-<iface>`` for ``res<iface>``, else
    ``ibnet-`` and the resource name as a DNS label (``ib_pool`` -> ``ibnet-ib-pool``)."""
    return "ibnet-" + re.sub(r"^res(?=ib)", "", resource).lower().replace("_", "-")


def ipam_config(pool: IpamPool) -> str:
    """A network's ``spec.ipam``: nv-ipam and its pool (``poolType`` only for a CIDRPool; IPPool is the default)."""
    if pool.kind == "CIDRPool":
        return f'{{"type":"nv-ipam","poolName":"{pool.name}","poolType":"cidrpool"}}'
    return f'{{"type":"nv-ipam","poolName":"{pool.name}"}}'


def ib_networks(policies_: list[dict[str, Any]], cluster: ClusterKube) -> list[dict[str, Any]]:
    """One SriovIBNetwork per resource name the policies define, in their order: a NetworkAttachmentDefinition in
    ``default`` with nv-ipam's pool."""
    resources = dict.fromkeys(str(_spec(p).get("resourceName")) for p in policies_ if _spec(p).get("resourceName"))
    return [{
        "apiVersion": API_VERSION, "kind": "SriovIBNetwork",
        "metadata": {"name": network_name(resource), "namespace": cluster.namespaces.sriov_operator},
        "spec": {"resourceName": resource, "networkNamespace": "default", "ipam": ipam_config(cluster.pool),
                 "linkState": "enable"},
    } for resource in resources]


def operator_config(release: OperatorRelease, config: SriovConfig, namespace: str) -> dict[str, Any]:
    """SriovOperatorConfig ``default`` as the Network Operator chart renders it (admission controllers off)."""
    spec: dict[str, Any] = {"enableInjector": False, "enableOperatorWebhook": False,
                            "configDaemonNodeSelector": dict(config.config_daemon_node_selector),
                            "logLevel": 2, "disableDrain": False}
    if release.generation != "legacy":               # fields of upstream v1.3+
        spec["configurationMode"] = "daemon"
    if config.disable_plugins:
        spec["disablePlugins"] = list(config.disable_plugins)
    return {"apiVersion": API_VERSION, "kind": "SriovOperatorConfig",
            "metadata": {"name": OPERATOR_CONFIG, "namespace": namespace}, "spec": spec}


def pool_config(pool: PoolConfig, namespace: str) -> dict[str, Any]:
    """A SriovNetworkPoolConfig as the admin applies it."""
    spec: dict[str, Any] = {"nodeSelector": pool.node_selector}
    if pool.rdma_mode:
        spec["rdmaMode"] = pool.rdma_mode
    return {"apiVersion": API_VERSION, "kind": "SriovNetworkPoolConfig",
            "metadata": {"name": pool.name, "namespace": namespace}, "spec": spec}


# ------------------------------------------------------------------------------ rendering (api/v1 helper.go)

def _spec(policy_obj: dict[str, Any]) -> dict[str, Any]:
    spec = policy_obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _name(policy_obj: dict[str, Any]) -> str:
    metadata = policy_obj.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def selects_node(policy_obj: dict[str, Any], labels: dict[str, str]) -> bool:
    """``SriovNetworkNodePolicy.Selected(node)``: every nodeSelector label present with that value."""
    selector = _spec(policy_obj).get("nodeSelector") or {}
    return isinstance(selector, dict) and all(labels.get(k) == v for k, v in selector.items())


def _nic(policy_obj: dict[str, Any]) -> dict[str, Any]:
    nic = _spec(policy_obj).get("nicSelector")
    return nic if isinstance(nic, dict) else {}


def nic_empty(policy_obj: dict[str, Any]) -> bool:
    """``SriovNetworkNicSelector.IsEmpty``: no criterion set (such a policy selects nothing)."""
    return not any(_nic(policy_obj).get(k) for k in ("vendor", "deviceID", "rootDevices", "pfNames", "netFilter"))


def pf_entry(entry: object) -> tuple[str, tuple[int, int] | None] | None:
    """``ParseVfRange``: ``ibp24s0#0-3`` -> ("ibp24s0", (0, 3)); ``ibp24s0`` -> ("ibp24s0", None); None when the
    range does not parse."""
    m = _PF_NAME.match(entry) if isinstance(entry, str) else None
    if m is None:
        return None
    return m["name"], (int(m["first"]), int(m["last"])) if m["first"] is not None else None


def selects_nic(policy_obj: dict[str, Any], interface: dict[str, Any]) -> bool:
    """``SriovNetworkNicSelector.Selected(iface)``: every criterion that is set must hold (pfNames against the
    PF's name and altNames, their ``#first-last`` ignored)."""
    nic = _nic(policy_obj)
    if nic.get("vendor") and nic["vendor"] != interface.get("vendor"):
        return False
    if nic.get("deviceID") and nic["deviceID"] != interface.get("deviceID"):
        return False
    if nic.get("rootDevices") and interface.get("pciAddress") not in _list(nic["rootDevices"]):
        return False
    if nic.get("pfNames"):
        names = {str(p).split("#", 1)[0] for p in _list(nic["pfNames"])}
        if not names & {interface.get("name"), *_list(interface.get("altNames"))}:
            return False
    return not nic.get("netFilter") or nic["netFilter"] == interface.get("netFilter")


def apply_order(policies_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sort.Sort(ByPriority)``: the highest priority number first, then by name, so priority 0 is applied last;
    the deprecated ``default`` policy left out."""
    usable = [p for p in policies_ if isinstance(p, dict) and _name(p) != DEFAULT_POLICY]
    return sorted(usable, key=lambda p: (-_int(_spec(p).get("priority")), _name(p)))


def _vf_group(policy_obj: dict[str, Any], interface: dict[str, Any]) -> dict[str, Any] | None:
    """``generatePfNameVfGroup``: the range of the pfNames entry naming the PF, else ``0..numVfs-1``; None when an
    entry before it does not parse (the operator then fails the node's sync)."""
    spec, num_vfs = _spec(policy_obj), _int(_spec(policy_obj).get("numVfs"))
    first, last = 0, num_vfs - 1
    for entry in _list(_nic(policy_obj).get("pfNames")):
        parsed = pf_entry(entry)
        if parsed is None:
            return None
        if parsed[0] == interface.get("name"):
            first, last = parsed[1] or (first, last)
            break
    group = {"resourceName": spec.get("resourceName"), "deviceType": spec.get("deviceType") or "netdevice",
             "vfRange": f"{first}-{last}", "policyName": _name(policy_obj), "mtu": spec.get("mtu"),
             "isRdma": spec.get("isRdma")}
    return {k: v for k, v in group.items() if v not in (None, False, "", 0)}


def vf_range(group: dict[str, Any]) -> tuple[int, int]:
    """A VF group's ``vfRange`` (``0-3``) as (first, last)."""
    first, _, last = str(group.get("vfRange", "")).partition("-")
    return (int(first), int(last)) if first.isdigit() and last.isdigit() else (0, -1)


def _overlapping(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """``VfGroup.isVFRangeOverlapping``: the start or the end of one range lies in the other."""
    (a, b), (c, d) = vf_range(one), vf_range(other)
    if a < c:
        return a <= c <= b or a <= d <= b
    return c <= a <= d or c <= b <= d


def _merge(earlier: dict[str, Any], result: dict[str, Any], equal_priority: bool) -> None:
    """``Interface.mergeConfigs``: keep the earlier groups of other resources whose ranges do not overlap the new
    one; with such a partition, or an equal priority, mtu and numVfs are the larger."""
    new = result["vfGroups"][0]
    kept = [g for g in earlier["vfGroups"]
            if g.get("resourceName") != new.get("resourceName") and not _overlapping(g, new)]
    result["vfGroups"] += kept
    if equal_priority or kept:
        result["mtu"] = max(_int(result.get("mtu")), _int(earlier.get("mtu")))
        result["numVfs"] = max(result["numVfs"], earlier["numVfs"])


def spec_interfaces(policies_: list[dict[str, Any]], labels: dict[str, str],
                    interfaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``spec.interfaces`` as the policy controller renders them: every policy selecting the node applied in
    ``apply_order`` (``SriovNetworkNodePolicy.Apply``), each selected PF given the policy's numVfs and one VF
    group, merged with what the PF had (``_merge``; the same priority as the policy applied before counts as
    equal). A PF keeps its place from the first policy that configured it."""
    rendered: dict[str, dict[str, Any]] = {}
    previous = 100                          # no policy applied yet
    for p in apply_order(policies_):
        if not selects_node(p, labels):
            continue
        spec, priority = _spec(p), _int(_spec(p).get("priority"))
        num_vfs = _int(spec.get("numVfs"))
        for interface in [] if nic_empty(p) or num_vfs <= 0 else interfaces:
            group = _vf_group(p, interface) if selects_nic(p, interface) else None
            if group is None:
                continue
            pci = interface["pciAddress"]
            result = {"pciAddress": pci, "numVfs": num_vfs, "mtu": spec.get("mtu"), "name": interface["name"],
                      "linkType": spec.get("linkType"), "eSwitchMode": spec.get("eSwitchMode"),
                      "externallyManaged": spec.get("externallyManaged"), "vfGroups": [group]}
            if pci in rendered:
                _merge(rendered[pci], result, previous == priority)
            rendered[pci] = result
        previous = priority
    return [{k: v for k, v in r.items() if v not in (None, "", 0, False)} for r in rendered.values()]


# ------------------------------------------------------------------------------ operator config and pool configs

_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_matches(selector: object, labels: dict[str, str]) -> bool:
    """A metav1 LabelSelector (``matchLabels`` and ``matchExpressions`` ANDed; empty selects every node)."""
    selector = selector if isinstance(selector, dict) else {}
    requirements = [LabelRequirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = _EXPRESSION_OPS.get(expr.get("operator")) if isinstance(expr, dict) else None
        if op is None:
            return False                    # the API server refuses it; the operator's LabelSelectorAsSelector too
        requirements.append(LabelRequirement(str(expr.get("key")), op, tuple(map(str, expr.get("values") or ()))))
    return all(r.matches(labels) for r in requirements)


def config_daemon_selector(config_obj: dict[str, Any] | None) -> dict[str, str]:
    """The nodes the config daemon runs on: SriovOperatorConfig ``spec.configDaemonNodeSelector``, else the
    operator's default (``controllers/helper.go`` GetDefaultNodeSelector)."""
    selector = _spec(config_obj or {}).get("configDaemonNodeSelector")
    if isinstance(selector, dict) and selector:
        return {str(k): str(v) for k, v in selector.items()}
    return {"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"}


def device_plugin_selector(config_obj: dict[str, Any] | None) -> dict[str, str]:
    """The nodes the device plugin runs on (GetNodeSelectorForDevicePlugin): the config daemon's, else Linux nodes,
    labelled for the plugin."""
    selector = _spec(config_obj or {}).get("configDaemonNodeSelector")
    nodes = config_daemon_selector(config_obj) if isinstance(selector, dict) and selector else {
        "kubernetes.io/os": "linux"}
    return nodes | {DEVICE_PLUGIN_LABEL: "Enabled"}


def device_plugin_label(managed_: bool, configured: bool) -> str | None:
    """The Node's device plugin label: Enabled where policies configure PFs, Disabled where none do
    (``syncDevicePluginConfigMap``), none on a node outside the config daemon's nodes (removed with its state)."""
    if not managed_:
        return None
    return "Enabled" if configured else "Disabled"


def managed(config_obj: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether the operator manages a node with ``labels`` (its config daemon runs there)."""
    return all(labels.get(k) == v for k, v in config_daemon_selector(config_obj).items())


def mellanox_enabled(config_obj: dict[str, Any] | None) -> bool:
    """Whether the config daemon's mellanox plugin runs (not in SriovOperatorConfig ``spec.disablePlugins``)."""
    return "mellanox" not in (_spec(config_obj or {}).get("disablePlugins") or [])


def _offload(pool: dict[str, Any]) -> bool:
    """An OVS hardware offload pool config (the operator leaves those out of RDMA mode selection)."""
    offload = _spec(pool).get("ovsHardwareOffloadConfig")
    return isinstance(offload, dict) and bool(offload.get("name"))


def rdma_mode(pool_configs: list[dict[str, Any]], labels: dict[str, str]) -> str | None:
    """``spec.system.rdmaMode`` the operator renders for a node: that of the one SriovNetworkPoolConfig selecting
    it; none when none does, or when several do (the operator refuses: "node is part of more then one pool")."""
    found = [p for p in pool_configs
             if not _offload(p) and label_selector_matches(_spec(p).get("nodeSelector"), labels)]
    mode = _spec(found[0]).get("rdmaMode") if len(found) == 1 else None
    return mode if mode in ("shared", "exclusive") else None


# ------------------------------------------------------------------------------ SriovNetworkNodeState

def link_speed(hca: Hca) -> str:
    """``<sysfs speed> Mb/s``: the trained rate when the port is up, -1 (SPEED_UNKNOWN) when it is not."""
    if hca.port_state != "ACTIVE":
        return "-1 Mb/s"
    return f"{int(float(hca.rate.split()[0]) * 1000)} Mb/s"


def vf_netdev(pci: str) -> str:
    """The name udev gives a VF's IPoIB netdev from its PCI address (``ibp24s0f1``)."""
    _, bus, devfn = pci.split(":")
    slot, fn = devfn.split(".")
    return f"ibp{int(bus, 16)}s{int(slot, 16)}f{int(fn)}"


def interface_status(hca: Hca) -> dict[str, Any]:
    """One PF as the config daemon discovers it (``InterfaceExt``; zero values omitted)."""
    ib = hca.link_type.current == "IB"
    mtu = 4092 if ib else 1500
    status: dict[str, Any] = {
        "name": hca.iface, "mac": netdev_address(hca), "driver": "mlx5_core", "pciAddress": hca.pci,
        "vendor": VENDOR, "deviceID": device_id(hca), "mtu": mtu, "numVfs": hca.sriov_numvfs,
        "linkSpeed": link_speed(hca), "linkType": "IB" if ib else "ETH", "linkAdminState": "up",
        "eSwitchMode": "legacy", "totalvfs": hca.sriov_totalvfs,
    }
    if hca.sriov_numvfs:
        status["Vfs"] = [{key: value for key, value in {
            "name": vf_netdev(vf_address(hca.pci, k)), "driver": "mlx5_core" if hca.vf_bound(k) else "",
            "pciAddress": vf_address(hca.pci, k), "vendor": VENDOR, "deviceID": VF_DEVICE_ID, "mtu": mtu, "vfID": k,
            "guid": hca.vf_guid(k),
        }.items() if value != ""} for k in range(hca.sriov_numvfs)]
    return {k: v for k, v in status.items() if v not in (0, "", None)}


def interfaces_status(node: Node) -> list[dict[str, Any]]:
    """Every Mellanox PF of the node (excluded ones too: the daemon knows no inventory), by PCI address."""
    return [interface_status(h) for h in sorted(node.devices.values(), key=lambda h: h.pci)]


@dataclass(frozen=True)
class Sync:
    """The config daemon's verdict on one node, and the drain's answer to its request."""

    sync_status: str                  # Succeeded | InProgress | Failed
    last_sync_error: str = ""
    desired: str = "Idle"             # what the daemon asks: Idle | Drain_Required | Reboot_Required
    current: str = "Idle"             # the drain's answer: Idle | DrainComplete (every twin drain completes)
    reboot_for: tuple[str, ...] = ()  # the plugins asking the reboot: mellanox (firmware), generic (kernel args)
    logged: str = ""                  # an error the daemon logs without reporting it in lastSyncError

    @property
    def drained(self) -> bool:
        """The node is cordoned (and its pods evicted) for the daemon's request."""
        return self.current in ("Draining", "DrainComplete")


def requested_vfs(policies_: list[dict[str, Any]], labels: dict[str, str], interface: dict[str, Any]) -> int:
    """The largest numVfs a policy selecting the PF on a node with ``labels`` asks for (0: none asks)."""
    return max((_int(_spec(p).get("numVfs")) for p in apply_order(policies_)
                if selects_node(p, labels) and not nic_empty(p) and selects_nic(p, interface)), default=0)


def card(pci: str) -> str:
    """The PCI address of a PF without its function: the ports of one card share it (and its firmware)."""
    return pci.rsplit(".", 1)[0]


def _mst_error(hca: Hca) -> str | None:
    if hca.mst_error is not None:
        return f"{hca.mst_error} exit status 3"
    if hca.mst_hangs:
        return "signal: killed"      # the daemon's context deadline kills a wedged mstconfig
    return None


def _too_many_vfs(release: OperatorRelease, num_vfs: int, total_vfs: int) -> Sync:
    """The generic plugin refusing numVfs above sriov_totalvfs (``configSriovPFDevice``, the error logged): up to
    25.1 the daemon reports the wrapped error, from 25.4 (controller-runtime daemon, upstream v1.6) it leaves
    syncStatus InProgress and retries."""
    logged = f"cannot config SRIOV device: NumVfs ({num_vfs}) is larger than TotalVfs ({total_vfs})"
    if release.version >= (25, 4):
        return Sync("InProgress", logged=logged)
    return Sync("Failed", "cannot configure sriov interfaces", logged=logged)


def kernel_args_change(cmdline: str, rdma: str | None) -> tuple[list[str], list[str]]:
    """(arguments the generic plugin adds to the boot loader's, arguments it removes) for RDMA netns mode
    ``rdma``, each compared token by token with the running kernel's command line (``IsKernelArgsSet``)."""
    args = cmdline.split()
    wanted = RDMA_KERNEL_ARGS.get(rdma or "")
    return ([wanted] if wanted and wanted not in args else []), [
        arg for arg in RDMA_KERNEL_ARGS.values() if arg != wanted and arg in args]


def node_sync(node: Node, policies_: list[dict[str, Any]], labels: dict[str, str],
              interfaces_: list[dict[str, Any]] | None = None, *, release: OperatorRelease = DEFAULT_RELEASE,
              mellanox: bool = True, rdma: str | None = None) -> Sync:
    """What the config daemon reports for ``node`` whose pool config asks RDMA netns mode ``rdma``, first cause
    first, over the PFs the policies configure (in PCI order: the daemon walks a Go map, the twin picks one order):

    1. its own failure (``operator-failed``) -> Failed;
    2. with the mellanox plugin: mstconfig fails on a configured PF -> Failed, ``mellanox plugin: failed to
       query device <pci>: ...``;
    3. a reboot is needed -> InProgress, desired Reboot_Required, drained (current DrainComplete): with the
       mellanox plugin, NUM_OF_VFS Current differs from Next Boot or from the card's size (the largest numVfs a
       policy asks of any configured port of the card; the operator, ``mlx.HandleTotalVfs``, takes the rendered
       numVfs instead, which differs only when a higher-priority policy of the same resource asks fewer VFs, the
       ``policy-drift`` fault: the twin keeps such a node synced, its hardware unchanged); from 24.4, the
       generic plugin's kernel arguments for ``rdma`` differ from the running command line (it has written them
       to the boot loader);
    4. without the mellanox plugin: a configured PF's numVfs exceeds sriov_totalvfs (the firmware's NUM_OF_VFS
       is the admin's business) -> by release (``_too_many_vfs``);
    5. a PF rendered with numVfs has no VFs though its firmware is right -> Failed, naming the device;
    6. else Succeeded, everything Idle.
    """
    if node.kube.sync_error:
        return Sync("Failed", node.kube.sync_error)
    interfaces = {i["pciAddress"]: i for i in interfaces_ or interfaces_status(node)}
    by_pci = {h.pci: h for h in node.devices.values()}
    rendered = spec_interfaces(policies_, labels, list(interfaces.values()))
    configured = sorted(((by_pci[s["pciAddress"]], s) for s in rendered), key=lambda c: c[0].pci)
    reboot_for = []
    if mellanox:
        for hca, _ in configured:
            error = _mst_error(hca)
            if error:
                return Sync("Failed", f"mellanox plugin: failed to query device {hca.pci}: {error}")
        sizes: dict[str, int] = {}
        for hca, _ in configured:
            wanted = requested_vfs(policies_, labels, interfaces[hca.pci])
            sizes[card(hca.pci)] = max(sizes.get(card(hca.pci), 0), wanted)
        if any(hca.num_of_vfs.pending or hca.num_of_vfs.current != sizes[card(hca.pci)] for hca, _ in configured):
            reboot_for.append("mellanox")
    if release.generation != "legacy" and any(kernel_args_change(kernel_cmdline(node.name, node.kernel.args), rdma)):
        reboot_for.append("generic")
    if reboot_for:
        return Sync("InProgress", desired="Reboot_Required", current="DrainComplete", reboot_for=tuple(reboot_for))
    too_many = [(spec["numVfs"], hca.sriov_totalvfs) for hca, spec in configured
                if spec.get("numVfs", 0) > hca.sriov_totalvfs]
    if not mellanox and too_many:
        return _too_many_vfs(release, *too_many[0])
    for hca, spec in configured:
        if spec.get("numVfs", 0) > 0 and hca.sriov_numvfs == 0:
            errno = "numerical result out of range" if hca.sriov_totalvfs == 0 else "cannot allocate memory"
            return Sync("Failed", f"failed to configure sriov devices: configSriovPFDevice(): fail to set NumVfs "
                                  f"for device {hca.pci}: write /sys/bus/pci/devices/{hca.pci}/sriov_numvfs: {errno}")
    return Sync("Succeeded")


@dataclass(frozen=True)
class Drain:
    """What one generation of state reporting writes about a node's drain."""

    node_state: str                                    # the Node's sriovnetwork.openshift.io/state
    annotations: dict[str, str] = field(default_factory=dict)   # the SriovNetworkNodeState's
    cordoned: bool = False                             # the node is unschedulable for the drain
    maintenance: bool = False                          # a NodeMaintenance holds the node


def drain(generation: Generation, sync: Sync) -> Drain:
    """The drain signals of ``generation`` for ``sync``: the legacy daemon drains the node itself and says so
    only on the Node (Draining until it reboots); from 24.4 it asks on the Node and the node state's
    desired-state, and a drain controller answers in current-state, with an external drainer through a
    NodeMaintenance (the node state annotated use-external-drainer)."""
    busy = sync.desired != "Idle"
    if generation == "legacy":
        return Drain("Draining" if busy else "Idle", cordoned=busy)
    annotations = {DESIRED_ANNOTATION: sync.desired, CURRENT_ANNOTATION: sync.current}
    if generation == "external-drainer":
        annotations[EXTERNAL_DRAINER_ANNOTATION] = "true"
    return Drain(sync.desired, annotations, sync.drained, generation == "external-drainer" and busy)


def _legacy_interfaces(interfaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PFs as upstream v1.2 reports them: no linkAdminState, no VF guid."""
    return [{**{k: v for k, v in i.items() if k not in ("linkAdminState", "Vfs")},
             **({"Vfs": [{k: v for k, v in vf.items() if k != "guid"} for vf in i["Vfs"]]} if "Vfs" in i else {})}
            for i in interfaces]


def node_state(name: str, node: Node, policies_: list[dict[str, Any]], labels: dict[str, str], namespace: str, *,
               release: OperatorRelease = DEFAULT_RELEASE, mellanox: bool = True, rdma: str | None = None,
               keep_until: str | None = None) -> tuple[dict[str, Any], Sync]:
    """The SriovNetworkNodeState of Node ``name`` (the operator names it after the Node, in its ``namespace``) as
    ``release`` writes it, and its verdict.

    ``rdma``: the RDMA netns mode of the node's pool config (``spec.system.rdmaMode``); ``keep_until``: the
    node left the config daemon's nodes and the operator keeps its state until then (RFC 3339)."""
    interfaces = interfaces_status(node)
    sync = node_sync(node, policies_, labels, interfaces, release=release, mellanox=mellanox, rdma=rdma)
    legacy = release.generation == "legacy"
    status: dict[str, Any] = {"interfaces": _legacy_interfaces(interfaces) if legacy else interfaces}
    if not legacy:       # the RDMA subsystem's running netns mode (netlink RdmaSystemGetNetnsMode)
        status["system"] = {"rdmaMode": node.kernel.rdma_netns}
    status["syncStatus"] = sync.sync_status
    if sync.last_sync_error:
        status["lastSyncError"] = sync.last_sync_error
    spec: dict[str, Any] = {"interfaces": spec_interfaces(policies_, labels, interfaces)}
    if legacy:       # the device plugin ConfigMap's resourceVersion the daemon restarts the plugin on
        spec["dpConfigVersion"] = str(zlib.crc32(repr(spec["interfaces"]).encode()) % 10_000_000)
    if rdma:
        spec["system"] = {"rdmaMode": rdma}
    annotations = dict(drain(release.generation, sync).annotations)
    if keep_until:
        annotations[KEEP_UNTIL_ANNOTATION] = keep_until
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API_VERSION, "kind": "SriovNetworkNodeState", "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v},
        "status": status,
    }, sync


def node_maintenance(node: str, pods_on_node: int, when: str) -> dict[str, Any]:
    """The NodeMaintenance the Network Operator's drain controller requests for ``node``, as the maintenance
    operator leaves it once drained (Ready; DaemonSet pods are never evicted)."""
    return {
        "apiVersion": MAINTENANCE_API_VERSION, "kind": "NodeMaintenance",
        "metadata": {"name": f"nvidia-operator-{node}", "namespace": MAINTENANCE_NAMESPACE,
                     "finalizers": ["maintenance.nvidia.com/finalizer"]},
        "spec": {"requestorID": DRAIN_REQUESTOR, "nodeName": node, "cordon": True,
                 "drainSpec": {"force": True, "podSelector": DRAIN_POD_SELECTOR, "timeoutSeconds": 90,
                               "deleteEmptyDir": True}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                   "lastTransitionTime": when, "observedGeneration": 1}],
                   "drain": {"totalPods": pods_on_node, "evictionPods": 0, "drainProgress": 100}},
    }


# ------------------------------------------------------------------------------ device plugin

def advertised(node: Node, spec: list[dict[str, Any]], labels: dict[str, str], sync: Sync,
               prefix: str = RESOURCE_PREFIX) -> dict[str, int]:
    """The extended resources the SR-IOV device plugin registers on the node: per resource name, the existing VFs
    its VF groups cover (``spec``: the node state's ``spec.interfaces``), summed over the PFs; a resource without
    one is not registered. Nothing until the node is synced: the plugin is restarted with the daemon's config
    only on Succeeded."""
    if sync.sync_status != "Succeeded" or labels.get(DEVICE_PLUGIN_LABEL) != "Enabled":
        return {}
    by_pci = {h.pci: h for h in node.devices.values()}
    counts: dict[str, int] = {}
    for interface in spec:
        hca = by_pci.get(interface.get("pciAddress", ""))
        if hca is None:
            continue
        for group in interface.get("vfGroups") or []:
            first, last = vf_range(group)
            found = len(range(max(first, 0), min(last, hca.sriov_numvfs - 1) + 1))
            if group.get("resourceName") and found:
                name = f"{prefix}/{group['resourceName']}"
                counts[name] = counts.get(name, 0) + found
    return counts


# ------------------------------------------------------------------------------ config daemon log

def config_daemon_log(node: str, state: dict[str, Any] | None, started: str, sync: Sync | None = None,
                      mellanox: bool = True) -> str:
    """What ``node``'s sriov-network-config-daemon logged of its last sync: the generation it applied, its plugins'
    verdicts (the mellanox plugin's when it runs, the generic plugin's kernel arguments), the error it hit, and the
    status it set. ``sync``: the verdict behind the SriovNetworkNodeState it wrote (without it, a reboot is read
    from the state's desired-state and blamed on the firmware)."""
    if state is None:
        return log_text(started, [("ERROR", "nodeStateSyncHandler(): failed to get SriovNetworkNodeState",
                                   {"name": node})])
    status, metadata = state.get("status") or {}, state.get("metadata") or {}
    reboot_for = sync.reboot_for if sync is not None else (
        ("mellanox",) if (metadata.get("annotations") or {}).get(DESIRED_ANNOTATION) == "Reboot_Required" else ())
    reboot = bool(reboot_for)
    sync_status, error = status.get("syncStatus", ""), status.get("lastSyncError", "")
    entries: list[LogEntry] = [("INFO", "nodeStateSyncHandler(): new generation",
                                {"generation": metadata.get("generation", 1)})]
    if mellanox:
        entries.append(("INFO", "mellanox plugin OnNodeStateChange()", {}))
    if not error.startswith("mellanox plugin:"):
        if mellanox:
            firmware = "mellanox" in reboot_for
            entries.append(("LEVEL(-2)", "mellanox plugin", {"need-drain": firmware, "need-reboot": firmware}))
        if "generic" in reboot_for:
            entries.append(("LEVEL(-2)", "generic-plugin needRebootNode(): need reboot for updating kernel arguments",
                            {}))
        entries.append(("INFO", "nodeStateSyncHandler(): aggregated daemon",
                        {"drain-required": reboot, "reboot-required": reboot, "disable-drain": False}))
    if sync is not None and sync.logged:
        entries.append(("ERROR", "generic plugin fail to apply", {"error": sync.logged}))
    if sync_status == "Failed":
        entries.append(("ERROR", "nodeStateSyncHandler(): failed to apply the configuration", {"error": error}))
    entries.append(("INFO", f"setNodeStateStatus(): syncStatus: {sync_status}, lastSyncError: {error}", {}))
    return log_text(started, entries)
