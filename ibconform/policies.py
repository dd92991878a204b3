"""Expectations derived from SriovNetworkNodePolicies: which policy selects an HCA on a node, how many
VFs it asks for and which resource it advertises. Pure functions over the API's JSON (untrusted: every
field may be missing or of the wrong type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.untrusted import d, lst

_PF_NAME = re.compile(r"^(?P<iface>[^#]+)(?:#(?P<first>\d+)-(?P<last>\d+))?$")


@dataclass(frozen=True)
class PolicyMatch:
    """One policy that selects an HCA on a node."""

    name: str
    num_vfs: int | None
    resource_name: str | None
    priority: int
    link_type: str | None
    vf_range: tuple[int, int] | None   # from `pfNames: [ibp24s0#0-3]`, else None (all VFs)


def parse_pf_name(entry: str) -> tuple[str, tuple[int, int] | None] | None:
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


def matches(policies: list[dict], node_labels: dict, iface: str, pci: str) -> list[PolicyMatch]:
    """Policies selecting ``iface``/``pci`` on a node with ``node_labels``, highest priority first."""
    found = []
    for policy in lst(policies):
        if not isinstance(policy, dict) or not selects_node(policy, node_labels):
            continue
        spec = d(policy.get("spec"))
        nic = d(spec.get("nicSelector"))
        vf_range = None
        hit = pci in lst(nic.get("rootDevices"))
        for entry in lst(nic.get("pfNames")):
            parsed = parse_pf_name(entry)
            if parsed and parsed[0] == iface:
                hit, vf_range = True, parsed[1]
        if not hit:
            continue
        num_vfs = spec.get("numVfs")
        priority = spec.get("priority")
        found.append(PolicyMatch(
            name=str(d(policy.get("metadata")).get("name", "?")),
            num_vfs=num_vfs if isinstance(num_vfs, int) and not isinstance(num_vfs, bool) else None,
            resource_name=spec.get("resourceName") if isinstance(spec.get("resourceName"), str) else None,
            priority=priority if isinstance(priority, int) else 99,
            link_type=str(spec["linkType"]).upper() if isinstance(spec.get("linkType"), str) else None,
            vf_range=vf_range))
    return sorted(found, key=lambda m: m.priority)


def resource_names(policies: list[PolicyMatch], prefix: str) -> list[str]:
    """``<prefix>/<resourceName>`` of each match, in order, without duplicates."""
    return list(dict.fromkeys(f"{prefix}/{m.resource_name}" for m in policies if m.resource_name))
