"""The twin's hardware truth: each node's devices and the state a scenario gives them.

A scenario (``twin/scenario.py``) builds these objects; faults (``twin/faults.py``) edit them; the
renderers (``render.py``) turn them into the sysfs files and the ``mstconfig`` output a node serves; the
cluster emulation (``controllers/cluster.py``) derives the operator's view, the allocatable and the
scheduler's verdicts from the same objects::

    twin.scenario.nodes["dgx031"].hcas["ibp24s0"].num_of_vfs.current   # 16
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

from ibconform.twin.kube import NodeKube, PolicyDrift

LinkType = Literal["IB", "ETH"]
PortState = Literal["DOWN", "INIT", "ARMED", "ACTIVE"]
SshState = Literal["up", "unreachable", "hung"]
Death = Literal["reboot", "freeze"]
Lockdown = Literal["none", "integrity", "confidentiality"]
NetnsMode = Literal["shared", "exclusive"]
NodeNaming = Literal["hostname", "address"]


@dataclass(frozen=True)
class DeviceType:
    """What a device model reports about itself (mstconfig header, sysfs ids) and how many ports its card has."""

    key: str                # what a scenario's ``type:`` names it by
    name: str               # mstconfig "Device type:" (ConnectX7, BlueField3)
    part_number: str        # mstconfig "Name:"
    description: str        # mstconfig "Description:"
    hca_type: str           # sysfs infiniband/<dev>/hca_type, the decimal device id
    board_id: str           # sysfs infiniband/<dev>/board_id (PSID)
    pci_device: str         # sysfs PCI "device" of the PF
    fw_ver: str             # firmware this model runs unless the scenario says otherwise
    ports: int              # the card's ports: LINK_TYPE_P1 .. LINK_TYPE_P<ports>, one PCI function each
    eth_rate: str           # sysfs ports/1/rate of a port running Ethernet at the card's speed


DEVICE_TYPES: dict[str, DeviceType] = {
    t.key: t for t in (
        DeviceType("ConnectX7", "ConnectX7", "MCX75310AAS-NEAT",
                   "NVIDIA ConnectX-7 HHHL Adapter Card; 400GbE / NDR IB (default mode); Single-port OSFP; "
                   "PCIe 5.0 x16; Crypto Disabled; Secure Boot Enabled",
                   "MT4129", "MT_0000000838", "0x1021", "28.41.1000", 1, "400 Gb/sec (4X NDR)"),
        # A dual-port VPI card: each port runs InfiniBand or Ethernet (LINK_TYPE_P1, LINK_TYPE_P2), function .0
        # drives port 1 and .1 port 2. Name, description and PSID as mlxup and mlxconfig print them for it
        # (github.com/sigitp-git/mellanox-nic-firmware-and-vf-creation, MFT 4.30).
        DeviceType("ConnectX7-2port", "ConnectX7", "MCX755106AS-HEA_Ax",
                   "NVIDIA ConnectX-7 HHHL Adapter Card; 200GbE (default mode) / NDR200 IB; Dual-port QSFP112; "
                   "PCIe 5.0 x16 with x16 PCIe extension option; Crypto Disabled; Secure Boot Enabled",
                   "MT4129", "MT_0000000834", "0x1021", "28.41.1000", 2, "200 Gb/sec (4X HDR)"),
        DeviceType("BlueField3", "BlueField3", "900-9D3B6-00CV-AA0",
                   "NVIDIA BlueField-3 B3220 P-Series FHHL DPU; 200GbE (default mode) / NDR200 IB; Dual-port "
                   "QSFP112; PCIe Gen5.0 x16 with x16 PCIe extension option; 16 Arm cores; 32GB on-board DDR; "
                   "integrated BMC; Crypto Enabled",
                   "MT41692", "MT_0000000884", "0xa2dc", "32.41.1000", 2, "200 Gb/sec (4X HDR)"),
    )
}


@dataclass(frozen=True)
class DeviceSlot:
    """One device of a node profile: where it sits, which port of its card it drives and whether the inventory
    excludes it."""

    iface: str
    pci: str
    rdma: str                   # mlx5_N: enumeration order, unrelated to port order
    type: str                   # key of DEVICE_TYPES
    excluded: str | None = None  # the reason, for devices that must carry no VFs
    port: int | None = None     # the card port it drives, when not PCI function + 1 (the inventory's ``port``)
    link_type: LinkType | None = None   # the link its port is set up for here, whatever the node's defaults say

    @property
    def card(self) -> str:
        """The PCI device of its card (``0000:41:00``): the functions of one card share it."""
        return self.pci.rsplit(".", 1)[0]

    @property
    def card_port(self) -> int:
        """The card port it drives (its ``LINK_TYPE_P<port>``): ``port``, else PCI function + 1 on a multi-port
        card (function .1 drives port 2), else 1."""
        if self.port is not None:
            return self.port
        return int(self.pci.rsplit(".", 1)[1], 16) + 1 if DEVICE_TYPES[self.type].ports > 1 else 1


#: The DGX B200 map (inventories/dgx-b200-example.yaml): 8 compute ConnectX-7, the internal mezz
#: ConnectX-7 ports and the BlueField-3 DPUs.
PROFILES: dict[str, tuple[DeviceSlot, ...]] = {
    "dgx-b200": (
        DeviceSlot("ibp24s0", "0000:18:00.0", "mlx5_4", "ConnectX7"),
        DeviceSlot("ibp64s0", "0000:40:00.0", "mlx5_7", "ConnectX7"),
        DeviceSlot("ibp79s0", "0000:4f:00.0", "mlx5_8", "ConnectX7"),
        DeviceSlot("ibp94s0", "0000:5e:00.0", "mlx5_9", "ConnectX7"),
        DeviceSlot("ibp154s0", "0000:9a:00.0", "mlx5_10", "ConnectX7"),
        DeviceSlot("ibp192s0", "0000:c0:00.0", "mlx5_13", "ConnectX7"),
        DeviceSlot("ibp206s0", "0000:ce:00.0", "mlx5_14", "ConnectX7"),
        DeviceSlot("ibp220s0", "0000:dc:00.0", "mlx5_15", "ConnectX7"),
        DeviceSlot("ibs14f0", "0000:0e:00.0", "mlx5_0", "ConnectX7", "internal mezz ConnectX-7"),
        DeviceSlot("ibs14f1", "0000:0e:00.1", "mlx5_1", "ConnectX7", "internal mezz ConnectX-7"),
        DeviceSlot("ibs14f2", "0000:0e:00.2", "mlx5_2", "ConnectX7", "internal mezz ConnectX-7"),
        DeviceSlot("ibs14f3", "0000:0e:00.3", "mlx5_3", "ConnectX7", "internal mezz ConnectX-7"),
        DeviceSlot("ibp41s0f0", "0000:29:00.0", "mlx5_5", "BlueField3", "BlueField-3 DPU"),
        DeviceSlot("ibp170s0f0", "0000:aa:00.0", "mlx5_11", "BlueField3", "BlueField-3 DPU"),
    ),
}


@dataclass
class FirmwareParam:
    """One mstconfig parameter: the three columns ``mstconfig -e q`` prints.

    >>> p = FirmwareParam(default=0, current=16, next_boot=8)
    >>> p.pending, p.modified
    (True, True)
    """

    default: int | bool | str
    current: int | bool | str
    next_boot: int | bool | str

    @property
    def pending(self) -> bool:
        """NVRAM holds a value the running firmware has not applied yet."""
        return self.current != self.next_boot

    @property
    def modified(self) -> bool:
        """mstconfig marks the row with ``*``: Next Boot differs from Default or Current."""
        return self.next_boot != self.default or self.next_boot != self.current


@dataclass
class Hca:
    """One device of one node and its hardware state (an excluded DPU is one too)."""

    slot: DeviceSlot
    num_of_vfs: FirmwareParam
    sriov_en: FirmwareParam
    link_type: FirmwareParam
    sriov_numvfs: int
    sriov_totalvfs: int
    fw_ver: str
    port_state: PortState = "ACTIVE"
    rate: str = "400 Gb/sec (4X NDR)"
    mst_delay: float = 0.0              # seconds mstconfig takes; math.inf: it never returns
    mst_error: str | None = None        # the "-E- ..." line mstconfig prints instead of the table (exit 3)
    mst_output: str | None = None       # what mstconfig prints instead of the table, exiting 0 (garbage)
    mst_cut: int | None = None          # mstconfig's table cut after this many characters, exiting 0
    sysfs_missing: tuple[str, ...] = ()  # PF attributes (sriov_totalvfs ...) absent from its sysfs
    vfs_unbound: tuple[int, ...] = ()   # VF indexes with no driver bound (no RDMA device, no uverbs/umad)
    vf_port_state: PortState | None = None   # every VF port's state; None: it follows the PF's port
    pcie_width: int = 16                # lanes its PCIe link trained at (x16; fewer: it moves less than its port)
    cni_add_error: bool = False         # its VFs get no GUID before CNI ADD: ib-sriov-cni refuses them
    #: Not hardware: a node-specific policy for this PF (the ``policy-drift`` fault); kept out of repr, so
    #: it leaves the rendered hardware tree alone.
    policy_drift: PolicyDrift | None = field(default=None, repr=False, compare=False)
    #: The node it sits in, which makes its VF GUIDs that node's own, and the GUIDs faults gave VFs (index ->
    #: canonical GUID). Kept out of repr: nodes with the same hardware share one tree, and each node serves its
    #: VF GUIDs from its own folder (``nodes.write_host``).
    host: str = field(default="", repr=False, compare=False)
    vf_guids: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def iface(self) -> str:
        return self.slot.iface

    @property
    def pci(self) -> str:
        return self.slot.pci

    @property
    def rdma(self) -> str:
        return self.slot.rdma

    @property
    def excluded(self) -> str | None:
        return self.slot.excluded

    @property
    def type(self) -> DeviceType:
        return DEVICE_TYPES[self.slot.type]

    @property
    def port(self) -> int:
        """The card port this PF drives (``DeviceSlot.card_port``)."""
        return self.slot.card_port

    @property
    def phys_state(self) -> str:
        """sysfs ``ports/1/phys_state``: LinkUp when the port is up, else still polling for a peer."""
        return "5: LinkUp" if self.port_state in ("ACTIVE", "ARMED", "INIT") else "2: Polling"

    @property
    def mst_hangs(self) -> bool:
        return math.isinf(self.mst_delay)

    def vf_guid(self, index: int) -> str:
        """VF ``index``'s node GUID, which is also its port GUID (``xx:xx:xx:xx:xx:xx:xx:xx``): what a fault gave
        it, else the one the SR-IOV operator's config daemon draws (first byte 01-fe, never all zero or all ff),
        here stable: derived from the node, the PF and the index, so no two VFs of the fleet share one."""
        if index in self.vf_guids:
            return self.vf_guids[index]
        return assigned_guid(self.host, self.pci, index)

    def vf_bound(self, index: int) -> bool:
        """Whether VF ``index`` has its driver (mlx5_core) bound."""
        return index not in self.vfs_unbound

    def vf_port(self, index: int) -> PortState:
        """The state of VF ``index``'s IB port: the PF's unless the subnet manager leaves virtual ports down
        (``vf_port_state``); INIT while its GUID is zero (the SM does not activate a port without one)."""
        if self.port_state != "ACTIVE":
            return self.port_state
        if self.vf_guid(index) == ZERO_GUID:
            return "INIT"
        return self.vf_port_state or self.port_state


ZERO_GUID = "00:00:00:00:00:00:00:00"


def vf_address(pci: str, index: int, offset: int = 1, stride: int = 1) -> str:
    """PCI address of VF ``index`` (0-based) of PF ``pci``: routing id = PF's + offset + index * stride."""
    domain, bus, devfn = pci.split(":")
    dev, fn = devfn.split(".")
    rid = (int(bus, 16) << 8 | int(dev, 16) << 3 | int(fn)) + offset + index * stride
    return f"{domain}:{rid >> 8 & 0xff:02x}:{rid >> 3 & 0x1f:02x}.{rid & 7}"


def assigned_guid(host: str, pf_pci: str, index: int) -> str:
    """The GUID the operator gives VF ``index`` of PF ``pf_pci`` on node ``host`` (stable, made up)."""
    raw = hashlib.sha256(f"{host}/{pf_pci}/{index}".encode()).digest()[:8]
    first = 1 + raw[0] % 0xFE
    return ":".join(f"{b:02x}" for b in (first, *raw[1:]))


@dataclass(frozen=True)
class Vf:
    """One VF of a PF as the node enumerates it: PCI function, RDMA device, char devices, GUID, port state."""

    pf: str                 # the PF's interface
    index: int
    pci: str
    rdma: str               # mlx5_<n>, numbered after the node's PFs
    uverbs: int             # uverbs<n> and umad<n>: the same number
    bound: bool
    guid: str
    port_state: PortState


@dataclass
class Host:
    """What a node's operating system does besides serving its hardware: the faults of the environment."""

    authorized: bool = True             # its authorized_keys holds the suite's key
    sudo_password: bool = False         # sudo asks for a password, so ``sudo -n`` refuses
    dies: Death | None = None           # during its mstconfig queries: sshd killed, or every session frozen
    dies_after: float = 1.0             # seconds into the query


@dataclass
class Kernel:
    """What the node's running kernel shows besides its devices."""

    args: tuple[str, ...] = ()          # /proc/cmdline after the distribution's own arguments
    lockdown: Lockdown = "none"         # /sys/kernel/security/lockdown: locked down, mstconfig opens no device
    rdma_netns: NetnsMode = "shared"    # ib_core's netns_mode: Y shared, N exclusive (RDMA devices per netns)


@dataclass
class Node:
    """One node: its sshd's fate and its devices, keyed by interface name.

    ``name`` is its host name (``uname -n``); its Kubernetes Node is named the same, or, with ``naming``
    "address", by its address as managed clouds name Nodes (``node_name``).
    """

    name: str
    profile: str
    devices: dict[str, Hca]
    ssh: SshState = "up"
    faults: list[str] = field(default_factory=list)   # the fault kinds applied, in order
    kube: NodeKube = field(default_factory=NodeKube)   # its Kubernetes-side facts (twin/kube.py)
    host: Host = field(default_factory=Host)           # its operating system's faults
    kernel: Kernel = field(default_factory=Kernel)     # its kernel's command line, lockdown, RDMA netns mode
    naming: NodeNaming = "hostname"                    # what its Kubernetes Node is named by

    def node_name(self, address: str) -> str:
        """The name of its Kubernetes Node when it has ``address``: its host name, or the address itself."""
        return address if self.naming == "address" else self.name

    def link_types(self, hca: Hca) -> dict[int, FirmwareParam]:
        """``LINK_TYPE_P<n>`` of ``hca``'s card, by port: device-wide parameters, so each PF of a multi-port card
        shows every port's, each from the PF driving that port (a port no PF of the node drives: as shipped)."""
        if hca.type.ports == 1:
            return {1: hca.link_type}
        drivers = {d.port: d.link_type for d in self.devices.values() if d.slot.card == hca.slot.card}
        factory = hca.link_type.default
        return {port: drivers.get(port) or FirmwareParam(factory, factory, factory)
                for port in range(1, hca.type.ports + 1)}

    def vfs(self, iface: str | None = None) -> list[Vf]:
        """The VFs of the PF ``iface`` (default: of every device), as the node numbers them: after the PFs' own
        RDMA devices (mlx5_<highest PF + 1> onwards) and char devices, PF by PF in PCI order, VF by VF."""
        rdma = 1 + max(int(d.rdma.rsplit("_", 1)[1]) for d in self.devices.values())
        chars = len(self.devices)
        out = []
        for hca in sorted(self.devices.values(), key=lambda h: h.pci):
            for k in range(hca.sriov_numvfs):
                if iface is None or hca.iface == iface:
                    out.append(Vf(hca.iface, k, vf_address(hca.pci, k), f"mlx5_{rdma}", chars, hca.vf_bound(k),
                                  hca.vf_guid(k), hca.vf_port(k)))
                rdma, chars = rdma + 1, chars + 1
        return out

    @property
    def hcas(self) -> dict[str, Hca]:
        """The devices whose VFs the suite proves (the inventory's ``hcas``)."""
        return {i: d for i, d in self.devices.items() if d.excluded is None}

    @property
    def excluded(self) -> dict[str, Hca]:
        """Devices that must carry no VFs (mezz ports, DPUs)."""
        return {i: d for i, d in self.devices.items() if d.excluded is not None}

    @property
    def reachable(self) -> bool:
        return self.ssh == "up"
