"""``ibconform discover``: write an inventory from a live cluster.

Nodes are those a SriovNetworkNodePolicy's nodeSelector selects; a node's HCAs are the interfaces of
its SriovNetworkNodeState that a policy selects; every other interface the operator reports is listed
as excluded. Nodes with the same device map share a profile, and are folded into NodeSet ranges.
"""

from __future__ import annotations

from ClusterShell.NodeSet import NodeSet

from ibconform import policies as policies_mod
from ibconform.cluster_facts import name_of
from ibconform.untrusted import d, lst

NOT_SELECTED = "reported by the operator, selected by no SriovNetworkNodePolicy"


def device_map(state: dict, labels: dict, policies: list[dict]) -> tuple[tuple, tuple]:
    """(hcas, excluded) of one node from its SriovNetworkNodeState, as sorted tuples of tuples: the PFs the
    policies give VFs to, and the others."""
    interfaces = lst(d(state.get("status")).get("interfaces"))
    configured = policies_mod.render(policies, labels, interfaces)
    hcas, excluded = [], []
    for iface in interfaces:
        iface = d(iface)
        name, pci = iface.get("name"), iface.get("pciAddress")
        if not isinstance(name, str) or not isinstance(pci, str):
            continue
        if pci in configured:
            hcas.append((name, pci.lower()))
        else:
            excluded.append((name, pci.lower()))
    return tuple(sorted(hcas, key=lambda h: h[1])), tuple(sorted(excluded, key=lambda h: h[1]))


def inventory_from(lists: dict[str, dict], cluster: str, namespace: str, prefix: str) -> dict:
    """An ``ibconform/v1`` inventory document from the cluster's Lists (pure)."""
    policies = lst(d(lists.get("sriovnetworknodepolicies")).get("items"))
    states = {name_of(s): s for s in lst(d(lists.get("sriovnetworknodestates")).get("items"))}
    groups: dict[tuple, list[str]] = {}
    for node in lst(d(lists.get("nodes")).get("items")):
        labels = d(d(node.get("metadata")).get("labels"))
        name = name_of(node)
        if not any(policies_mod.selects_node(p, labels) for p in policies) or name not in states:
            continue
        devices = device_map(states[name], labels, policies)
        if devices[0]:
            groups.setdefault(devices, []).append(name)
    profiles, nodes = {}, []
    for i, ((hcas, excluded), names) in enumerate(sorted(groups.items(), key=lambda g: sorted(g[1]))):
        profile = f"profile-{i + 1}"
        profiles[profile] = {
            "hcas": [{"iface": iface, "pci": pci} for iface, pci in hcas],
            "excluded": [{"pci": pci, "iface": iface, "reason": NOT_SELECTED} for iface, pci in excluded],
        }
        nodes.append({"names": str(NodeSet.fromlist(names)), "profile": profile})
    return {"format": "ibconform/v1", "cluster": cluster,
            "kubernetes": {"namespace": namespace, "resourcePrefix": prefix},
            "profiles": profiles, "nodes": nodes}
