"""Twin scenarios (format ``ibconform-twin/v1``): the hardware truth of an emulated cluster, and its faults.

Everything else the twin serves (sysfs, mstconfig output, the Kubernetes objects) is derived from
it. Schema::

    format: ibconform-twin/v1
    cluster: twin-demo                  # also the inventory's cluster name
    profile: dgx-b200                   # device map for nodes that name none (built-in: dgx-b200)
    profiles:                           # optional custom device maps
      my-box:
        devices:                        # type: ConnectX7 (default), ConnectX7-2port (dual-port VPI), BlueField3
          - {iface: ibp24s0, pci: "0000:18:00.0", rdma: mlx5_4, type: ConnectX7}
          - {iface: ibp41s0f0, pci: "0000:29:00.0", rdma: mlx5_5, type: BlueField3, excluded: BlueField-3 DPU}
          # a PF of a multi-port card drives port function + 1 unless `port:` says (LINK_TYPE_P<port>);
          # linkType: this port is set up for IB or ETH here, whatever the defaults say
          - {iface: enp65s0f0np0, pci: "0000:41:00.0", rdma: mlx5_0, type: ConnectX7-2port, linkType: ETH,
             excluded: Ethernet port of a VPI card}
    defaults:                           # every HCA's state (all keys optional; shown: the built-in values)
      numOfVfs: 8                       #   NUM_OF_VFS Current = Next Boot; sriov_numvfs, sriov_totalvfs
      sriovEn: true                     #   SRIOV_EN
      linkType: IB                      #   LINK_TYPE_P<port> and link_layer
      fwVer: 28.41.1000                 #   fw_ver (a device model's own version when absent)
      rate: 400 Gb/sec (4X NDR)         #   ports/1/rate of an InfiniBand port (Ethernet: the card's speed)
      portState: ACTIVE                 #   ports/1/state
      mstDelay: 0                       #   seconds mstconfig takes
      factory: {numOfVfs: 0, sriovEn: false, linkType: IB}   # the firmware's Default column
    kernel:                             # every node's kernel (all keys optional; shown: the built-in values)
      args: []                          #   /proc/cmdline after DGX OS's own (ib_core.netns_mode=0, lockdown=...)
      lockdown: none                    #   /sys/kernel/security/lockdown (else mstconfig opens no device);
                                        #   from a lockdown= arg when absent
      rdmaNetnsMode: shared             #   ib_core netns_mode Y, exclusive: N; from ib_core.netns_mode= when absent
    expect: {vfsPerHca: 8}              # optional: the inventory's expect (derived from defaults when absent)
    inventory: {collect: {mstconfigTimeout: 5}}   # optional: merged into the generated inventory
    nodes:
      - names: "dgx[030-031]"           # a ClusterShell NodeSet: the host names (uname -n)
        nodeName: hostname              # optional: the Kubernetes Node's name; address: the node's IP (as OKE)
        profile: dgx-b200               # optional
        labels: {ib-layout: pooled}     # optional: Node labels beyond the built-in ones (for nodeSelectors)
        hardware: {numOfVfs: 16}        # optional: overrides defaults for these nodes
        kernel: {args: [ib_core.netns_mode=0]}   # optional: args appended, lockdown and rdmaNetnsMode override
        faults:                         # optional: see ibconform.twin.faults.FAULTS
          - {kind: firmware-pending, hcas: [ibp24s0], current: 16}
    kubernetes:                         # optional: the cluster side
      kubeletDelay: 0                   #   seconds from a pod's binding to its kubelet's verdict (0: at once)
      operator:                         #   the NVIDIA Network Operator installed (shown: the defaults)
        release: 25.10.0                #     24.1.x: legacy state reporting; 24.4+: the drain controller's
        externalDrainer: false          #     25.10+: drains through NodeMaintenances (maintenance operator)
      sriovOperatorConfig:              #   SriovOperatorConfig default (24.4+ for disablePlugins)
        disablePlugins: []              #     [mellanox]: the config daemon leaves firmware alone
        configDaemonNodeSelector: {beta.kubernetes.io/os: linux, network.nvidia.com/operator.mofed.wait: "false"}
      poolConfigs:                      #   SriovNetworkPoolConfigs (24.4+): the RDMA netns mode of the nodes selected
        - {name: rdma-exclusive, rdmaMode: exclusive, nodeSelector: {matchLabels: {nvidia.com/gpu.present: "true"}}}
      faults:                           #   cluster-wide faults (scope "cluster" in FAULTS)
        - {kind: ipam-image, image: nv-ipam, repository: ghcr.io/mellanox, version: v0.2.0}
      policies:                         #   SriovNetworkNodePolicies (absent: policy-<iface> per HCA, resource
        - name: ib-pool                 #   res<iface>, numVfs numOfVfs, priority 90); each defines a resource
          resourceName: ib_pool         #   and gets one SriovIBNetwork (ibnet-ib-pool)
          numVfs: 8                     #   default: defaults.numOfVfs
          priority: 10                  #   0-99, lower wins; left out when absent (the operator reads 0)
          nicSelector: {vendor: "15b3", deviceID: "1021", pfNames: ["ibp24s0#0-3"], rootDevices: ["0000:18:00.0"]}
          nodeSelector: {nvidia.com/gpu.present: "true"}   # the default
          linkType: ib                  #   the default
      namespaces:                       #   where each component runs (default: all in network-operator)
        sriovOperator: openshift-sriov-network-operator   # policies, node states, networks, operator pods
        networkOperator: nvidia-network-operator          # the Network Operator, Multus, CNI plugins
        nvIpam: kube-system             #   nv-ipam's pods and pool (default: networkOperator's, or
                                        #   kube-system when standalone)
      nvIpam: standalone                #   networkOperator (default: NicClusterPolicy spec.nvIpam) | standalone
      ipam:                             #   nv-ipam's pool, named by every SriovIBNetwork
        poolType: cidrpool              #   ippool (default) | cidrpool
        name: ib-pool                   #   the default
        cidr: 192.168.0.0/16            #   the default (an IPPool's subnet)
        perNodeNetworkPrefix: 24        #   cidrpool (default 24); an ippool takes perNodeBlockSize (default 24)
        gatewayIndex: 1                 #   cidrpool (default 1)
        nodeSelector: {ib-fabric: a}    #   labels a node needs to get an allocation (default: every node)

Excluded devices (mezz ports, DPUs) keep factory firmware and no VFs unless a fault says otherwise.
Every mistake is one :class:`ScenarioError` line naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from ClusterShell.NodeSet import NodeSet
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ibconform import validation
from ibconform.twin.controllers.operator import GPU_LABEL
from ibconform.twin.errors import ScenarioError
from ibconform.twin.faults import FAULTS, kernel_lockdown
from ibconform.twin.kube import (
    DEFAULT_NAMESPACE,
    ClusterKube,
    IpamPool,
    Namespaces,
    NvIpam,
    OperatorRelease,
    Policy,
    PoolConfig,
    SriovConfig,
)
from ibconform.twin.machines.hardware import DEVICE_TYPES, PROFILES, DeviceSlot, FirmwareParam, Hca, Kernel, Node
from ibconform.twin.machines.render import LOCKDOWN_MODES

FORMAT = "ibconform-twin/v1"
_RDMA = re.compile(r"^[A-Za-z0-9_]{1,63}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_DNS_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
_LABEL_KEY = re.compile(r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_PF_NAME = re.compile(r"^(?P<iface>[A-Za-z0-9_.-]{1,15})(#(?P<first>\d+)-(?P<last>\d+))?$")
STANDALONE_NAMESPACE = "kube-system"      # nvidia-k8s-ipam deploy/: the namespace its kustomization sets
_KERNEL_ARG = re.compile(r"^[!-~]{1,256}$")
#: The oldest Network Operator release the twin models, and the first with each feature it offers.
OLDEST_RELEASE, DRAIN_CONTROLLER_RELEASE, EXTERNAL_DRAINER_RELEASE = (24, 1), (24, 4), (25, 10)


def _rdma(value: str) -> str:
    if not _RDMA.match(value):
        raise ValueError(f"expected an RDMA device name like mlx5_4, got {value!r}")
    return value


def _device_type(value: str) -> str:
    if value not in DEVICE_TYPES:
        raise ValueError(f"expected one of {', '.join(DEVICE_TYPES)}, got {value!r}")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"expected label keys like example.com/ib-layout, got {key!r}")
        if not _LABEL_VALUE.match(text):
            raise ValueError(f"expected a label value (63 characters: letters, digits, -_.), got {text!r} for {key}")
    return value


def _pf_name(value: str) -> str:
    m = _PF_NAME.match(value)
    if m is None or (m["first"] is not None and int(m["first"]) > int(m["last"])):
        raise ValueError(f"expected an interface name with an optional VF range like ibp24s0#0-3, got {value!r}")
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"expected a network like 192.168.0.0/16, got {value!r}") from None
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]


def _kernel_arg(value: str) -> str:
    if not _KERNEL_ARG.match(value):
        raise ValueError(f"expected a kernel argument without spaces like ib_core.netns_mode=0, got {value!r}")
    return value


def _host_names(value: str) -> str:
    if any(not _HOST.match(name) for name in NodeSet(value)):
        raise ValueError(f"expected a NodeSet of host names like dgx[030-031], got {value!r}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _Factory(_Model):
    num_of_vfs: int | None = Field(None, alias="numOfVfs", ge=0, le=1024)
    sriov_en: bool | None = Field(None, alias="sriovEn")
    link_type: Literal["IB", "ETH"] | None = Field(None, alias="linkType")


class _Hardware(_Model):
    num_of_vfs: int | None = Field(None, alias="numOfVfs", ge=0, le=1024)
    sriov_en: bool | None = Field(None, alias="sriovEn")
    link_type: Literal["IB", "ETH"] | None = Field(None, alias="linkType")
    fw_ver: str | None = Field(None, alias="fwVer", pattern=r"^\d+\.\d+\.\d+$")
    rate: str | None = Field(None, pattern=r"^\d+ Gb/sec \(\d+X [A-Z]+\)$")
    port_state: Literal["DOWN", "INIT", "ARMED", "ACTIVE"] | None = Field(None, alias="portState")
    mst_delay: float | None = Field(None, alias="mstDelay", ge=0, le=3600)
    factory: _Factory | None = None


class _Device(_Model):
    iface: validation.Iface
    pci: validation.PciAddress
    rdma: Annotated[str, AfterValidator(_rdma)]
    type: Annotated[str, AfterValidator(_device_type)] = "ConnectX7"
    excluded: str | None = Field(None, min_length=1)
    port: int | None = Field(None, ge=1, le=4)
    link_type: Literal["IB", "ETH"] | None = Field(None, alias="linkType")


class _Profile(_Model):
    devices: list[_Device] = Field(min_length=1)


class _Fault(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    hcas: list[str] | None = Field(None, min_length=1)


class _Kernel(_Model):
    args: list[Annotated[str, AfterValidator(_kernel_arg)]] = []
    lockdown: Literal["none", "integrity", "confidentiality"] | None = None
    rdma_netns_mode: Literal["shared", "exclusive"] | None = Field(None, alias="rdmaNetnsMode")


class _NodeGroup(_Model):
    names: Annotated[validation.NodeSetText, AfterValidator(_host_names)]
    node_name: Literal["hostname", "address"] = Field("hostname", alias="nodeName")
    profile: str | None = None
    labels: Labels = {}
    hardware: _Hardware | None = None
    kernel: _Kernel | None = None
    faults: list[_Fault] = []


class _NicSelector(_Model):
    vendor: str | None = Field(None, pattern=r"^[0-9a-f]{4}$")
    device_id: str | None = Field(None, alias="deviceID", pattern=r"^[0-9a-f]{4}$")
    pf_names: list[Annotated[str, AfterValidator(_pf_name)]] = Field([], alias="pfNames")
    root_devices: list[validation.PciAddress] = Field([], alias="rootDevices")


class _Policy(_Model):
    name: str = Field(pattern=_DNS_NAME)
    resource_name: str = Field(alias="resourceName", pattern=r"^[A-Za-z0-9_]{1,63}$")
    num_vfs: int | None = Field(None, alias="numVfs", ge=0, le=1024)
    priority: int | None = Field(None, ge=0, le=99)
    nic_selector: _NicSelector = Field(alias="nicSelector")
    node_selector: Labels | None = Field(None, alias="nodeSelector")
    link_type: Literal["ib", "IB", "eth", "ETH"] = Field("ib", alias="linkType")


class _Namespaces(_Model):
    sriov_operator: str | None = Field(None, alias="sriovOperator", pattern=_DNS_LABEL)
    network_operator: str | None = Field(None, alias="networkOperator", pattern=_DNS_LABEL)
    nv_ipam: str | None = Field(None, alias="nvIpam", pattern=_DNS_LABEL)


class _Ipam(_Model):
    pool_type: Literal["ippool", "cidrpool"] = Field("ippool", alias="poolType")
    name: str = Field("ib-pool", pattern=_DNS_NAME)
    cidr: Annotated[str, AfterValidator(_network)] = "192.168.0.0/16"
    per_node_block_size: int | None = Field(None, alias="perNodeBlockSize", ge=2)
    per_node_network_prefix: int | None = Field(None, alias="perNodeNetworkPrefix", ge=1, le=128)
    gateway_index: int | None = Field(None, alias="gatewayIndex", ge=0)
    node_selector: Labels = Field({}, alias="nodeSelector")


class _Operator(_Model):
    release: str = Field("25.10.0", pattern=r"^\d{2}\.\d{1,2}\.\d+$")
    external_drainer: bool = Field(False, alias="externalDrainer")


class _SriovOperatorConfig(_Model):
    disable_plugins: list[Literal["mellanox"]] = Field([], alias="disablePlugins")
    config_daemon_node_selector: Labels | None = Field(None, alias="configDaemonNodeSelector", min_length=1)


class _LabelExpression(_Model):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = []


class _LabelSelector(_Model):
    match_labels: Labels = Field({}, alias="matchLabels")
    match_expressions: list[_LabelExpression] = Field([], alias="matchExpressions")


class _PoolConfig(_Model):
    name: str = Field(pattern=_DNS_NAME)
    rdma_mode: Literal["shared", "exclusive"] | None = Field(None, alias="rdmaMode")
    node_selector: _LabelSelector = Field(_LabelSelector(), alias="nodeSelector")


class _Kubernetes(_Model):
    kubelet_delay: float = Field(0.0, alias="kubeletDelay", ge=0, le=600)
    operator: _Operator = _Operator()
    sriov_operator_config: _SriovOperatorConfig = Field(_SriovOperatorConfig(), alias="sriovOperatorConfig")
    pool_configs: list[_PoolConfig] = Field([], alias="poolConfigs")
    faults: list[_Fault] = []
    policies: list[_Policy] | None = Field(None, min_length=1)
    namespaces: _Namespaces = _Namespaces()
    nv_ipam: Literal["networkOperator", "standalone"] = Field("networkOperator", alias="nvIpam")
    ipam: _Ipam = _Ipam()


class _Scenario(_Model):
    format: Literal["ibconform-twin/v1"]
    cluster: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    profile: str = "dgx-b200"
    profiles: dict[str, _Profile] = {}
    defaults: _Hardware = _Hardware()
    kernel: _Kernel = _Kernel()
    expect: dict[str, Any] | None = None
    inventory: dict[str, Any] = {}
    kubernetes: _Kubernetes = _Kubernetes()
    nodes: list[_NodeGroup] = Field(min_length=1)


#: The state of every HCA unless the scenario's defaults say otherwise.
BASE = {"num_of_vfs": 8, "sriov_en": True, "link_type": "IB", "fw_ver": None,
        "rate": "400 Gb/sec (4X NDR)", "port_state": "ACTIVE", "mst_delay": 0.0,
        "factory": {"num_of_vfs": 0, "sriov_en": False, "link_type": "IB"}}


@dataclass
class Scenario:
    """A validated scenario: the cluster name, the nodes in order, what the inventory expects, and the
    cluster-wide Kubernetes facts."""

    name: str
    source: str
    cluster: str
    profiles: dict[str, tuple[DeviceSlot, ...]]
    nodes: dict[str, Node]
    expect: dict[str, Any]
    inventory: dict[str, Any]
    kubernetes: ClusterKube

    def node(self, name: str) -> Node:
        return self.nodes[name]


def builtin_names() -> list[str]:
    folder = resources.files("ibconform.twin") / "scenarios"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(scenario: str | Path) -> Scenario:
    """Read a scenario from a path, or a built-in one by name (``demo``, ``faults``)."""
    path = Path(scenario)
    if path.is_file():
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read scenario ({exc.strerror or exc})") from None
        return parse(text, str(path), name=path.stem)
    name = str(scenario)
    builtin = resources.files("ibconform.twin") / "scenarios" / f"{name}.yaml"
    if "/" not in name and builtin.is_file():
        return parse(builtin.read_text(), f"scenario {name}", name=name)
    raise ScenarioError(f"{scenario}: no such scenario file or built-in scenario "
                        f"(expected a path or one of: {', '.join(builtin_names())})")


def parse(text: str, source: str, name: str = "scenario") -> Scenario:
    """Validate scenario ``text``; ``source`` names it in error messages."""
    try:
        model = validation.load(text, source, FORMAT, _Scenario, "ibconform/twin/scenario.py")
    except validation.DocumentError as exc:
        raise ScenarioError(str(exc)) from None
    return _build(model, source, name)


def _merge(base: dict, hardware: _Hardware | None) -> dict:
    if hardware is None:
        return base
    out = {**base, **hardware.model_dump(exclude_none=True, exclude={"factory"})}
    if hardware.factory is not None:
        out["factory"] = {**base["factory"], **hardware.factory.model_dump(exclude_none=True)}
    return out


def _device(slot: DeviceSlot, hw: dict) -> Hca:
    factory = hw["factory"]
    fw_ver = DEVICE_TYPES[slot.type].fw_ver
    if hw["fw_ver"] and hw["fw_ver"].split(".")[0] == fw_ver.split(".")[0]:
        fw_ver = hw["fw_ver"]   # the major number names the device family: 28 ConnectX-7, 32 BlueField-3
    if slot.excluded is not None:   # left as shipped: factory firmware, no VFs
        vfs, sriov_en, link_type = factory["num_of_vfs"], factory["sriov_en"], factory["link_type"]
        numvfs = 0
    else:
        vfs, sriov_en, link_type = hw["num_of_vfs"], hw["sriov_en"], hw["link_type"]
        numvfs = vfs if sriov_en else 0
    link_type = slot.link_type or link_type     # the profile sets this port up for one link whatever the defaults
    return Hca(
        slot=slot,
        num_of_vfs=FirmwareParam(factory["num_of_vfs"], vfs, vfs),
        sriov_en=FirmwareParam(factory["sriov_en"], sriov_en, sriov_en),
        link_type=FirmwareParam(factory["link_type"], link_type, link_type),
        sriov_numvfs=numvfs,
        sriov_totalvfs=vfs if sriov_en else 0,
        fw_ver=fw_ver,
        port_state=hw["port_state"],
        rate=hw["rate"] if link_type == "IB" else DEVICE_TYPES[slot.type].eth_rate,
        mst_delay=float(hw["mst_delay"]),
    )


def _profiles(model: _Scenario, source: str) -> dict[str, tuple[DeviceSlot, ...]]:
    profiles = dict(PROFILES)
    for pname, profile in model.profiles.items():
        slots = tuple(DeviceSlot(d.iface, d.pci, d.rdma, d.type, d.excluded, d.port, d.link_type)
                      for d in profile.devices)
        for key in ("iface", "pci", "rdma"):
            values = [getattr(s, key) for s in slots]
            dup = next((v for v in values if values.count(v) > 1), None)
            if dup is not None:
                raise ScenarioError(f"{source}: profiles.{pname}.devices: {key} {dup} listed twice "
                                    "(expected each device once)")
        _check_ports(slots, f"{source}: profiles.{pname}.devices")
        profiles[pname] = slots
    return profiles


def _check_ports(slots: tuple[DeviceSlot, ...], where: str) -> None:
    """Each PF of a multi-port card drives a port the card has, and no two drive the same one."""
    driven: dict[tuple[str, int], str] = {}
    for i, slot in enumerate(slots):
        model, port = DEVICE_TYPES[slot.type], slot.card_port
        if port > model.ports:
            field = "port" if slot.port else "pci"
            raise ScenarioError(f"{where}[{i}].{field}: {slot.pci} would drive port {port} but a {slot.type} card has "
                                f"{model.ports} (set port: 1 to {model.ports})")
        if model.ports > 1:
            other = driven.setdefault((slot.card, port), slot.iface)
            if other != slot.iface:
                raise ScenarioError(f"{where}[{i}]: {slot.iface} and {other} both drive port {port} of card "
                                    f"{slot.card} (expected one PF per port: set port:)")


_NETNS_FLAGS = {"1": "shared", "y": "shared", "0": "exclusive", "n": "exclusive"}


def _booted(args: list[str], where: str) -> dict[str, str]:
    """What kernel arguments set at boot: ``lockdown=`` and ib_core's ``netns_mode`` (the last one counts)."""
    found = {}
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "lockdown":
            if value not in ("integrity", "confidentiality"):
                raise ValueError(f"{where}.args: {arg}: expected lockdown=integrity or lockdown=confidentiality")
            found["lockdown"] = value
        elif key == "ib_core.netns_mode":
            if value.lower() not in _NETNS_FLAGS:
                raise ValueError(f"{where}.args: {arg}: expected ib_core.netns_mode=0 (exclusive) or 1 (shared)")
            found["rdma_netns"] = _NETNS_FLAGS[value.lower()]
    return found


def _kernel(layers: list[tuple[_Kernel, str]]) -> Kernel:
    """The node's kernel from its layers (the scenario's ``kernel``, then its group's), each where it is written:
    a layer's arguments set lockdown and RDMA netns mode as at boot, its explicit keys as at run time."""
    args: list[str] = []
    state = {"lockdown": "none", "rdma_netns": "shared"}
    boot_lockdown, set_at = "none", "kernel"
    for layer, where in layers:
        booted = _booted(layer.args, where)
        args += layer.args
        state.update(booted)
        if "lockdown" in booted:
            boot_lockdown = booted["lockdown"]
        if layer.lockdown is not None:
            state["lockdown"], set_at = layer.lockdown, where
        if layer.rdma_netns_mode is not None:
            state["rdma_netns"] = layer.rdma_netns_mode
    levels = list(LOCKDOWN_MODES)
    if levels.index(state["lockdown"]) < levels.index(boot_lockdown):
        raise ValueError(f"{set_at}.lockdown: {state['lockdown']} is below lockdown={boot_lockdown} in the kernel's "
                         "args (a running kernel's lockdown can be raised, never lowered)")
    return Kernel(tuple(args), state["lockdown"], state["rdma_netns"])


def _expect(model: _Scenario, base: dict) -> dict[str, Any]:
    if model.expect is not None:
        return dict(model.expect)
    return {"vfsPerHca": base["num_of_vfs"], "ipamImage": "nvidia-k8s-ipam", "linkType": base["link_type"],
            "portState": "ACTIVE", "portRate": int(base["rate"].split()[0])}


def _fault_kind(spec: _Fault, where: str) -> tuple[Any, dict[str, Any]]:
    """The registered kind of ``spec`` and its checked parameters."""
    kind = FAULTS.get(spec.kind)
    if kind is None:
        raise ValueError(f"{where}.kind: unknown fault {spec.kind!r} (expected one of: {', '.join(FAULTS)})")
    params = dict(spec.model_extra or {})
    for key, value in params.items():
        if key not in kind.params:
            known = ", ".join((["hcas"] if kind.scope == "hca" else []) + list(kind.params)) or "none"
            raise ValueError(f"{where}.{key}: unknown parameter of fault {spec.kind} (expected: {known})")
        default = kind.params[key]
        wanted = float if isinstance(default, float) else type(default)
        ok = isinstance(value, wanted) and not (isinstance(value, bool) and wanted is not bool)
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            ok, params[key] = True, float(value)
        if not ok or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0):
            raise ValueError(f"{where}.{key}: expected a non-negative {wanted.__name__}, got {value!r}")
    return kind, params


def _apply(kind: Any, target: object, params: dict[str, Any], where: str) -> None:
    try:
        kind.apply(target, **params)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}" if ": " in str(exc) else f"{where}: {exc}") from None


def _apply_cluster_fault(cluster: ClusterKube, spec: _Fault, where: str) -> None:
    kind, params = _fault_kind(spec, where)
    if kind.scope != "cluster":
        raise ValueError(f"{where}.kind: fault {spec.kind} concerns a {kind.scope}, not the cluster "
                         "(list it under nodes[].faults)")
    if spec.hcas is not None:
        raise ValueError(f"{where}.hcas: fault {spec.kind} concerns the whole cluster (remove hcas)")
    _apply(kind, cluster, params, where)
    cluster.faults.append(spec.kind)


def _apply_fault(node: Node, spec: _Fault, where: str) -> None:
    kind, params = _fault_kind(spec, where)
    if kind.scope == "cluster":
        raise ValueError(f"{where}.kind: fault {spec.kind} concerns the whole cluster "
                         "(list it under kubernetes.faults)")
    if kind.scope == "node":
        if spec.hcas is not None:
            raise ValueError(f"{where}.hcas: fault {spec.kind} concerns the whole node (remove hcas)")
        _apply(kind, node, params, where)
    else:
        if spec.hcas is None:
            targets = kind.targets(node) if kind.targets else []
        else:
            by_pci = {d.pci: d for d in node.devices.values()}
            targets = []
            for name in spec.hcas:
                device = node.devices.get(name) or by_pci.get(name)
                if device is None:
                    raise ValueError(f"{where}.hcas: unknown device {name!r} on {node.name} "
                                     f"(expected one of: {', '.join(node.devices)})")
                targets.append(device)
        if not targets:
            raise ValueError(f"{where}: fault {spec.kind} finds no device to act on in profile {node.profile}")
        for device in targets:
            _apply(kind, device, params, where)
    node.faults.append(spec.kind)


def _policies(model: _Kubernetes, num_vfs: int) -> tuple[Policy, ...] | None:
    if model.policies is None:
        return None
    out: list[Policy] = []
    for i, spec in enumerate(model.policies):
        if any(p.name == spec.name for p in out):
            raise ValueError(f"kubernetes.policies[{i}].name: policy {spec.name} is listed twice (expected each once)")
        nic = spec.nic_selector
        selector = {"vendor": nic.vendor, "deviceID": nic.device_id, "pfNames": list(nic.pf_names),
                    "rootDevices": list(nic.root_devices)}
        out.append(Policy(spec.name, spec.resource_name, num_vfs if spec.num_vfs is None else spec.num_vfs,
                          {k: v for k, v in selector.items() if v},
                          {GPU_LABEL: "true"} if spec.node_selector is None else dict(spec.node_selector),
                          spec.priority, spec.link_type))
    return tuple(out)


def _namespaces(model: _Kubernetes) -> Namespaces:
    given, standalone = model.namespaces, model.nv_ipam == "standalone"
    network_operator = given.network_operator or DEFAULT_NAMESPACE
    if not standalone and given.nv_ipam not in (None, network_operator):
        raise ValueError(f"kubernetes.namespaces.nvIpam: nv-ipam deployed by the Network Operator runs in its "
                         f"namespace {network_operator}, not {given.nv_ipam} (set kubernetes.nvIpam: standalone, or "
                         "leave nvIpam out)")
    nv_ipam = given.nv_ipam or (STANDALONE_NAMESPACE if standalone else network_operator)
    return Namespaces(given.sriov_operator or DEFAULT_NAMESPACE, network_operator, nv_ipam)


def _pool(model: _Ipam) -> IpamPool:
    network = ipaddress.ip_network(model.cidr)
    if model.pool_type == "ippool":
        for key, value in (("perNodeNetworkPrefix", model.per_node_network_prefix),
                           ("gatewayIndex", model.gateway_index)):
            if value is not None:
                raise ValueError(f"kubernetes.ipam.{key}: a CIDRPool field (set poolType: cidrpool, or give an "
                                 "IPPool's perNodeBlockSize)")
        size = model.per_node_block_size or 24
        if size > network.num_addresses - 2:
            raise ValueError(f"kubernetes.ipam.perNodeBlockSize: expected at most {network.num_addresses - 2} (the "
                             f"addresses of {model.cidr}), got {size}")
        return IpamPool("IPPool", model.name, model.cidr, size, None, dict(model.node_selector))
    if model.per_node_block_size is not None:
        raise ValueError("kubernetes.ipam.perNodeBlockSize: an IPPool field (a CIDRPool takes perNodeNetworkPrefix)")
    prefix = model.per_node_network_prefix or 24
    if not network.prefixlen <= prefix <= network.max_prefixlen:
        raise ValueError(f"kubernetes.ipam.perNodeNetworkPrefix: expected {network.prefixlen} to "
                         f"{network.max_prefixlen} (a prefix within {model.cidr}), got {prefix}")
    index = 1 if model.gateway_index is None else model.gateway_index
    if index >= 2 ** (network.max_prefixlen - prefix):
        raise ValueError(f"kubernetes.ipam.gatewayIndex: expected below {2 ** (network.max_prefixlen - prefix)} (the "
                         f"addresses of a /{prefix}), got {index}")
    return IpamPool("CIDRPool", model.name, model.cidr, prefix, index, dict(model.node_selector))


def _overlay(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, key by key (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _inventory(model: _Scenario, namespaces: Namespaces) -> dict[str, Any]:
    """The scenario's ``inventory:`` over what the twin's cluster makes the inventory say: where each component
    runs, when not all in the default namespace."""
    if not namespaces.custom:
        return dict(model.inventory)
    derived = {"kubernetes": {"namespace": namespaces.network_operator, "namespaces": {
        "sriovOperator": namespaces.sriov_operator, "networkOperator": namespaces.network_operator,
        "nvIpam": namespaces.nv_ipam}}}
    return _overlay(derived, model.inventory)


def _installed(model: _Kubernetes) -> tuple[OperatorRelease, SriovConfig, list[PoolConfig]]:
    """The Network Operator release, SriovOperatorConfig and pool configs, each checked against the release."""
    release = OperatorRelease(model.operator.release, model.operator.external_drainer)
    named = f"Network Operator {model.operator.release}"
    if release.version < OLDEST_RELEASE:
        raise ValueError(f"kubernetes.operator.release: expected 24.1.0 or later (older releases are not modelled), "
                         f"got {model.operator.release}")
    if release.external_drainer and release.version < EXTERNAL_DRAINER_RELEASE:
        raise ValueError(f"kubernetes.operator.externalDrainer: needs Network Operator 25.10 or later vs {named}: "
                         "raise kubernetes.operator.release or drop externalDrainer")
    config = model.sriov_operator_config
    if config.disable_plugins and release.version < DRAIN_CONTROLLER_RELEASE:
        raise ValueError(f"kubernetes.sriovOperatorConfig.disablePlugins: SriovOperatorConfig has no disablePlugins "
                         f"before Network Operator 24.4 vs {named}")
    if model.pool_configs and release.version < DRAIN_CONTROLLER_RELEASE:
        raise ValueError(f"kubernetes.poolConfigs: SriovNetworkPoolConfig has no nodeSelector or rdmaMode before "
                         f"Network Operator 24.4 vs {named}")
    names = [p.name for p in model.pool_configs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"kubernetes.poolConfigs: {duplicate} listed twice (expected each name once)")
    sriov = SriovConfig(tuple(config.disable_plugins), dict(config.config_daemon_node_selector)) \
        if config.config_daemon_node_selector else SriovConfig(tuple(config.disable_plugins))
    pools = [PoolConfig(p.name, p.rdma_mode, p.node_selector.model_dump(by_alias=True, exclude_defaults=True))
             for p in model.pool_configs]
    return release, sriov, pools


def _cluster(model: _Kubernetes, num_vfs: int) -> ClusterKube:
    """The cluster side: what the admin installed and applied, then the cluster faults."""
    release, sriov_config, pool_configs = _installed(model)
    kubernetes = ClusterKube(num_vfs=num_vfs, kubelet_delay=model.kubelet_delay,
                             nv_ipam=NvIpam(standalone=model.nv_ipam == "standalone"),
                             policies=_policies(model, num_vfs), namespaces=_namespaces(model), pool=_pool(model.ipam),
                             operator=release, sriov_config=sriov_config, pool_configs=pool_configs)
    for j, spec in enumerate(model.faults):
        if spec.kind == "ipam-image" and kubernetes.nv_ipam.standalone:
            raise ValueError(f"kubernetes.faults[{j}].kind: fault ipam-image changes NicClusterPolicy spec.nvIpam, "
                             "which standalone nv-ipam (kubernetes.nvIpam) has none of")
        _apply_cluster_fault(kubernetes, spec, f"kubernetes.faults[{j}]")
    return kubernetes


def _build(model: _Scenario, source: str, name: str) -> Scenario:
    profiles = _profiles(model, source)
    base = _merge(BASE, model.defaults)
    try:
        kubernetes = _cluster(model.kubernetes, base["num_of_vfs"])
    except ValueError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    nodes: dict[str, Node] = {}
    for i, group in enumerate(model.nodes):
        pname = group.profile or model.profile
        if pname not in profiles:
            field = f"nodes[{i}].profile" if group.profile else "profile"
            raise ScenarioError(f"{source}: {field}: unknown profile {pname!r} "
                                f"(expected one of: {', '.join(sorted(profiles))})")
        hw = _merge(base, group.hardware)
        layers = [(model.kernel, "kernel")] + ([(group.kernel, f"nodes[{i}].kernel")] if group.kernel else [])
        try:
            kernel = _kernel(layers)
        except ValueError as exc:
            raise ScenarioError(f"{source}: {exc}") from None
        for node_name in NodeSet(group.names):
            if node_name in nodes:
                raise ScenarioError(f"{source}: nodes[{i}].names: node {node_name} is listed twice "
                                    "(expected each node once)")
            node = Node(node_name, pname, {s.iface: _device(s, hw) for s in profiles[pname]},
                        kernel=replace(kernel), naming=group.node_name)
            for device in node.devices.values():
                device.host = node_name     # its VF GUIDs are this node's own
            if kernel.lockdown != "none":
                kernel_lockdown(node, mode=kernel.lockdown)
            node.kube.labels = dict(group.labels)
            for j, spec in enumerate(group.faults):
                try:
                    _apply_fault(node, spec, f"nodes[{i}].faults[{j}]")
                except ValueError as exc:
                    raise ScenarioError(f"{source}: {exc}") from None
            nodes[node_name] = node
    return Scenario(name=name, source=source, cluster=model.cluster, profiles=profiles, nodes=nodes,
                    expect=_expect(model, base), inventory=_inventory(model, kubernetes.namespaces),
                    kubernetes=kubernetes)
