"""What the SriovNetworkNodePolicies tell the SR-IOV Network Operator to do on a node, rendered the way the
operator renders them into the node's SriovNetworkNodeState ``spec.interfaces``: which PFs are selected,
how many VFs each gets, and which VF ranges feed which resource. Pure functions over the API's JSON
(untrusted: every field may be missing or of the wrong type).

The rules follow sriov-network-operator ``api/v1/helper.go`` (``SriovNetworkNicSelector.Selected``,
``SriovNetworkNodePolicy.Apply``, ``Interface.mergeConfigs``, ``generatePfNameVfGroup``) and the policy
controller's order (``ByPriority``: the lowest priority first, so the highest, priority 0, is applied last):

- a policy selects a node when every ``nodeSelector`` label is on it, and a PF when every criterion of its
  ``nicSelector`` that is set holds (vendor, deviceID, rootDevices, pfNames with or without ``#first-last``);
  an empty nicSelector selects nothing; a policy named ``default`` is ignored;
- each selecting policy with ``numVfs > 0`` renders one VF group on the PF: its resourceName and its range
  (the ``#first-last`` of its pfNames entry, else ``0..numVfs-1``);
- a later policy replaces what an earlier one rendered for the PF, except that earlier groups of another
  resource whose range does not overlap are kept (PF partitioning); numVfs is then the largest asked.

The device plugin advertises ``<prefix>/<resourceName>`` with the VFs of every group of that name on the
node, so a resource's expected count is the sum of its groups' range sizes over the node's PFs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ibconform.untrusted import d, lst

_PF_NAME = re.compile(r"^(?P<iface>[^#]+)(?:#(?P<first>\d+)-(?P<last>\d+))?$")
DEFAULT_POLICY = "default"   # the operator's deprecated default policy: ignored


@dataclass(frozen=True)
class VfGroup:
    """VFs ``first..last`` of a PF, advertised as ``resource_name``, as policy ``policy`` asks."""

    resource_name: str
    first: int
    last: int
    policy: str

    @property
    def size(self) -> int:
        return max(0, self.last - self.first + 1)

    def overlaps(self, other: VfGroup) -> bool:
        """``isVFRangeOverlapping``: one range's start or end lies in the other."""
        if self.first < other.first:
            return self.first <= other.first <= self.last or self.first <= other.last <= self.last
        return other.first <= self.first <= other.last or other.first <= self.last <= other.last

    def __str__(self) -> str:
        return f"{self.resource_name} VFs {self.first}-{self.last} ({self.policy})"


@dataclass
class PfConfig:
    """One PF as the policies configure it (an entry of the node state's ``spec.interfaces``)."""

    pci: str
    name: str
    num_vfs: int
    link_type: str | None
    policy: str                                   # the policy applied last (the highest priority)
    groups: list[VfGroup] = field(default_factory=list)
    selected_by: list[str] = field(default_factory=list)   # every policy that selected the PF, in apply order

    def shares(self) -> dict[str, int]:
        """VFs this PF gives each resource name."""
        out: dict[str, int] = {}
        for group in self.groups:
            out[group.resource_name] = out.get(group.resource_name, 0) + group.size
        return out

    def __str__(self) -> str:
        groups = "; ".join(str(g) for g in self.groups) or "no VF group"
        return f"numVfs {self.num_vfs}, {groups}"


def parse_pf_name(entry: object) -> tuple[str, tuple[int, int] | None] | None:
    """``ibp24s0#0-3`` -> ("ibp24s0", (0, 3)); ``ibp24s0`` -> ("ibp24s0", None); garbage -> None."""
    m = _PF_NAME.match(entry.strip()) if isinstance(entry, str) else None
    if not m:
        return None
    rng = (int(m["first"]), int(m["last"])) if m["first"] is not None else None
    return m["iface"], rng


def selects_node(policy: dict, labels: dict) -> bool:
    """True when every label of the policy's nodeSelector is on the node."""
    selector = d(d(policy.get("spec")).get("nodeSelector"))
    return all(labels.get(k) == v for k, v in selector.items())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def selects_pf(nic: dict, interface: dict) -> bool:
    """``SriovNetworkNicSelector.Selected``: every criterion set must hold; an empty selector selects nothing.
    A vendor or device id the interface does not report (the inventory's devices, when the node state lists
    none) is not held against it."""
    vendor, device = _text(nic.get("vendor")), _text(nic.get("deviceID"))
    roots, pf_names = lst(nic.get("rootDevices")), lst(nic.get("pfNames"))
    net_filter = _text(nic.get("netFilter"))
    if not (vendor or device or roots or pf_names or net_filter):
        return False
    if vendor and "vendor" in interface and vendor != interface["vendor"]:
        return False
    if device and "deviceID" in interface and device != interface["deviceID"]:
        return False
    if roots and interface.get("pciAddress") not in roots:
        return False
    if pf_names:
        names = {str(p).split("#", 1)[0] for p in pf_names}
        own = [interface.get("name"), *lst(interface.get("altNames"))]
        if not any(n in names for n in own):
            return False
    return not net_filter or net_filter == interface.get("netFilter")


def _group(policy: dict, spec: dict, interface: dict, num_vfs: int) -> VfGroup | None:
    """``generatePfNameVfGroup``: the range of the pfNames entry naming this PF, else 0..numVfs-1."""
    first, last = 0, num_vfs - 1
    for entry in lst(d(spec.get("nicSelector")).get("pfNames")):
        parsed = parse_pf_name(entry)
        if parsed is None:
            return None                     # the operator refuses a malformed range (the node is not rendered)
        if parsed[0] == interface.get("name"):
            if parsed[1] is not None:
                first, last = parsed[1]
            break
    name = spec.get("resourceName")
    return VfGroup(name if isinstance(name, str) else "", first, last, _name(policy))


def _name(policy: dict) -> str:
    return str(d(policy.get("metadata")).get("name", "?"))


def apply_order(policies: list[dict]) -> list[dict]:
    """The policies as the controller applies them: lowest priority (highest number) first, then by name."""
    usable = [p for p in lst(policies) if isinstance(p, dict) and _name(p) != DEFAULT_POLICY]
    return sorted(usable, key=lambda p: (-_int(d(p.get("spec")).get("priority")), _name(p)))


def render(policies: list[dict], labels: dict, interfaces: list[dict]) -> dict[str, PfConfig]:
    """Every PF of ``interfaces`` (the node state's ``status.interfaces``: name, pciAddress, vendor, deviceID)
    that the policies selecting a node with ``labels`` configure, by PCI address."""
    rendered: dict[str, PfConfig] = {}
    previous = 100                          # the priority of the policy applied before (none yet)
    for policy in apply_order(policies):
        if not selects_node(policy, labels):
            continue
        spec = d(policy.get("spec"))
        priority = _int(spec.get("priority"))
        nic = d(spec.get("nicSelector"))
        num_vfs = _int(spec.get("numVfs"))
        for interface in lst(interfaces):
            interface = d(interface)
            pci = interface.get("pciAddress")
            if not isinstance(pci, str) or not selects_pf(nic, interface):
                continue
            if pci in rendered:
                rendered[pci].selected_by.append(_name(policy))
            if num_vfs <= 0:
                continue
            group = _group(policy, spec, interface, num_vfs)
            if group is None:
                continue
            link = spec.get("linkType")
            result = PfConfig(pci, str(interface.get("name", "")), num_vfs,
                              link.upper() if isinstance(link, str) else None, _name(policy), [group],
                              rendered[pci].selected_by if pci in rendered else [_name(policy)])
            if pci in rendered:
                _merge(rendered[pci], result, equal_priority=previous == priority)
            rendered[pci] = result
        previous = priority
    return rendered


def _merge(earlier: PfConfig, result: PfConfig, equal_priority: bool) -> None:
    """``mergeConfigs``: keep the earlier groups of other resources whose ranges do not overlap the new one;
    with such a partition or an equal priority, numVfs is the larger."""
    new = result.groups[0]
    kept = [g for g in earlier.groups if g.resource_name != new.resource_name and not g.overlaps(new)]
    result.groups += kept
    if equal_priority or kept:
        result.num_vfs = max(result.num_vfs, earlier.num_vfs)


def resource_shares(rendered: dict[str, PfConfig], prefix: str) -> dict[str, dict[str, int]]:
    """``<prefix>/<resourceName>`` -> {PCI address: VFs that PF gives it}, in PCI order, for the node's PFs."""
    out: dict[str, dict[str, int]] = {}
    for pci in sorted(rendered):
        for name, count in rendered[pci].shares().items():
            if name:
                out.setdefault(f"{prefix}/{name}", {})[pci] = out.get(f"{prefix}/{name}", {}).get(pci, 0) + count
    return out
