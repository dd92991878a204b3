"""Facts from the cluster half of the bundle (``cluster/<plural>.json``), indexed once per run.

The API's objects are untrusted: every accessor tolerates missing or mistyped fields. A List that
could not be read raises ``Unproven`` (a missing CRD: the operator is not installed, a finding) or
``ClusterUnavailable`` (401/403/API down: the check ends in error with the reason).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from ibconform import components, operator_state, reboot
from ibconform import policies as policies_mod
from ibconform.bundle import Bundle
from ibconform.collect.nodescript import hca_dir
from ibconform.errors import CannotJudge, MissingEvidence, Unproven
from ibconform.inventory import ExcludedDevice, Hca, Node
from ibconform.untrusted import d, lst

if TYPE_CHECKING:
    from ibconform.facts import NodeFacts

NCP_NAME = "nic-cluster-policy"
OPERATOR_CONFIG = "default"   # the SriovOperatorConfig the operator reads


class ClusterUnavailable(CannotJudge):
    """The cluster evidence a check needs could not be collected (401, 403, API down, no kubeconfig)."""


def name_of(obj: dict) -> str:
    return str(d(obj.get("metadata")).get("name", ""))


@dataclass(frozen=True)
class Image:
    """``nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0`` split into its parts."""

    repository: str
    name: str
    tag: str | None

    @classmethod
    def parse(cls, ref: str) -> Image:
        ref = ref.split("@", 1)[0]
        path, tag = ref, None
        if ":" in ref.rsplit("/", 1)[-1]:
            path, tag = ref.rsplit(":", 1)
        repository, _, name = path.rpartition("/")
        return cls(repository, name, tag)

    def __str__(self) -> str:
        return f"{self.repository}/{self.name}" + (f":{self.tag}" if self.tag else "")


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in lst(d(pod.get("status")).get("conditions")) if isinstance(c, dict))


def pod_waiting_reason(pod: dict) -> str | None:
    """The first container's waiting reason (ImagePullBackOff, CrashLoopBackOff ...), if any."""
    for status in lst(d(pod.get("status")).get("containerStatuses")):
        reason = d(d(d(status).get("state")).get("waiting")).get("reason")
        if reason:
            return str(reason)
    return None


def pod_images(pod: dict) -> list[str]:
    return [str(c.get("image", "")) for c in lst(d(pod.get("spec")).get("containers")) if isinstance(c, dict)]


def label_selector_matches(selector: dict, labels: dict) -> bool:
    """A metav1 LabelSelector (matchLabels and matchExpressions ANDed); an empty one selects every node."""
    if any(labels.get(k) != v for k, v in d(selector.get("matchLabels")).items()):
        return False
    return all(_expression(d(e), labels) for e in lst(selector.get("matchExpressions")))


def _expression(expr: dict, labels: dict) -> bool:
    key, values = expr.get("key"), lst(expr.get("values"))
    return {"In": key in labels and labels.get(key) in values, "NotIn": labels.get(key) not in values,
            "Exists": key in labels, "DoesNotExist": key not in labels}.get(expr.get("operator"), False)


def _selector_matches(selector: dict, labels: dict) -> bool:
    """A core NodeSelector (nodeSelectorTerms ORed, matchExpressions ANDed); empty selects all."""
    terms = lst(selector.get("nodeSelectorTerms"))
    if not terms:
        return True
    for term in terms:
        ok = True
        for expr in lst(d(term).get("matchExpressions")):
            ok &= _expression(d(expr), labels)
        if ok:
            return True
    return False


class ClusterFacts:
    """Indexes over the cluster Lists of one bundle (built once, shared by every check)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.errors: dict[str, str] = bundle.cluster("errors") or {}
        k8s = bundle.inventory.model.kubernetes
        self.namespace = k8s.namespace
        self.sriov_namespace = k8s.namespace_of("sriov")
        self.ipam_namespace = k8s.namespace_of("ipam")
        self.prefix = k8s.resource_prefix

    def require(self, plurals: tuple[str, ...]) -> None:
        """ClusterUnavailable unless every List in ``plurals`` was collected (a 404 is left to the check)."""
        for plural in plurals:
            error = self.errors.get(plural) or self.errors.get("_config")
            if error and "(404)" not in error:
                raise ClusterUnavailable(error)

    def items(self, plural: str) -> list[dict]:
        """The items of one List; raises when it was not collected."""
        if plural in self.errors or "_config" in self.errors:
            error = self.errors.get(plural) or self.errors["_config"]
            if "(404)" in error:
                raise Unproven(error)
            raise ClusterUnavailable(error)
        document = self.bundle.cluster(plural)
        if document is None:
            if plural not in self.bundle.cluster_lists:
                raise MissingEvidence(f"the {plural} List is not in the bundle: {self.bundle.written_by()} did not "
                                      "collect it — run ibconform again to judge it")
            raise MissingEvidence(f"cluster/{plural}.json is missing from the bundle: it was cut short or damaged "
                                  "— run ibconform again")
        return [i for i in lst(document.get("items")) if isinstance(i, dict)]

    def optional_items(self, plural: str) -> list[dict] | None:
        """The items of a List that only refines a verdict: None when the bundle does not hold it (an older
        format) or its API is not served (404: that operator or CRD is not installed); errors as ``items``."""
        if plural not in self.bundle.cluster_lists:
            return None
        try:
            return self.items(plural)
        except Unproven:   # 404
            return None

    def _by_name(self, plural: str) -> dict[str, dict]:
        return {name_of(i): i for i in self.items(plural)}

    @cached_property
    def nodes(self) -> dict[str, dict]:
        return self._by_name("nodes")

    @cached_property
    def node_states(self) -> dict[str, dict]:
        return self._by_name("sriovnetworknodestates")

    @cached_property
    def policies(self) -> list[dict]:
        return self.items("sriovnetworknodepolicies")

    @cached_property
    def pods(self) -> list[dict]:
        return self.items("pods")

    def node(self, name: str) -> dict:
        node = self.nodes.get(name)
        if node is None:
            raise Unproven(f"Node {name} expected in the cluster vs absent: join the node to the cluster "
                           "or fix the inventory")
        return node

    def node_labels(self, name: str) -> dict:
        return d(d(self.node(name).get("metadata")).get("labels"))

    def node_state(self, name: str) -> dict:
        state = self.node_states.get(name)
        if state is None:
            raise Unproven(f"SriovNetworkNodeState {name} expected in {self.sriov_namespace} vs absent: is the "
                           "sriov-network-config-daemon running on the node (label "
                           "sriovnetwork.openshift.io/device-plugin, nodeSelector)?")
        return state

    @functools.cache  # noqa: B019  (one ClusterFacts per run; the Lists never change)
    def pf_configs(self, node: Node) -> dict[str, policies_mod.PfConfig]:
        """What the policies configure on ``node``'s PFs, by PCI address (policies.render), over the PFs its
        SriovNetworkNodeState reports (vendor and device ids included), else over the inventory's devices."""
        state = self.node_states.get(node.name) if "sriovnetworknodestates" not in self.errors else None
        interfaces = lst(d(d(state).get("status")).get("interfaces"))
        if not interfaces:
            interfaces = [{"name": dev.iface, "pciAddress": dev.pci} for dev in (*node.hcas, *node.excluded)]
        return policies_mod.render(self.policies, self.node_labels(node.name), interfaces)

    @functools.cache  # noqa: B019  (every resource item of the node asks)
    def resource_shares(self, node: Node) -> dict[str, dict[str, int]]:
        """``<prefix>/<resourceName>`` -> {PCI address: VFs it gives} on ``node``; without any policy in the
        cluster, ``<prefix>/res<iface>`` of every HCA with the VFs expected of it (the seed's convention)."""
        if self.policies:
            return policies_mod.resource_shares(self.pf_configs(node), self.prefix)
        return {f"{self.prefix}/res{hca.iface}": {hca.pci: expected_vfs(self, node, hca)[0]} for hca in node.hcas}

    @cached_property
    def operator_config(self) -> dict:
        """SriovOperatorConfig ``default`` (the only one the operator reads); {} when absent or not collected."""
        configs = self.optional_items("sriovoperatorconfigs") or []
        return next((c for c in configs if name_of(c) == OPERATOR_CONFIG), {})

    @cached_property
    def mellanox_managed(self) -> bool:
        """Whether the operator manages firmware: its mellanox plugin is not in ``spec.disablePlugins``."""
        return "mellanox" not in lst(d(self.operator_config.get("spec")).get("disablePlugins"))

    def unmanaged(self, node: str) -> str | None:
        """Why the operator does not manage ``node`` (outside ``spec.configDaemonNodeSelector``), else None."""
        selector = d(d(self.operator_config.get("spec")).get("configDaemonNodeSelector"))
        labels = self.node_labels(node)
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        if not missing:
            return None
        wanted = ", ".join(f"{k}={v}" for k, v in missing.items())
        return (f"{node} is not managed by the SR-IOV operator: its labels lack {wanted} of SriovOperatorConfig "
                f"{OPERATOR_CONFIG} spec.configDaemonNodeSelector, so no config daemon runs there — label the node "
                "or take it out of the inventory")

    @cached_property
    def generation(self) -> operator_state.Generation:
        """How this cluster's SR-IOV operator reports a node busy (operator_state)."""
        try:
            pods = self.pods
        except (Unproven, CannotJudge):
            pods = []
        return operator_state.generation(list(self.node_states.values()), pods)

    def maintenances(self, node: str) -> list[dict]:
        """The NodeMaintenances for ``node`` (none when the maintenance operator is not installed)."""
        return operator_state.maintenance_for(node, self.optional_items("nodemaintenances"))

    @cached_property
    def _daemon_pods(self) -> dict[object, str]:
        try:
            pods = self._components.get("sriov-network-config-daemon", [])
        except (Unproven, CannotJudge):
            pods = []
        return {d(p.get("spec")).get("nodeName"): name_of(p) for p in pods}

    def daemon_log_hint(self, node: str) -> str:
        """How to read the config daemon's log on ``node`` (its pod's name when it was listed)."""
        pod = self._daemon_pods.get(node) or f"<the sriov-network-config-daemon pod on {node}>"
        return f"kubectl logs -n {self.sriov_namespace} {pod} | grep -i reboot"

    def rdma_mode(self, node: str) -> str | None:
        """The RDMA netns mode the operator applies on ``node``: its node state's ``spec.system.rdmaMode``, else
        that of the first SriovNetworkPoolConfig selecting it."""
        state = self.node_states.get(node) or {}
        mode = d(d(d(state).get("spec")).get("system")).get("rdmaMode")
        if isinstance(mode, str) and mode:
            return mode
        labels = self.node_labels(node)
        for pool in self.optional_items("sriovnetworkpoolconfigs") or []:
            spec = d(pool.get("spec"))
            if spec.get("rdmaMode") and label_selector_matches(d(spec.get("nodeSelector")), labels):
                return str(spec["rdmaMode"])
        return None

    @cached_property
    def _components(self) -> dict[str, list[dict]]:
        return components.by_component(self.pods)

    def ipam_pods(self, component: str) -> list[dict]:
        """nv-ipam pods of ``component`` (nv-ipam-node / nv-ipam-controller) by their labels (components)."""
        return self._components.get(component, [])

    @functools.cache  # noqa: B019
    def _pods_by_node(self, component: str) -> dict[object, list[dict]]:
        by_node: dict[object, list[dict]] = {}
        for pod in self.ipam_pods(component):
            by_node.setdefault(d(pod.get("spec")).get("nodeName"), []).append(pod)
        return by_node

    def pods_on(self, node: str, component: str) -> list[dict]:
        """The ``component`` pods bound to ``node`` (indexed once: every node asks)."""
        return list(self._pods_by_node(component).get(node, []))

    @cached_property
    def nic_cluster_policy(self) -> dict:
        policy = self._by_name("nicclusterpolicies").get(NCP_NAME)
        if policy is None:
            raise Unproven(f"NicClusterPolicy {NCP_NAME} expected vs absent: apply one with spec.nvIpam "
                           "(only that name is reconciled)")
        return policy

    def pools_for(self, node: Node) -> list[PoolUse]:
        """The nv-ipam pools ``node`` needs: those the SriovIBNetworks of its SR-IOV resources name (their ipam
        ``poolName``, default the network's name, and ``poolType`` ippool | cidrpool); without such networks,
        every IPPool and CIDRPool whose nodeSelector selects the node."""
        wanted: dict[tuple[str, str], list[str]] = {}
        networks = self.optional_items("sriovibnetworks") or []
        resources = {r.removeprefix(self.prefix + "/") for r in self.resource_shares(node)}
        for network in networks:
            spec = d(network.get("spec"))
            ipam = _json_object(spec.get("ipam"))
            if spec.get("resourceName") not in resources or ipam.get("type") != "nv-ipam":
                continue
            kind = POOL_KINDS.get(str(ipam.get("poolType") or "ippool").lower(), "ippools")
            names = str(ipam.get("poolName") or name_of(network)).split(",")
            for pool in filter(None, (n.strip() for n in names)):
                wanted.setdefault((kind, pool), []).append(name_of(network))
        labels = self.node_labels(node.name)
        uses = []
        if wanted:
            for (kind, pool_name), users in wanted.items():
                pool = next((p for p in self.items(kind) if name_of(p) == pool_name), None)
                uses.append(PoolUse(kind, pool_name, users, pool, labels, node.name))
            return uses
        for kind in ("ippools", "cidrpools"):
            pools = self.items(kind) if kind == "ippools" else self.optional_items(kind) or []
            uses += [PoolUse(kind, name_of(p), [], p, labels, node.name) for p in pools
                     if _selector_matches(d(d(p.get("spec")).get("nodeSelector")), labels)]
        return uses

    @cached_property
    def _probes(self) -> dict[str, dict]:
        document = d(self.bundle.cluster("probes"))
        return {d(p).get("node"): p for p in reversed(lst(document.get("probes")))}  # the first record wins

    def probe(self, node: str) -> dict | None:
        """The probe record of ``node`` from cluster/probes.json, None when probes did not run."""
        if self.bundle.manifest.get("read_only"):
            return None      # no probe pod: known from the start, not when a followed bundle is finished
        document = self.bundle.cluster("probes")
        if document is None:
            return None
        record = self._probes.get(node, {})
        if not record and document.get("error"):
            raise ClusterUnavailable(str(document["error"]))
        return record


def quantity(value: object) -> int | None:
    """An extended resource quantity ("8") as an int; None when absent or not a plain integer."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


DEFAULT_VFS = 8


def cite(ledger: list, text: str) -> None:
    """Record ``text`` as evidence of the running check (its pytest item's user_properties)."""
    ledger.append(("evidence", text))


POOL_KINDS = {"ippool": "ippools", "cidrpool": "cidrpools"}   # an ipam config's poolType -> its List
POOL_KIND_NAMES = {"ippools": "IPPool", "cidrpools": "CIDRPool"}


def _json_object(text: object) -> dict:
    """A SriovIBNetwork's ``spec.ipam`` (a JSON string) as a dict; {} when it is not JSON."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class PoolUse:
    """An nv-ipam pool a node needs: its kind (List plural), name, the networks naming it, the object (None:
    absent), and what it holds for the node."""

    kind: str
    name: str
    networks: list[str]
    pool: dict | None
    labels: dict
    node: str

    def __str__(self) -> str:
        more = f" and {len(self.networks) - 2} more" if len(self.networks) > 2 else ""
        used = f" (used by SriovIBNetwork {', '.join(self.networks[:2])}{more})" if self.networks else ""
        return f"{POOL_KIND_NAMES[self.kind]} {self.name}{used}"

    @property
    def block_field(self) -> str:
        """The spec field sizing each node's share of the pool."""
        return "perNodeBlockSize" if self.kind == "ippools" else "perNodeNetworkPrefix"

    @property
    def selects_node(self) -> bool:
        return self.pool is not None and _selector_matches(d(d(self.pool.get("spec")).get("nodeSelector")),
                                                           self.labels)

    @property
    def allocation(self) -> str | None:
        """The node's block (IPPool startIP-endIP, CIDRPool prefix; static CIDRPool allocations count), else None."""
        spec, status = d(d(self.pool).get("spec")), d(d(self.pool).get("status"))
        for entry in [*lst(status.get("allocations")), *lst(spec.get("staticAllocations"))]:
            entry = d(entry)
            if entry.get("nodeName") == self.node:
                return str(entry.get("prefix") or f"{entry.get('startIP')}-{entry.get('endIP')}")
        return None


class ClusterNode:
    """One inventory node as the Kubernetes API shows it (``host``: reads what the node itself showed, for causes
    the API alone cannot tell; None when not given)."""

    def __init__(self, cluster: ClusterFacts, node: Node, ledger: list,
                 host: Callable[[], NodeFacts] | None = None) -> None:
        self.cluster, self.node, self.ledger, self._host = cluster, node, ledger, host
        self.name = node.name

    def host(self) -> NodeFacts | None:
        """What the node itself showed (None when not given)."""
        return self._host() if self._host is not None else None

    def unmanaged(self) -> str | None:
        """Why the SR-IOV operator does not manage this node (SriovOperatorConfig), else None."""
        config = self.cluster.operator_config
        if config:
            cite(self.ledger, f"SriovOperatorConfig {OPERATOR_CONFIG} configDaemonNodeSelector: "
                              f"{d(config.get('spec')).get('configDaemonNodeSelector')}")
        return self.cluster.unmanaged(self.name)

    def generation(self) -> operator_state.Generation:
        generation = self.cluster.generation
        cite(self.ledger, f"operator state reporting: {generation.name} ({generation.evidence})")
        return generation

    def busy(self) -> dict[str, str]:
        """The signals of the operator's generation that say the node is not idle (cited)."""
        state = self.state()
        maintenances = self.cluster.maintenances(self.name)
        annotations = {**d(d(self.obj().get("metadata")).get("annotations")),
                       **d(d(state.get("metadata")).get("annotations"))}
        cite(self.ledger, "annotations of Node and SriovNetworkNodeState " + str(
            {k: v for k, v in annotations.items() if k.startswith("sriovnetwork.openshift.io/")})
             + (f"; NodeMaintenances: {[name_of(m) for m in maintenances]}" if maintenances else ""))
        return operator_state.busy(self.cluster.generation, self.obj(), state, maintenances)

    def stuck_cause(self) -> str | None:
        """Why the config daemon cannot finish, when the node shows it: a PF asked for more VFs than its
        sriov_totalvfs (the firmware's NUM_OF_VFS) allows; None otherwise."""
        host = self.host()
        if host is None or not host.reached:
            return None
        configs = self.cluster.pf_configs(self.node)
        for hca in self.node.hcas:
            config = configs.get(hca.pci)
            total = host.sysfs_uint(f"{hca_dir(hca.iface)}/sriov_totalvfs", absent_ok=True) if config else None
            if config is not None and total is not None and total < config.num_vfs:
                who = "the operator's mellanox plugin sets it" if self.cluster.mellanox_managed else (
                    "set it yourself: the operator's mellanox plugin is disabled")
                return (f"the config daemon cannot create {config.num_vfs} VFs on {hca.iface}: its sriov_totalvfs is "
                        f"{total} (the firmware's NUM_OF_VFS) — raise NUM_OF_VFS ({who}) and power-cycle the node")
        return None

    def reboot_cause(self) -> str:
        """Why the config daemon waits for a reboot, as far as the evidence shows (reboot.cause)."""
        host = self.host()
        firmware = host.firmware_pending() if host is not None else None
        cmdline = None
        if host is not None and host.reached:
            try:
                cmdline = host.kernel_file("/proc/cmdline")
            except CannotJudge:
                cmdline = None
        mode = self.cluster.rdma_mode(self.name)
        cite(self.ledger, f"RDMA netns mode the operator applies: {mode}; mellanox plugin "
                          f"{'enabled' if self.cluster.mellanox_managed else 'disabled'}")
        return reboot.cause(firmware, self.cluster.mellanox_managed, cmdline, mode,
                            self.cluster.daemon_log_hint(self.name))

    def __str__(self) -> str:
        return self.name

    def cite(self, text: str) -> None:
        cite(self.ledger, text)

    def obj(self) -> dict:
        return self.cluster.node(self.name)

    def annotation(self, key: str) -> str | None:
        value = d(d(self.obj().get("metadata")).get("annotations")).get(key)
        cite(self.ledger, f"Node {self.name} annotation {key}: {value!r}")
        return value

    def state(self) -> dict:
        return self.cluster.node_state(self.name)

    def state_field(self, path: str) -> object:
        """A SriovNetworkNodeState field by dotted path, cited (``status.syncStatus``)."""
        value: object = self.state()
        for part in path.split("."):
            value = d(value).get(part)
        cite(self.ledger, f"SriovNetworkNodeState {self.name} {path}: {value!r}")
        return value

    def state_annotation(self, key: str) -> str | None:
        value = d(d(self.state().get("metadata")).get("annotations")).get(key)
        cite(self.ledger, f"SriovNetworkNodeState {self.name} annotation {key}: {value!r}")
        return value

    def resources(self, field: str) -> dict:
        """Node status.allocatable or status.capacity."""
        return d(d(self.obj().get("status")).get(field))

    def ipam_node_pods(self) -> list[dict]:
        pods = self.cluster.pods_on(self.name, "nv-ipam-node")
        for pod in pods:
            cite(self.ledger, f"Pod {name_of(pod)}: phase {d(pod.get('status')).get('phase')}, "
                               f"ready {pod_ready(pod)}, images {pod_images(pod)}, waiting {pod_waiting_reason(pod)}")
        return pods

    def pools(self) -> list[PoolUse]:
        """The nv-ipam pools this node needs (ClusterFacts.pools_for), each cited with what it holds for it."""
        uses = self.cluster.pools_for(self.node)
        for use in uses:
            cite(self.ledger, f"{use}: " + ("absent" if use.pool is None else
                                             f"selects {self.name}: {use.selects_node}, allocation: {use.allocation}"))
        return uses

    def probe(self) -> dict | None:
        record = self.cluster.probe(self.name)
        if record:
            cite(self.ledger, f"probe pod {record.get('pod')}: {record.get('outcome')}: {record.get('message')}")
        return record


class ClusterHca:
    """One HCA of one node as the operator and device plugin see it."""

    def __init__(self, node: ClusterNode, hca: Hca) -> None:
        self.node, self.hca, self.cluster = node, hca, node.cluster

    def __str__(self) -> str:
        return f"{self.hca.iface} on {self.node.name}"

    def config(self) -> policies_mod.PfConfig | None:
        """What the policies configure on this PF (cited), None when none selects it."""
        config = self.cluster.pf_configs(self.node.node).get(self.hca.pci)
        cite(self.node.ledger, f"SriovNetworkNodePolicies for {self}: "
                                + (f"{', '.join(config.selected_by)} -> {config}" if config else "none selects it"))
        return config


class ClusterResource:
    """One SR-IOV resource of one node: the VFs the policies route to it, per PF, and what the node advertises."""

    def __init__(self, node: ClusterNode, name: str) -> None:
        self.node, self.name, self.cluster = node, name, node.cluster

    def __str__(self) -> str:
        return f"{self.name} on {self.node.name}"

    def shares(self) -> dict[str, int]:
        """PCI address -> VFs that PF gives this resource (cited)."""
        shares = self.cluster.resource_shares(self.node.node).get(self.name, {})
        self.node.cite(f"VFs the policies route to {self}: {self.share_text(shares) or 'none'}")
        return shares

    def short_pfs(self, shares: dict[str, int]) -> list[str]:
        """The PFs of this resource whose kernel has fewer VFs than its VF groups need (``ibp64s0 has 4 of the 8 VFs
        its VF groups need``); empty when the node's sysfs was not collected or every PF has them."""
        host = self.node.host()
        if host is None or not host.reached:
            return []
        configs = self.cluster.pf_configs(self.node.node)
        short = []
        for hca in self.node.node.hcas:
            if hca.pci not in shares or hca.pci not in configs:
                continue
            need = max(g.last + 1 for g in configs[hca.pci].groups if f"{self.cluster.prefix}/{g.resource_name}"
                       == self.name)
            have = host.sysfs_uint(f"{hca_dir(hca.iface)}/sriov_numvfs", absent_ok=True)
            if have is not None and have < need:
                short.append(f"{hca.iface} has {have} of the {need} VFs its VF groups need")
        return short

    def share_text(self, shares: dict[str, int]) -> str:
        """``ibp24s0 8 + ibp64s0 8`` (the inventory's interface names, else PCI addresses)."""
        names = {dev.pci: dev.iface for dev in (*self.node.node.hcas, *self.node.node.excluded) if dev.iface}
        return " + ".join(f"{names.get(pci, pci)} {n}" for pci, n in shares.items())


class ClusterExcluded:
    """One excluded device: no policy may select it and it must advertise no resource."""

    def __init__(self, node: ClusterNode, device: ExcludedDevice) -> None:
        self.node, self.device, self.cluster = node, device, node.cluster

    def __str__(self) -> str:
        return f"{self.device.iface or self.device.pci} ({self.device.reason}) on {self.node.name}"

    def config(self) -> policies_mod.PfConfig | None:
        return self.cluster.pf_configs(self.node.node).get(self.device.pci)


def expected_vfs(cluster: ClusterFacts | None, node: Node, hca: Hca) -> tuple[int, str]:
    """VFs expected on ``hca`` and where that number comes from: the inventory's vfsPerHca, else the numVfs the
    SriovNetworkNodePolicies configure on it, else 8."""
    if node.expect.vfs_per_hca is not None:
        return node.expect.vfs_per_hca, "inventory expect.vfsPerHca"
    try:
        config = cluster.pf_configs(node).get(hca.pci) if cluster else None
    except (Unproven, CannotJudge):
        config = None
    if config is not None:
        return config.num_vfs, f"SriovNetworkNodePolicy {config.policy} numVfs"
    return DEFAULT_VFS, "default (no inventory value, no policy seen)"
