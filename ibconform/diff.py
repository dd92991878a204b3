"""``ibconform diff OLD NEW``: the facts that changed between two evidence bundles.

Both bundles are reduced to flat facts (firmware values, VF counts, allocatable resources, images,
node states, verdicts) keyed by what they describe; the diff lists every key whose value differs,
appeared or disappeared. Pure functions over the bundles; rendering as text or as an HTML section.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from ibconform.bundle import Bundle
from ibconform.cluster_facts import name_of, pod_images
from ibconform.collect.nodescript import PF_FILES, hca_dir, pci_dir
from ibconform.collect.snapshot import SUMMARY_ANNOTATION
from ibconform.errors import ParseError
from ibconform.operator_state import DESIRED_ANNOTATION, STATE_ANNOTATION
from ibconform.parsers import mstconfig
from ibconform.untrusted import d, lst

FIRMWARE_PARAMS = ("NUM_OF_VFS", "SRIOV_EN", "LINK_TYPE_P1")
Facts = dict[tuple[str, ...], str]


@dataclass(frozen=True)
class Change:
    key: tuple[str, ...]      # (node or "cluster", subject, fact)
    old: str | None
    new: str | None

    def __str__(self) -> str:
        return f"{' '.join(self.key)}: {self.old if self.old is not None else '(absent)'} -> " \
               f"{self.new if self.new is not None else '(absent)'}"


def _firmware_facts(bundle: Bundle, node: str, pci: str, label: str) -> Facts:
    seen = bundle.mstconfig(node, pci)
    if seen is None:
        return {}
    text, code = seen
    facts: Facts = {(node, label, "mstconfig exit"): str(code)}
    try:
        devices = [dev for dev in mstconfig.parse_query(text).devices if dev.columns]
    except ParseError:
        return facts
    for dev in devices[:1]:
        for name in FIRMWARE_PARAMS:
            row = dev.params.get(name)
            if row is not None:
                facts[(node, label, f"{name} Current")] = str(row.current)
                facts[(node, label, f"{name} Next Boot")] = str(row.next_boot)
    return facts


def node_facts(bundle: Bundle) -> Facts:
    facts: Facts = {}
    for node in bundle.inventory.nodes:
        status = bundle.status(node.name)
        facts[(node.name, "node", "reachable")] = str(status.reachable if status else None)
        for hca in node.hcas:
            facts |= _firmware_facts(bundle, node.name, hca.pci, hca.iface)
            for name in PF_FILES:
                value = bundle.sysfs(node.name, f"{hca_dir(hca.iface)}/{name}")
                if value is not None:
                    facts[(node.name, hca.iface, name)] = value.strip()
            for value in bundle.sysfs_glob(node.name, f"{hca_dir(hca.iface)}/infiniband/*/fw_ver").values():
                facts[(node.name, hca.iface, "fw_ver")] = value.strip()
        for dev in node.excluded:
            label = dev.iface or dev.pci
            value = bundle.sysfs(node.name, f"{pci_dir(dev.pci)}/sriov_numvfs")
            if value is not None:
                facts[(node.name, label, "sriov_numvfs")] = value.strip()
    return facts


def cluster_facts(bundle: Bundle) -> Facts:
    facts: Facts = {}
    prefix = bundle.inventory.model.kubernetes.resource_prefix + "/"
    for node in lst(d(bundle.cluster("nodes")).get("items")):
        name = name_of(node)
        for resource, value in d(d(node.get("status")).get("allocatable")).items():
            if resource.startswith(prefix):
                facts[(name, "allocatable", resource)] = str(value)
        state = d(d(node.get("metadata")).get("annotations")).get(STATE_ANNOTATION)
        facts[(name, "Node", STATE_ANNOTATION)] = str(state)
    for snns in lst(d(bundle.cluster("sriovnetworknodestates")).get("items")):
        if _summary(snns):
            continue
        name = name_of(snns)
        facts[(name, "SriovNetworkNodeState", "syncStatus")] = str(d(snns.get("status")).get("syncStatus"))
        desired = d(d(snns.get("metadata")).get("annotations")).get(DESIRED_ANNOTATION)
        facts[(name, "SriovNetworkNodeState", "desired-state")] = str(desired)
    for pod in lst(d(bundle.cluster("pods")).get("items")):
        metadata = d(pod.get("metadata"))
        component = d(metadata.get("labels")).get("component")
        if not component or _summary(pod):
            continue
        # a DaemonSet's pod belongs to its node; a Deployment's may land anywhere, so it is the cluster's
        per_node = any(d(o).get("kind") == "DaemonSet" for o in lst(metadata.get("ownerReferences")))
        where = d(pod.get("spec")).get("nodeName") if per_node else "cluster"
        facts[(where or "cluster", component, "image")] = ", ".join(pod_images(pod))
    return facts


def _summary(obj: dict) -> bool:
    """A cluster snapshot's summary of other nodes' objects (a shard's bundle), not an object of its own."""
    return d(d(obj.get("metadata")).get("annotations")).get(SUMMARY_ANNOTATION) == "true"


def verdict_facts(results_path: Path) -> Facts:
    """Per-node verdicts from the results.json beside a bundle, when there is one."""
    try:
        nodes = json.loads(results_path.read_text()).get("nodes", [])
    except (OSError, ValueError):
        return {}
    return {(n["name"], "verdict", "root cause"): (n["root_cause"] or {}).get("check") or "none"
            for n in nodes if isinstance(n, dict) and "name" in n} | {
            (n["name"], "verdict", "verdict"): n.get("verdict") for n in nodes if isinstance(n, dict) and "name" in n}


def facts_of(bundle_dir: Path) -> Facts:
    bundle = Bundle(bundle_dir)
    return node_facts(bundle) | cluster_facts(bundle) | verdict_facts(bundle_dir.parent / "results.json")


def diff(old: Facts, new: Facts) -> list[Change]:
    """Every fact whose value differs between ``old`` and ``new``, in key order."""
    return [Change(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def render_html(changes: list[Change], old: Path, new: Path) -> str:
    """A self-contained HTML section listing the changes (for the before/after of a maintenance window)."""
    rows = "".join(
        f"<tr><td>{html.escape(c.key[0])}</td><td>{html.escape(c.key[1])}</td><td>{html.escape(c.key[2])}</td>"
        f"<td>{html.escape(str(c.old))}</td><td>{html.escape(str(c.new))}</td></tr>" for c in changes)
    return (
        "<section class='ibconform-diff'><h2>What changed</h2>"
        f"<p>{html.escape(str(old))} &rarr; {html.escape(str(new))}: {len(changes)} changed facts</p>"
        "<table><thead><tr><th>node</th><th>subject</th><th>fact</th><th>before</th><th>after</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>")
