"""The inventory (format ``ibconform/v1``): which nodes, which HCAs, what to expect.

Loaded from YAML into typed models; every mistake becomes one ``InventoryError`` line naming the
file, the field and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ClusterShell.NodeSet import NodeSet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from ibconform import validation
from ibconform.errors import InventoryError

FORMAT = "ibconform/v1"
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
PciAddress, Iface = validation.PciAddress, validation.Iface


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


class Hca(_Model):
    """One HCA (a PF) whose VFs the suite proves."""

    iface: Iface
    pci: PciAddress
    port_number: int | None = Field(None, alias="port", ge=1, le=4,
                                    description="the card port this PF drives (LINK_TYPE_P<port>); default: "
                                                "PCI function + 1")

    @property
    def port(self) -> int:
        """The card port of this PF: function .0 drives port 1, .1 port 2 (dual-port VPI cards)."""
        return self.port_number or int(self.pci.rsplit(".", 1)[1], 16) + 1


class ExcludedDevice(_Model):
    """A device that must carry no VFs and no resource (BlueField-3 DPU, internal mezz port)."""

    pci: PciAddress
    reason: str = Field(min_length=1)
    iface: Iface | None = None


class Expect(_Model):
    vfs_per_hca: int | None = Field(None, alias="vfsPerHca", ge=0, le=1024,
                                    description="default: the policies' numVfs, else 8")
    ipam_image: str = Field("nvidia-k8s-ipam", alias="ipamImage", min_length=1)
    ipam_repository: str | None = Field(None, alias="ipamRepository", description="checked only when set")
    ipam_version: str | None = Field(None, alias="ipamVersion", description="checked only when set")
    link_type: Literal["IB", "ETH"] = Field("IB", alias="linkType")
    port_state: str = Field("ACTIVE", alias="portState")
    port_rate: int | None = Field(None, alias="portRate", description="Gb/s, e.g. 400; unchecked when absent")
    rdma_netns_mode: Literal["shared", "exclusive"] | None = Field(
        None, alias="rdmaNetnsMode", description="default: the SriovNetworkPoolConfig's rdmaMode, else unchecked")
    memlock_min: int | None = Field(None, alias="memlockMin", ge=0,
                                    description="bytes of locked memory the probe container needs at least "
                                                "(probe level rdma); default: unlimited")
    nccl_gdr: bool = Field(True, alias="ncclGdr", description="NCCL must use GPUDirect RDMA (probe level nccl)")
    nccl_bus_bandwidth: float | None = Field(None, alias="ncclBusBandwidth", gt=0,
                                             description="GB/s: all_reduce_perf's '# Avg bus bandwidth' at least "
                                                         "(probe level nccl); unchecked when absent")


class ExpectOverride(_Model):
    """Per-node-group overrides of ``expect``: only the keys written replace the cluster-wide ones."""

    vfs_per_hca: int | None = Field(None, alias="vfsPerHca", ge=0, le=1024)
    ipam_image: str | None = Field(None, alias="ipamImage", min_length=1)
    ipam_repository: str | None = Field(None, alias="ipamRepository")
    ipam_version: str | None = Field(None, alias="ipamVersion")
    link_type: Literal["IB", "ETH"] | None = Field(None, alias="linkType")
    port_state: str | None = Field(None, alias="portState")
    port_rate: int | None = Field(None, alias="portRate")
    rdma_netns_mode: Literal["shared", "exclusive"] | None = Field(None, alias="rdmaNetnsMode")
    memlock_min: int | None = Field(None, alias="memlockMin", ge=0)
    nccl_gdr: bool | None = Field(None, alias="ncclGdr")
    nccl_bus_bandwidth: float | None = Field(None, alias="ncclBusBandwidth", gt=0)


class Ssh(_Model):
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    identity_file: str | None = Field(None, alias="identityFile")
    known_hosts: str = Field("~/.ssh/known_hosts", alias="knownHosts")
    config: str | None = Field(None, description="an ssh_config file (Host, HostName, Port, User, IdentityFile)")
    accept_unknown_host_keys: bool = Field(False, alias="acceptUnknownHostKeys")
    sudo: bool = False
    connect_timeout: float = Field(10.0, alias="connectTimeout", gt=0)
    command_timeout: float = Field(120.0, alias="commandTimeout", gt=0)


class Namespaces(_Model):
    """Where each component runs when not all in ``kubernetes.namespace`` (OpenShift, standalone nv-ipam)."""

    sriov_operator: str | None = Field(
        None, alias="sriovOperator", min_length=1,
        description="SR-IOV Network Operator: its policies, node states, operator config, config daemon, device plugin")
    nv_ipam: str | None = Field(None, alias="nvIpam", min_length=1, description="nv-ipam pods, IPPools, CIDRPools")
    network_operator: str | None = Field(None, alias="networkOperator", min_length=1,
                                         description="the NVIDIA Network Operator's own pod")


#: The components whose namespace an inventory can set, and the key that sets it.
COMPONENTS = {"sriov": "sriov_operator", "ipam": "nv_ipam", "network-operator": "network_operator"}


class Kubernetes(_Model):
    context: str | None = None
    kubeconfig: str | None = None
    namespace: str = "network-operator"
    namespaces: Namespaces = Namespaces()
    resource_prefix: str = Field("nvidia.com", alias="resourcePrefix")
    timeout: float = Field(30.0, gt=0, description="seconds per API request")

    def namespace_of(self, component: str) -> str:
        """The namespace of ``component`` (a key of COMPONENTS): its own key, else ``namespace``."""
        return getattr(self.namespaces, COMPONENTS[component]) or self.namespace

    @property
    def component_namespaces(self) -> list[str]:
        """Every namespace a component runs in, each once, in COMPONENTS order."""
        return list(dict.fromkeys(self.namespace_of(c) for c in COMPONENTS))


class Collect(_Model):
    parallel: int = Field(32, ge=1, le=1024, description="nodes collected at once")
    mstconfig_timeout: float = Field(30.0, alias="mstconfigTimeout", gt=0)


class Toleration(_Model):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Probe(_Model):
    """The NCCL probe pod placed on every node (never with --read-only)."""

    namespace: str = "default"
    image: str = "ghcr.io/coreweave/nccl-tests:latest"
    level: Literal["schedule", "start", "rdma", "nccl"] = Field(
        "start", description="how far the probe goes (each level includes the ones before): schedule, start "
        "(networks attached), rdma (verbs usable in the pod), nccl (all_reduce_perf on the node's GPUs over its VFs)")
    nccl_timeout: float = Field(120.0, alias="ncclTimeout", gt=0,
                                description="seconds all_reduce_perf may run in one probe (level nccl)")
    timeout: float = Field(180.0, gt=0, description="seconds for all probes together")
    gpus: int | None = Field(None, ge=0, description="GPUs per probe (default: all of the node's nvidia.com/gpu)")
    leftover_age: float | None = Field(
        None, alias="leftoverAge", gt=0,
        description="seconds after which a probe pod of another run counts as left by a crash (default 2×timeout+120)")
    tolerations: list[Toleration] = Field(
        [], description="maintenance taints to tolerate besides node.kubernetes.io/unschedulable (cordon)")


class Profile(_Model):
    hcas: list[Hca] = Field(min_length=1)
    excluded: list[ExcludedDevice] = []

    @model_validator(mode="after")
    def _unique_devices(self) -> Profile:
        seen: set[str] = set()
        for dev in [*self.hcas, *self.excluded]:
            if dev.pci in seen:
                raise ValueError(f"PCI address {dev.pci} listed twice (expected each device once)")
            seen.add(dev.pci)
        ifaces = [h.iface for h in self.hcas]
        if len(set(ifaces)) != len(ifaces):
            raise ValueError("an HCA interface is listed twice (expected each iface once)")
        return self


class NodeGroup(_Model):
    names: validation.NodeSetText
    profile: str
    transport: str | None = Field(
        None, description="'ssh' (default), 'config-daemon' (exec in the node's sriov-network-config-daemon pod) or "
        "a pytest-testinfra hostspec with {node}, e.g. 'local://'")
    expect: ExpectOverride | None = None


class InventoryModel(_Model):
    format: Literal["ibconform/v1"]
    cluster: str = Field(min_length=1)
    kubernetes: Kubernetes = Kubernetes()
    expect: Expect = Expect()
    ssh: Ssh = Ssh()
    collect: Collect = Collect()
    probe: Probe = Probe()
    transport: str = "ssh"
    profiles: dict[str, Profile] = Field(min_length=1)
    nodes: list[NodeGroup] = Field(min_length=1)


@dataclass(frozen=True)
class Node:
    """One node as the suite sees it: its devices and what is expected of them."""

    name: str
    profile: str
    hcas: tuple[Hca, ...]
    excluded: tuple[ExcludedDevice, ...]
    expect: Expect
    transport: str


@dataclass(frozen=True)
class Inventory:
    path: Path
    text: str
    model: InventoryModel
    nodes: tuple[Node, ...]

    @property
    def cluster(self) -> str:
        return self.model.cluster

    @functools.cached_property
    def _by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    def node(self, name: str) -> Node:
        """The node named ``name`` (KeyError if the inventory has none); every check item asks, so by index."""
        return self._by_name[name]

    def shard(self, index: int, count: int) -> str:
        """The NodeSet of shard ``index`` of ``count``: the inventory's nodes, in its order, cut into ``count``
        runs of sizes differing by at most one (the first ones longer). Stable for a given inventory and count,
        so each pod of an Indexed Job (JOB_COMPLETION_INDEX) judges its own nodes and together they judge all."""
        if not 0 <= index < count:
            raise InventoryError(f"--shard: expected INDEX/COUNT with 0 <= INDEX < COUNT, got {index}/{count}")
        if count > len(self.nodes):
            raise InventoryError(f"--shard: {count} shards for {len(self.nodes)} nodes: expected at most one shard "
                                 "per node (lower the Job's completions)")
        size, longer = divmod(len(self.nodes), count)
        start = index * size + min(index, longer)
        return str(NodeSet.fromlist(n.name for n in self.nodes[start:start + size + (index < longer)]))

    def only(self, names: str) -> Inventory:
        """This inventory restricted to the nodes of the NodeSet ``names`` (one shard of a large fleet)."""
        try:
            wanted = set(NodeSet(validation.nodeset(names)))
        except ValueError as exc:
            raise InventoryError(f"--nodes: {exc}") from None
        unknown = wanted - self._by_name.keys()
        if unknown:
            raise InventoryError(f"--nodes: {NodeSet.fromlist(sorted(unknown))} not in the inventory {self.path} "
                                 f"(it lists {NodeSet.fromlist(self._by_name)})")
        return dataclasses.replace(self, nodes=tuple(n for n in self.nodes if n.name in wanted))


def parse(text: str, path: Path) -> Inventory:
    """Validate inventory ``text`` read from ``path``; raise InventoryError with one line on failure."""
    try:
        model = validation.load(text, str(path), FORMAT, InventoryModel, "docs/inventory.md")
    except validation.DocumentError as exc:
        raise InventoryError(str(exc)) from None
    return Inventory(path=path, text=text, model=model, nodes=tuple(_resolve(model, path)))


def _resolve(model: InventoryModel, path: Path) -> list[Node]:
    nodes: dict[str, Node] = {}
    for i, group in enumerate(model.nodes):
        profile = model.profiles.get(group.profile)
        if profile is None:
            known = ", ".join(sorted(model.profiles))
            raise InventoryError(
                f"{path}: nodes[{i}].profile: unknown profile {group.profile!r} (expected one of: {known})")
        expect = model.expect
        if group.expect is not None:
            expect = expect.model_copy(update=group.expect.model_dump(exclude_none=True))
        for name in NodeSet(group.names):
            if not _NODE.match(name):
                raise InventoryError(f"{path}: nodes[{i}].names: expected host names (letters, digits, '.', '-', '_'), "
                                     f"got {name!r}")
            if name in nodes:
                raise InventoryError(f"{path}: nodes[{i}].names: node {name} is listed twice (expected each node once)")
            nodes[name] = Node(name=name, profile=group.profile, hcas=tuple(profile.hcas),
                               excluded=tuple(profile.excluded), expect=expect,
                               transport=group.transport or model.transport)
    return list(nodes.values())


def load(path: str | Path) -> Inventory:
    """Read and validate the inventory at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory ({exc.strerror or exc})") from None
    return parse(text, path)
