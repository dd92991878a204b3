"""vf-guids.json: the VF GUIDs of the nodes a run judged, beside its results.json, for ``ibconform merge``.

A shard sees only its own nodes, so the merge judges ``vf_guids_unique`` again over every shard's GUIDs. It reads
them here, as the shard's evaluation found them, instead of parsing every shard's bundle again (at 1,024 nodes that
took most of a merge). Format ``ibconform-vf-guids/v1``: ``{"format", "pfs": [{"node", "iface", "pci", "guids":
[[guid, vf index, vf pci, "node"|"port"], ...]}, ...]}``, one entry per PF of a reached node.
"""

from __future__ import annotations

import json
from pathlib import Path

from ibconform import facts, vfs
from ibconform.bundle import Bundle
from ibconform.inventory import Inventory
from ibconform.untrusted import d, lst

FORMAT = "ibconform-vf-guids/v1"
FILE = "vf-guids.json"


def write(bundle: Bundle, judged: Inventory, out_dir: Path) -> None:
    """The GUIDs of the ``judged`` nodes' PFs, as the checks read them (``facts.pf_guids``), to ``out_dir``."""
    found = facts.pf_guids(bundle)
    pfs = [{"node": node.name, "iface": hca.iface, "pci": hca.pci,
            "guids": [[guid, o.vf, o.pci, o.kind] for guid, own in found[node.name, hca.iface].items() for o in own]}
           for node in judged.nodes for hca in node.hcas if (node.name, hca.iface) in found]
    (out_dir / FILE).write_text(json.dumps({"format": FORMAT, "pfs": pfs}, separators=(",", ":")))


def load(out_dir: Path) -> dict[tuple[str, str], tuple[str, dict[str, list[vfs.GuidOwner]]]] | None:
    """(node, PF) -> the PF's PCI address and its GUIDs' owners, from a run's output folder; None when the file
    is absent, unreadable or of another format (that run's GUIDs are then unknown to the merge)."""
    try:
        document = json.loads((out_dir / FILE).read_text())
    except (OSError, ValueError):
        return None
    if d(document).get("format") != FORMAT:
        return None
    found = {}
    for pf in lst(document.get("pfs")):
        try:
            node, iface = str(pf["node"]), str(pf["iface"])
            owners: dict[str, list[vfs.GuidOwner]] = {}
            for guid, vf, pci, kind in pf["guids"]:
                owners.setdefault(str(guid), []).append(vfs.GuidOwner(node, iface, int(vf), str(pci), str(kind)))
        except (KeyError, TypeError, ValueError):
            return None
        found[node, iface] = (str(pf.get("pci")), owners)
    return found
