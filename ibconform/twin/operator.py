"""The SR-IOV Network Operator and its device plugin, played from the hardware truth.

Pure builders: the policies and SriovIBNetworks an admin applies (one per HCA), and what the operator,
its config daemon and the device plugin make of them on each node — the SriovNetworkNodeState (spec
from the policies, status from the hardware, syncStatus and drain annotations from the mellanox
plugin's verdict), the Node's ``sriovnetwork.openshift.io/state`` and its ``nvidia.com/res<iface>``
resources. The shapes are the 25.10 fork's (``api/v1``: ``omitempty`` fields are left out when empty)::

    sync = node_sync(scenario.nodes["dgx031"], spec_interfaces(policies, labels, interfaces))
    sync.sync_status, sync.desired                       # ('InProgress', 'Reboot_Required')

What the twin's daemon does not do: change the hardware. The scenario is the truth; the operator only
reports on it (a real daemon would create VFs, or reboot, and end up Succeeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ibconform.twin.hardware import Hca, Node
from ibconform.twin.render import guid, netdev_address, vf_address

NAMESPACE = "network-operator"
RESOURCE_PREFIX = "nvidia.com"
API_VERSION = "sriovnetwork.openshift.io/v1"
STATE_ANNOTATION = "sriovnetwork.openshift.io/state"
DESIRED_ANNOTATION = "sriovnetwork.openshift.io/desired-state"
CURRENT_ANNOTATION = "sriovnetwork.openshift.io/current-state"
DEVICE_PLUGIN_LABEL = "sriovnetwork.openshift.io/device-plugin"
GPU_LABEL = "nvidia.com/gpu.present"
VENDOR = "15b3"
VF_DEVICE_ID = "101e"
IPAM = '{"type":"nv-ipam","poolName":"ib-pool"}'


def device_id(hca: Hca) -> str:
    """The PF's PCI device id as the operator writes it: ``1021`` for a ConnectX-7."""
    return hca.type.pci_device.removeprefix("0x")


def resource_name(iface: str) -> str:
    return f"res{iface}"


# ------------------------------------------------------------------------------ what the admin applies

def policy(name: str, iface: str, pf_device_id: str, num_vfs: int, *, priority: int = 90,
           node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """One SriovNetworkNodePolicy for one PF, as the NO InfiniBand example writes it."""
    return {
        "apiVersion": API_VERSION, "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "resourceName": resource_name(iface),
            "nodeSelector": node_selector or {GPU_LABEL: "true"},
            "nicSelector": {"vendor": VENDOR, "deviceID": pf_device_id, "pfNames": [iface]},
            "numVfs": num_vfs, "deviceType": "netdevice", "isRdma": True, "linkType": "ib",
            "priority": priority,
        },
    }


def hca_models(nodes: list[Node]) -> dict[str, str]:
    """Every compute HCA interface of the cluster's profiles (in profile order) and its PF device id."""
    found: dict[str, str] = {}
    for node in nodes:
        for iface, hca in node.hcas.items():
            found.setdefault(iface, device_id(hca))
    return found


def policies(nodes: dict[str, Node], num_vfs: int) -> list[dict[str, Any]]:
    """``policy-<iface>`` per HCA for every GPU node, then each drifted node-specific policy (``nodes`` by Node
    name)."""
    out = [policy(f"policy-{iface}", iface, dev, num_vfs) for iface, dev in hca_models(list(nodes.values())).items()]
    for name, node in nodes.items():
        for iface, hca in node.hcas.items():
            if hca.policy_drift is not None:
                out.append(policy(f"policy-{iface}-{name}", iface, device_id(hca), hca.policy_drift.num_vfs,
                                  priority=hca.policy_drift.priority,
                                  node_selector={"kubernetes.io/hostname": name}))
    return out


def ib_networks(nodes: list[Node]) -> list[dict[str, Any]]:
    """``ibnet-<iface>`` per HCA: a NetworkAttachmentDefinition in ``default`` with nv-ipam's ib-pool."""
    return [{
        "apiVersion": API_VERSION, "kind": "SriovIBNetwork",
        "metadata": {"name": f"ibnet-{iface}", "namespace": NAMESPACE},
        "spec": {"resourceName": resource_name(iface), "networkNamespace": "default", "ipam": IPAM,
                 "linkState": "enable"},
    } for iface in hca_models(nodes)]


# ------------------------------------------------------------------------------ selection (api/v1 helper.go)

def _spec(policy_obj: dict[str, Any]) -> dict[str, Any]:
    spec = policy_obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def selects_node(policy_obj: dict[str, Any], labels: dict[str, str]) -> bool:
    """``SriovNetworkNodePolicy.Selected(node)``: every nodeSelector label present with that value."""
    selector = _spec(policy_obj).get("nodeSelector") or {}
    return isinstance(selector, dict) and all(labels.get(k) == v for k, v in selector.items())


def pf_entry(entry: str) -> tuple[str, tuple[int, int] | None]:
    """``ibp24s0#0-3`` -> ("ibp24s0", (0, 3)); ``ibp24s0`` -> ("ibp24s0", None)."""
    name, _, span = str(entry).partition("#")
    if span:
        first, _, last = span.partition("-")
        if first.isdigit() and last.isdigit():
            return name, (int(first), int(last))
    return name, None


def selects_nic(policy_obj: dict[str, Any], interface: dict[str, Any]) -> bool:
    """``SriovNetworkNicSelector.Selected(iface)``: every criterion set must hold."""
    nic = _spec(policy_obj).get("nicSelector") or {}
    if not isinstance(nic, dict):
        return False
    if nic.get("vendor") and nic["vendor"] != interface.get("vendor"):
        return False
    if nic.get("deviceID") and nic["deviceID"] != interface.get("deviceID"):
        return False
    if nic.get("rootDevices") and interface.get("pciAddress") not in nic["rootDevices"]:
        return False
    return not nic.get("pfNames") or interface.get("name") in [pf_entry(p)[0] for p in nic["pfNames"]]


def _priority(policy_obj: dict[str, Any]) -> int:
    value = _spec(policy_obj).get("priority")
    return value if isinstance(value, int) else 99


def _num_vfs(policy_obj: dict[str, Any]) -> int:
    value = _spec(policy_obj).get("numVfs")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _vf_range(policy_obj: dict[str, Any], iface: str) -> tuple[int, int] | None:
    for entry in (_spec(policy_obj).get("nicSelector") or {}).get("pfNames") or []:
        name, span = pf_entry(entry)
        if name == iface:
            return span
    return None


def selecting(policies_: list[dict[str, Any]], labels: dict[str, str], interface: dict[str, Any]) -> list[dict]:
    """The policies selecting ``interface`` on a node with ``labels``, lowest priority first (the order
    the operator applies them in, so the highest priority is applied last and wins)."""
    found = [p for p in policies_ if selects_node(p, labels) and selects_nic(p, interface)]
    return sorted(found, key=_priority, reverse=True)


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


def vf_guid(hca: Hca, index: int) -> str:
    """A VF's node GUID (``xx:xx:...``, 8 bytes) derived from its PF's."""
    raw = guid(hca.pci).replace(":", "")
    tail = (int(raw[-4:], 16) + 1 + index) & 0xFFFF
    raw = raw[:8] + "ff" + raw[10:12] + f"{tail:04x}"
    return ":".join(raw[i:i + 2] for i in range(0, 16, 2))


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
        status["Vfs"] = [{
            "name": vf_netdev(vf_address(hca.pci, k)), "driver": "mlx5_core", "pciAddress": vf_address(hca.pci, k),
            "vendor": VENDOR, "deviceID": VF_DEVICE_ID, "mtu": mtu, "vfID": k, "guid": vf_guid(hca, k),
        } for k in range(hca.sriov_numvfs)]
    return {k: v for k, v in status.items() if v not in (0, "", None)}


def interfaces_status(node: Node) -> list[dict[str, Any]]:
    """Every Mellanox PF of the node (excluded ones too: the daemon knows no inventory), by PCI address."""
    return [interface_status(h) for h in sorted(node.devices.values(), key=lambda h: h.pci)]


def spec_interfaces(policies_: list[dict[str, Any]], labels: dict[str, str],
                    interfaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``spec.interfaces`` as the policy controller renders them: each selecting policy applied in turn,
    a higher priority replacing what a lower one wrote for the same PF."""
    out = []
    for interface in interfaces:
        rendered: dict[str, Any] | None = None
        for p in selecting(policies_, labels, interface):
            spec, num_vfs = _spec(p), _num_vfs(p)
            if num_vfs <= 0:
                continue
            span = _vf_range(p, interface["name"]) or (0, num_vfs - 1)
            group = {"resourceName": spec.get("resourceName"), "deviceType": spec.get("deviceType") or "netdevice",
                     "vfRange": f"{span[0]}-{span[1]}", "policyName": p["metadata"]["name"],
                     "mtu": spec.get("mtu"), "isRdma": spec.get("isRdma")}
            rendered = {"pciAddress": interface["pciAddress"], "numVfs": num_vfs, "mtu": spec.get("mtu"),
                        "name": interface["name"], "linkType": spec.get("linkType"),
                        "eSwitchMode": spec.get("eSwitchMode"),
                        "vfGroups": [{k: v for k, v in group.items() if v not in (None, False, "", 0)}]}
        if rendered is not None:
            out.append({k: v for k, v in rendered.items() if v not in (None, "", 0)})
    return out


@dataclass(frozen=True)
class Sync:
    """The config daemon's and drain controller's verdict on one node."""

    sync_status: str                  # Succeeded | InProgress | Failed
    last_sync_error: str = ""
    desired: str = "Idle"             # SriovNetworkNodeState desired-state = Node sriovnetwork.openshift.io/state
    current: str = "Idle"             # SriovNetworkNodeState current-state (drain controller)

    @property
    def drained(self) -> bool:
        """The drain controller cordoned the node (and evicted its pods) for a reboot."""
        return self.current in ("Draining", "DrainComplete")


def _requested_total_vfs(policies_: list[dict[str, Any]], labels: dict[str, str], interface: dict[str, Any]) -> int:
    """What the mellanox plugin sizes NUM_OF_VFS for: the largest numVfs a selecting policy asks."""
    return max((_num_vfs(p) for p in selecting(policies_, labels, interface)), default=0)


def _mst_error(hca: Hca) -> str | None:
    if hca.mst_error is not None:
        return f"{hca.mst_error} exit status 3"
    if hca.mst_hangs:
        return "signal: killed"      # the daemon's context deadline kills a wedged mstconfig
    return None


def node_sync(node: Node, policies_: list[dict[str, Any]], labels: dict[str, str],
              interfaces_: list[dict[str, Any]] | None = None) -> Sync:
    """What the config daemon reports for ``node``, first cause first:

    1. its own failure (``operator-failed``) -> Failed;
    2. mstconfig fails on a configured PF -> Failed, ``mellanox plugin: failed to query device <pci>: ...``;
    3. NUM_OF_VFS Current differs from Next Boot or from what the policies ask -> a reboot is needed:
       InProgress, desired-state Reboot_Required, drained (current-state DrainComplete);
    4. a configured PF has no VFs though its firmware is right -> Failed, naming the device;
    5. else Succeeded, everything Idle.
    """
    if node.kube.sync_error:
        return Sync("Failed", node.kube.sync_error)
    interfaces = {i["pciAddress"]: i for i in interfaces_ or interfaces_status(node)}
    by_pci = {h.pci: h for h in node.devices.values()}
    configured = [(by_pci[s["pciAddress"]], s) for s in spec_interfaces(policies_, labels, list(interfaces.values()))]
    for hca, _ in configured:
        error = _mst_error(hca)
        if error:
            return Sync("Failed", f"mellanox plugin: failed to query device {hca.pci}: {error}")
    for hca, _ in configured:
        wanted = _requested_total_vfs(policies_, labels, interfaces[hca.pci])
        if hca.num_of_vfs.pending or hca.num_of_vfs.current != wanted:
            return Sync("InProgress", desired="Reboot_Required", current="DrainComplete")
    for hca, spec in configured:
        if spec.get("numVfs", 0) > 0 and hca.sriov_numvfs == 0:
            errno = "numerical result out of range" if hca.sriov_totalvfs == 0 else "cannot allocate memory"
            return Sync("Failed", f"failed to configure sriov devices: configSriovPFDevice(): fail to set NumVfs "
                                  f"for device {hca.pci}: write /sys/bus/pci/devices/{hca.pci}/sriov_numvfs: {errno}")
    return Sync("Succeeded")


def node_state(name: str, node: Node, policies_: list[dict[str, Any]],
               labels: dict[str, str]) -> tuple[dict[str, Any], Sync]:
    """The SriovNetworkNodeState of Node ``name`` (the operator names it after the Node) and its verdict."""
    interfaces = interfaces_status(node)
    sync = node_sync(node, policies_, labels, interfaces)
    status: dict[str, Any] = {"interfaces": interfaces, "syncStatus": sync.sync_status}
    if sync.last_sync_error:
        status["lastSyncError"] = sync.last_sync_error
    spec: dict[str, Any] = {"interfaces": spec_interfaces(policies_, labels, interfaces)}
    return {
        "apiVersion": API_VERSION, "kind": "SriovNetworkNodeState",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {DESIRED_ANNOTATION: sync.desired, CURRENT_ANNOTATION: sync.current}},
        "spec": {k: v for k, v in spec.items() if v},
        "status": status,
    }, sync


# ------------------------------------------------------------------------------ device plugin

def advertised(node: Node, policies_: list[dict[str, Any]], labels: dict[str, str], sync: Sync,
               prefix: str = RESOURCE_PREFIX, interfaces_: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """The extended resources the SR-IOV device plugin registers on the node: per selecting policy's
    resourceName, the existing VFs of its PFs (within a ``#first-last`` range). Nothing until the node
    is synced: the plugin is restarted with the daemon's config only on Succeeded."""
    if sync.sync_status != "Succeeded" or labels.get(DEVICE_PLUGIN_LABEL) != "Enabled":
        return {}
    vfs: dict[str, set[tuple[str, int]]] = {}
    by_pci = {i["pciAddress"]: i for i in interfaces_ or interfaces_status(node)}
    for hca in sorted(node.devices.values(), key=lambda h: h.pci):
        for p in selecting(policies_, labels, by_pci[hca.pci]):
            name = _spec(p).get("resourceName")
            if not name or _num_vfs(p) <= 0:
                continue
            first, last = _vf_range(p, hca.iface) or (0, hca.sriov_numvfs - 1)
            vfs.setdefault(f"{prefix}/{name}", set()).update(
                (hca.pci, k) for k in range(hca.sriov_numvfs) if first <= k <= last)
    return {name: len(found) for name, found in vfs.items() if found}
