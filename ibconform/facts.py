"""Typed facts about a node, an HCA or an excluded device, read from the evidence bundle.

Each accessor cites what it read into a ledger (the pytest item's user_properties), so the report can
show the raw evidence under every verdict. Evidence that is absent or unparseable raises
``Unproven`` — an AssertionError, so the check fails and says why — while a node that was never reached
raises ``NodeUnreachable`` from the fixture, so its checks end in error naming the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from ibconform import identity, reboot, vfs
from ibconform.bundle import Bundle, NodeStatus
from ibconform.cluster_facts import ClusterFacts, cite, expected_vfs
from ibconform.collect.nodescript import (
    KERNEL_FILES,
    MACHINE_ID,
    MSTCONFIG_QUERY,
    hca_dir,
    ip_link_command,
    mstconfig_query,
    pci_dir,
)
from ibconform.errors import CannotJudge, MissingEvidence, NodeUnreachable, ParseError, Unproven
from ibconform.inventory import ExcludedDevice, Hca, Node
from ibconform.parsers import guid, iplink, mstconfig, sysfs
from ibconform.untrusted import d

Ledger = list  # pytest's item.user_properties: [("evidence", text), ...]
LOCKDOWN = KERNEL_FILES[1]
NETNS_MODE = KERNEL_FILES[2]

MSTCONFIG_HINTS = {
    "Error when trying to check if NV access registers are supported":
        "mstconfig cannot reach the NV registers: check the sriov-network-config-daemon version and "
        "kernel lockdown (/sys/kernel/security/lockdown)",
    "Failed to open the device":
        "mstconfig cannot open the device: check the PCI address, mstflint's support for the device "
        "and kernel lockdown (/sys/kernel/security/lockdown)",
}


@dataclass(frozen=True)
class Triple:
    """A firmware parameter's Default / Current / Next Boot as numbers (None when not printed)."""

    name: str
    default: int | None
    current: int | None
    next_boot: int | None
    raw: str
    active_text: str | None = None   # the active value as printed, e.g. "False(0)"

    @property
    def active(self) -> int | None:
        """The value in force now: Current when printed, else Next Boot."""
        return self.current if self.current is not None else self.next_boot


@dataclass(frozen=True)
class Port:
    rdma_device: str
    number: str
    state: sysfs.PortState | None
    rate: sysfs.PortRate | None
    link_layer: str | None = None


class NodeFacts:
    """What was seen of one node."""

    def __init__(self, bundle: Bundle, node: Node, ledger: Ledger, cluster: ClusterFacts | None = None) -> None:
        self.bundle, self.node, self.ledger, self.cluster = bundle, node, ledger, cluster
        self.status: NodeStatus | None = bundle.status(node.name)

    def _cluster_says(self, ask: Callable[[ClusterFacts], object], default: object) -> object:
        """What the cluster's Lists say (``ask``), or ``default`` when they were not collected or are unreadable."""
        try:
            return ask(self.cluster) if self.cluster is not None else default
        except (AssertionError, CannotJudge):
            return default

    def unmanaged(self) -> str | None:
        """Why the SR-IOV operator does not manage this node (SriovOperatorConfig), cited; else None."""
        reason = self._cluster_says(lambda c: c.unmanaged(self.node.name), None)
        if reason:
            cite(self.ledger, reason)
        return reason

    @property
    def operator_sets_firmware(self) -> bool:
        """Whether the SR-IOV operator's mellanox plugin manages the firmware (not disabled in SriovOperatorConfig)."""
        managed = bool(self._cluster_says(lambda c: c.mellanox_managed, True))
        if not managed:
            cite(self.ledger, "SriovOperatorConfig default spec.disablePlugins: [mellanox] (firmware not managed)")
        return managed

    @property
    def reached(self) -> bool:
        return self.status is not None and self.status.reachable

    def firmware_pending(self) -> reboot.FirmwarePending | None:
        """Which HCAs have NUM_OF_VFS, SRIOV_EN or their port's LINK_TYPE pending (Current != Next Boot);
        None when no HCA's firmware could be read."""
        if not self.reached:
            return None
        pending: dict[str, list[str]] = {}
        read = 0
        for hca in self.hcas:
            try:
                triples = [hca.param(name) for name in ("NUM_OF_VFS", "SRIOV_EN", hca.link_type_param)]
            except (AssertionError, CannotJudge):
                continue
            read += 1
            names = [t.name for t in triples if t.current is not None and t.current != t.next_boot]
            if names:
                pending[hca.hca.iface] = names
        return reboot.FirmwarePending(pending, len(self.node.hcas)) if read else None

    def require_reached(self) -> None:
        """NodeUnreachable unless the node's script ran."""
        if self.status is None:
            raise NodeUnreachable(f"{self.node.name}: not collected (no status in the bundle)")
        if not self.status.reachable:
            raise NodeUnreachable(f"{self.node.name} unreachable: {self.status.error}")

    @property
    def hcas(self) -> list[HcaFacts]:
        return [HcaFacts(self, hca) for hca in self.node.hcas]

    @property
    def hostname(self) -> str | None:
        cite(self.ledger, f"uname -n: {self.status.hostname if self.status else None}")
        return self.status.hostname if self.status else None

    def identity(self) -> identity.Identity:
        """Whether the host that answered is this node (identity.judge), on what the bundle holds: the
        machine-id when this bundle's format reads it, the Node object when the cluster was listed."""
        machine_id = None
        if "machine-id" in self.bundle.node_facts:
            machine_id = self.bundle.sysfs(self.node.name, MACHINE_ID)
            cite(self.ledger, f"{MACHINE_ID}: {machine_id.strip() if machine_id else 'unreadable'}")
        node_obj = self._cluster_says(lambda c: c.node(self.node.name), None)
        if node_obj:
            info = d(d(node_obj.get("status")).get("nodeInfo"))
            cite(self.ledger, f"Node {self.node.name}: machineID {info.get('machineID')!r}, names "
                              f"{identity.node_names(self.node.name, node_obj)}")
        verdict = identity.judge(self.node.name, self.hostname, machine_id, node_obj)
        cite(self.ledger, f"identity: {verdict.proof}")
        return verdict

    def sysfs_uint(self, path: str, absent_ok: bool = False) -> int | None:
        """A sysfs integer; Unproven when absent (unless ``absent_ok``) or not an integer."""
        text = self.bundle.sysfs(self.node.name, path)
        if text is None:
            error = self.status.unreadable.get(path) if self.status else None
            cite(self.ledger, f"{path}: absent ({error or 'not read'})")
            if absent_ok:
                return None
            raise Unproven(f"{path} could not be read on {self.node.name} ({error or 'not collected'}): "
                           "check that the driver is loaded and the interface name is right")
        cite(self.ledger, f"{path}: {text.strip()!r}")
        try:
            return sysfs.parse_uint(text)
        except ParseError as exc:
            raise Unproven(f"{path} is not an integer ({exc}): raw {text[:80]!r}") from None

    def kernel_file(self, path: str) -> str | None:
        """A file of KERNEL_FILES as the node script read it (cited); None when the node could not read it."""
        self.bundle.require_node_fact(self.node.name, "kernel", path)
        text = self.bundle.sysfs(self.node.name, path)
        error = self.status.unreadable.get(path) if self.status else None
        cite(self.ledger, f"{path}: {text.strip()[:EVIDENCE_CAP]!r}" if text is not None
             else f"{path}: unreadable ({error or 'not read'})")
        return text

    def lockdown(self) -> str | None:
        """The kernel's active lockdown mode when it is not ``none`` (cited); None when off or not known."""
        if "kernel" not in self.bundle.node_facts:
            return None
        text = self.kernel_file(LOCKDOWN)
        mode = _try(sysfs.parse_lockdown, text)
        return mode if mode not in (None, "none") else None

    def rdma_netns_mode(self) -> str | None:
        """ib_core's RDMA netns mode (``shared``/``exclusive``, cited); Unproven when unreadable or not Y/N."""
        text = self.kernel_file(NETNS_MODE)
        if text is None:
            raise Unproven(f"{NETNS_MODE} could not be read on {self.node.name}: check that ib_core is loaded "
                           "(modprobe ib_core) — without it there is no RDMA")
        try:
            return sysfs.parse_netns_mode(text)
        except ParseError as exc:
            raise Unproven(f"{NETNS_MODE} on {self.node.name} is not Y or N ({exc})") from None

    def expected_netns_mode(self) -> tuple[str | None, str]:
        """The RDMA netns mode expected (cited with its source): the inventory's ``rdmaNetnsMode``, else that of
        the SR-IOV operator for the node (its node state's or SriovNetworkPoolConfig's ``rdmaMode``), else None."""
        if self.node.expect.rdma_netns_mode:
            mode, source = self.node.expect.rdma_netns_mode, "the inventory's expect.rdmaNetnsMode"
        else:
            mode = self._cluster_says(lambda c: c.rdma_mode(self.node.name), None)
            source = "the SriovNetworkPoolConfig rdmaMode selecting the node" if mode else "nobody asks for one"
        cite(self.ledger, f"RDMA netns mode expected: {mode or 'any'} ({source})")
        return mode, source

    def firmware(self, pci: str, query: tuple[str, ...] = MSTCONFIG_QUERY) -> dict[str, Triple]:
        """The rows of ``mstconfig -d <pci> <query>``; Unproven when mstconfig failed or printed no table."""
        seen = self.bundle.mstconfig(self.node.name, pci)
        if seen is None:
            raise Unproven(f"no mstconfig output for {pci} on {self.node.name}: the query did not run")
        text, code = seen
        command = f"mstconfig -d {pci} {' '.join(query)}"
        try:
            return self._firmware(pci, text, code, command, query[2:])
        except Unproven:  # the output itself is the evidence of a failure (capped: the bundle keeps it all)
            cite(self.ledger, f"{command} (exit {code}):\n{text.strip()[:EVIDENCE_CAP]}")
            raise

    def _firmware(self, pci: str, text: str, code: int, command: str, params: tuple[str, ...]) -> dict[str, Triple]:
        if code == 127:
            raise Unproven(f"mstconfig not found on {self.node.name} (exit 127): install mstflint on the node "
                           "(or run the suite through a transport that reaches a host with it)")
        if code in (124, 137):  # coreutils timeout: TERM, then KILL
            raise Unproven(f"mstconfig -d {pci} did not answer within the mstconfig timeout: "
                           "check for a hung mst driver or firmware; the node may need a power cycle")
        try:
            query = _parse_query(text)
        except ParseError as exc:
            raise Unproven(f"mstconfig -d {pci} printed no readable table (exit {code}, {exc}): "
                           f"raw {text.strip()[:120]!r}") from None
        devices = [dev for dev in query.devices if dev.columns]
        if query.errors or code != 0 or not devices:
            error = query.errors[0] if query.errors else (text.strip().splitlines() or ["no output"])[-1]
            hint = next((h for k, h in MSTCONFIG_HINTS.items() if k in error),
                        "run the same query by hand on the node and check mstflint's support for the device")
            locked = self.lockdown() if any(k in error for k in MSTCONFIG_HINTS) else None
            if locked:
                hint = (f"the kernel is locked down ({locked}, {LOCKDOWN}), which keeps mstconfig from the device — "
                        "configure the firmware offline (or with lockdown off) and disable the operator's mellanox "
                        "plugin (SriovOperatorConfig spec.disablePlugins)")
            raise Unproven(f"mstconfig -d {pci} failed (exit {code}): {error}: {hint}")
        device = devices[0]
        incomplete = _incomplete(device, params)
        if incomplete:  # mstconfig names a parameter it does not support (-E-, exit 3): this output was cut
            raise Unproven(f"mstconfig -d {pci} output incomplete (exit {code}): {incomplete}: the output was cut "
                           f"short — run {command} again on the node")
        header = f"{command} (exit {code}): Configurations: {'  '.join(device.columns)}"
        triples = {}
        for name, row in device.params.items():
            try:
                triples[name] = Triple(name, mstconfig.value_number(row.default),
                                       mstconfig.value_number(row.current),
                                       mstconfig.value_number(row.next_boot), f"{header}\n{row.raw}",
                                       row.current if row.current is not None else row.next_boot)
            except ParseError:
                continue
        return triples

    def param(self, pci: str, name: str, query: tuple[str, ...] = MSTCONFIG_QUERY) -> Triple:
        """One firmware parameter of device ``pci`` (asked with ``query``); its header and row are cited."""
        if name not in query:
            raise MissingEvidence(f"{name} of {pci} on {self.node.name} is not in the bundle: "
                                  f"{self.bundle.written_by()} asked mstconfig for {', '.join(query[2:])} only "
                                  "— run ibconform again to judge it")
        triples = self.firmware(pci, query)
        if name not in triples:
            raise Unproven(f"mstconfig -d {pci} printed no numeric {name} row: the firmware does not report it")
        cite(self.ledger, triples[name].raw)
        return triples[name]

    def link_target(self, path: str) -> str | None:
        target = self.bundle.link(self.node.name, path)
        cite(self.ledger, f"readlink {path}: {target}")
        return target

    def ports(self, device_dir: str) -> list[Port]:
        """The IB ports under ``device_dir``/infiniband/*/ports/*."""
        states = self.bundle.sysfs_glob(self.node.name, f"{device_dir}/infiniband/*/ports/*/state")
        ports = []
        for state_path, text in states.items():
            port_dir = state_path.rpartition("/")[0]
            rate_text = self.bundle.sysfs(self.node.name, f"{port_dir}/rate")
            layer_text = self.bundle.sysfs(self.node.name, f"{port_dir}/link_layer")
            cite(self.ledger, f"{port_dir}/state: {text.strip()!r}, rate: {(rate_text or '').strip()!r}, "
                              f"link_layer: {(layer_text or '').strip()!r}")
            ports.append(Port(rdma_device=_name(port_dir, 2), number=_name(port_dir),
                              state=_try(sysfs.parse_port_state, text), rate=_try(sysfs.parse_rate, rate_text),
                              link_layer=_try(sysfs.parse_link_layer, layer_text)))
        return ports

    def fw_versions(self, device_dir: str) -> dict[str, str]:
        found = self.bundle.sysfs_glob(self.node.name, f"{device_dir}/infiniband/*/fw_ver")
        for path, text in found.items():
            cite(self.ledger, f"{path}: {text.strip()!r}")
        return {_name(p, 1): text.strip() for p, text in found.items()}


# parse each device's output once, not once per firmware check (parsing is pure; errors are not cached)
_parse_query = functools.lru_cache(maxsize=4096)(mstconfig.parse_query)
EVIDENCE_CAP = 2000  # characters of raw tool output cited under a failed check
_ROW_FIELDS = {"Default": "default", "Current": "current", "Next Boot": "next_boot", "New": "new"}


def _incomplete(device: mstconfig.MstconfigDevice, params: tuple[str, ...]) -> str | None:
    """What is missing from a table mstconfig printed for the suite's query: a queried row, or values of a row."""
    names = [name for name in params if name in device.params]
    for name in names:
        row = device.params[name]
        seen = [column for column in device.columns if getattr(row, _ROW_FIELDS[column]) is not None]
        if len(seen) < len(device.columns):
            return (f"row {name} has {len(seen)} of {len(device.columns)} values "
                    f"({' / '.join(device.columns)}): {row.raw.strip()!r}")
    missing = [name for name in params if name not in device.params]
    return f"no {', '.join(missing)} row" if missing else None


def _try(parse, text: str | None):
    if text is None:
        return None
    try:
        return parse(text)
    except ParseError:
        return None


class HcaFacts:
    """One HCA of one node, as the checks see it."""

    def __init__(self, node: NodeFacts, hca: Hca) -> None:
        self.node, self.hca = node, hca
        self.dir = hca_dir(hca.iface)
        self.expect = node.node.expect
        per_port = "port-link-type" in node.bundle.node_facts   # format v1 asked every device for LINK_TYPE_P1
        self.query = mstconfig_query(hca.port) if per_port else MSTCONFIG_QUERY

    @property
    def link_type_param(self) -> str:
        """The firmware parameter of this PF's own port: LINK_TYPE_P1, or LINK_TYPE_P2 for a card's second PF."""
        return f"LINK_TYPE_P{self.hca.port}"

    @property
    def expected_vfs(self) -> int:
        """The inventory's vfsPerHca, else the SriovNetworkNodePolicies' numVfs, else 8."""
        value, source = expected_vfs(self.node.cluster, self.node.node, self.hca)
        cite(self.node.ledger, f"expected VFs on {self}: {value} ({source})")
        return value

    def __str__(self) -> str:
        return f"{self.hca.iface} ({self.hca.pci})"

    def param(self, name: str) -> Triple:
        return self.node.param(self.hca.pci, name, self.query)

    def sysfs_uint(self, name: str) -> int:
        return self.node.sysfs_uint(f"{self.dir}/{name}")

    def pci_of_iface(self) -> str | None:
        target = self.node.link_target(self.dir)
        return _name(target) if target else None

    def vf_pcis(self) -> dict[int, str]:
        """The PCI address of each of its VFs by VF index, from the ``virtfn<N>`` links of its PF; {} when none."""
        found = _vf_pcis(self.node.bundle.links_under(self.node.node.name, f"{self.dir}/virtfn"), self.dir)
        cite(self.node.ledger, f"VFs of {self}: " + (", ".join(f"{i}={pci}" for i, pci in sorted(found.items()))
                                                     or "none"))
        return dict(sorted(found.items()))

    def ports(self) -> list[Port]:
        return self.node.ports(self.dir)

    def vfs(self, cite_rows: bool = True) -> list[vfs.Vf]:
        """Each VF of the PF, by index, as the node showed it (``vfs.Vf``): its PCI function, driver, RDMA devices
        with their port states and char devices, and its GUIDs from ``ip link``, mlx5's ``sriov/<N>`` and the RDMA
        device. MissingEvidence on a bundle whose format did not collect VFs. Read once per HCA (four checks and
        the fleet's GUIDs ask), cited at each ask."""
        node, name = self.node, self.node.node.name
        node.bundle.require_node_fact(name, "vfs", f"the VFs of {self}")
        rows, evidence = _read_vfs(node.bundle, name, self.hca.iface)
        if cite_rows:
            for line in evidence:
                cite(node.ledger, line)
        return list(rows)

    def fw_versions(self) -> dict[str, str]:
        return self.node.fw_versions(self.dir)


@functools.lru_cache(maxsize=65536)
def _read_vfs(bundle: Bundle, node: str, iface: str) -> tuple[tuple[vfs.Vf, ...], tuple[str, ...]]:
    """The VF rows of PF ``iface`` of ``node`` and the evidence lines to cite for them (``HcaFacts.vfs``), from one
    walk of the PF's folder in the bundle."""
    base, evidence = hca_dir(iface), []
    ip_vfs, ip_line = _ip_link_vfs(bundle, node, iface)
    evidence.append(ip_line)
    links = bundle.links_under(node, f"{base}/virtfn")
    pcis = _vf_pcis(links, base)
    evidence.append(f"VFs of {iface}: " + (", ".join(f"{i}={pci}" for i, pci in sorted(pcis.items())) or "none"))

    files = _vf_files_by_kind(base, bundle.sysfs_under(node, base))   # one walk for every VF file of the PF
    node_guid_files, state_files = files["node_guid"], files["state"]
    uverbs, umad = files["uverbs"], files["umad"]
    sriov = {"node": files["sriov node"], "port": files["sriov port"]}
    rows = []
    for index, pci in sorted(pcis.items()):
        driver = links.get(f"{base}/virtfn{index}/driver")
        node_guids = _guids(node_guid_files.get(index, {}), guid.parse_sysfs_guid)
        guids: dict[str, dict[str, str]] = {"node": {}, "port": {}}
        for kind in ("node", "port"):
            shown = getattr(ip_vfs[index], f"{kind}_guid") if index in ip_vfs else None
            if shown is not None:
                guids[kind]["ip link"] = shown
            if admin := _guids(sriov[kind].get(index, {}), guid.normalize_guid):
                guids[kind]["sriov"] = next(iter(admin.values()))
        if node_guids:
            guids["node"]["node_guid"] = next(iter(node_guids.values()))
        ports = tuple(vfs.VfPort(_name(path, 3), _name(path, 1), _state_name(text))
                      for path, text in state_files.get(index, {}).items())
        row = vfs.Vf(index=index, pci=pci, driver=_name(driver) if driver else None,
                     rdma_devices=tuple(_name(p, 1) for p in node_guids)
                     or tuple(dict.fromkeys(p.rdma_device for p in ports)),
                     uverbs=tuple(_name(p, 1) for p in uverbs.get(index, {})),
                     umad=tuple(_name(p, 1) for p in umad.get(index, {})),
                     node_guids=guids["node"], port_guids=guids["port"], ports=ports)
        evidence.append(_vf_evidence(row))
        rows.append(row)
    return tuple(rows), tuple(evidence)


# the VF files a PF's folder holds, by the shape of their path below it ("N": the VF's index)
_VF_FILE_SHAPES = {
    ("virtfnN", "infiniband", "*", "node_guid"): "node_guid",
    ("virtfnN", "infiniband", "*", "ports", "*", "state"): "state",
    ("virtfnN", "infiniband_verbs", "*", "dev"): "uverbs",
    ("virtfnN", "infiniband_mad", "*", "dev"): "umad",
    ("sriov", "N", "node"): "sriov node",
    ("sriov", "N", "port"): "sriov port",
}


def _vf_files_by_kind(base: str, seen: dict[str, str]) -> dict[str, dict[int, dict[str, str]]]:
    """The VF files below PF folder ``base`` by kind (``_VF_FILE_SHAPES``), then VF index, then path; in path
    order. One pass over the files: a PF's folder holds hundreds."""
    found: dict[str, dict[int, dict[str, str]]] = {kind: {} for kind in _VF_FILE_SHAPES.values()}
    for path, text in sorted(seen.items()):
        parts = path[len(base) + 1:].split("/")
        if parts[0] == "sriov" and len(parts) > 1:
            index, shape = parts[1], ("sriov", "N", *parts[2:])
        elif parts[0].startswith("virtfn"):     # below it the device's name (2) and a port's number (4) vary
            index = parts[0][len("virtfn"):]
            shape = tuple("virtfnN" if i == 0 else "*" if i in (2, 4) else part for i, part in enumerate(parts))
        else:
            continue
        kind = _VF_FILE_SHAPES.get(shape)
        if kind is not None and index.isdigit():
            found[kind].setdefault(int(index), {})[path] = text
    return found


@functools.lru_cache(maxsize=65536)
def _ip_link_vfs(bundle: Bundle, node: str, iface: str) -> tuple[dict[int, iplink.VfInfo], str]:
    """The ``vf N`` lines of ``ip link show <pf>`` by VF index (not to be changed: cached, as the node's VF rows
    and, after the last node, the fleet's GUIDs read them) and the evidence line for them; {} when the command
    failed or printed an unreadable line (the GUIDs then come from sysfs)."""
    command = ip_link_command(iface)
    seen = bundle.command(node, command)
    if seen is None:
        return {}, f"{command}: did not run"
    text, code = seen
    try:
        lines = iplink.parse_vf_lines(text) if code == 0 else ()
    except ParseError as exc:
        return {}, f"{command} (exit {code}): unreadable ({exc}):\n{text.strip()[:EVIDENCE_CAP]}"
    return {line.vf: line for line in lines}, f"{command} (exit {code}):\n{text.strip()[:EVIDENCE_CAP]}"


def _vf_pcis(links: dict[str, str], base: str) -> dict[int, str]:
    """The PCI address of each VF by index, from the ``<base>/virtfn<N>`` links among ``links`` (a PF's folder)."""
    prefix = f"{base}/virtfn"
    return {int(path[len(prefix):]): _name(target) for path, target in links.items() if path[len(prefix):].isdigit()}


def _name(path: str, up: int = 0) -> str:
    """The name of the folder ``up`` levels above ``path`` (0: its own name), as ``PurePosixPath`` gives it, at a
    third of the cost: VF rows name thousands of /sys files per node."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return parts[-1 - up] if len(parts) > up else ""


def _guids(found: dict[str, str], parse: Callable[[str], str]) -> dict[str, str]:
    """path -> canonical GUID of the files read whose content is a GUID (an unreadable one is left out)."""
    return {path: value for path, text in found.items() if (value := _try(parse, text)) is not None}


def _state_name(text: str | None) -> str | None:
    state = _try(sysfs.parse_port_state, text)
    return state.name if state else None


def _vf_evidence(vf: vfs.Vf) -> str:
    """One line per VF under its check: what it is bound to, its RDMA devices, GUIDs and port states."""
    guids = "; ".join(f"{kind} GUID " + ", ".join(f"{g} ({s})" for s, g in sources.items())
                      for kind, sources in (("node", vf.node_guids), ("port", vf.port_guids)) if sources)
    ports = ", ".join(f"{p.rdma_device}/{p.number} {p.state or '?'}" for p in vf.ports)
    return (f"{vf}: driver {vf.driver or 'none'}, RDMA {', '.join(vf.rdma_devices) or 'none'}, "
            f"uverbs {', '.join(vf.uverbs) or 'none'}, umad {', '.join(vf.umad) or 'none'}; "
            f"{guids or 'no GUID seen'}; ports {ports or 'none'}")


@functools.lru_cache(maxsize=4)
def pf_guids(bundle: Bundle) -> dict[tuple[str, str], dict[str, list[vfs.GuidOwner]]]:
    """(node, PF) -> the non-zero GUIDs of its VFs -> where each is used, for every node the bundle holds. Nodes
    not reached, or whose bundle format has no VFs, are left out. Waits for a followed bundle to be complete."""
    bundle.settled()
    found: dict[tuple[str, str], dict[str, list[vfs.GuidOwner]]] = {}
    for node in bundle.inventory.nodes:
        status = bundle.status(node.name)
        if status is None or not status.reachable or "vfs" not in bundle.node_facts:
            continue
        for hca in node.hcas:
            found[node.name, hca.iface] = guid_owners(bundle, node.name, hca.iface)
    return found


@functools.lru_cache(maxsize=4)
def fleet_guids(bundle: Bundle) -> dict[str, list[vfs.GuidOwner]]:
    """Every VF GUID of every node the bundle holds -> where it is used (the fleet's, for uniqueness)."""
    return vfs.index(pf_guids(bundle).values())


def guid_owners(bundle: Bundle, node: str, iface: str) -> dict[str, list[vfs.GuidOwner]]:
    """The non-zero GUIDs of the VFs of PF ``iface`` of ``node`` -> where each is used; {} when unreadable."""
    try:
        return vfs.owners(node, iface, _fleet_rows(bundle, node, iface))
    except CannotJudge:
        return {}


def _fleet_rows(bundle: Bundle, node: str, iface: str) -> list[vfs.Vf]:
    """The VFs of a PF with just what the fleet's GUID index needs: from ``ip link show <pf>`` alone (one file per
    node) when it shows every VF's GUIDs, else the full rows (``_read_vfs``)."""
    base = hca_dir(iface)
    pcis = _vf_pcis(bundle.links_under(node, f"{base}/virtfn"), base)
    shown = _ip_link_vfs(bundle, node, iface)[0]
    if all(i in shown and shown[i].node_guid and shown[i].port_guid for i in pcis):
        return [vfs.Vf(i, pci, None, node_guids={"ip link": shown[i].node_guid},
                       port_guids={"ip link": shown[i].port_guid}) for i, pci in sorted(pcis.items())]
    return list(_read_vfs(bundle, node, iface)[0])


class ExcludedFacts:
    """One excluded device (DPU, mezz port) of one node."""

    def __init__(self, node: NodeFacts, device: ExcludedDevice) -> None:
        self.node, self.device = node, device

    def __str__(self) -> str:
        return f"{self.device.iface or self.device.pci} ({self.device.reason})"

    def sriov_numvfs(self) -> int | None:
        """VFs on the device; None when it has no SR-IOV capability (no sriov_numvfs file)."""
        return self.node.sysfs_uint(f"{pci_dir(self.device.pci)}/sriov_numvfs", absent_ok=True)
