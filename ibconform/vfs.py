"""Judging a PF's virtual functions: bound, with RDMA devices, GUIDs set and unique, ports up, netns mode.

Pure functions over what the node showed (``facts.HcaFacts.vfs`` builds the :class:`Vf` rows); each returns what
is wrong in the words of a failure message, or None. The VF GUIDs come from three places, in this order of
authority: the ``vf N`` lines of ``ip link show <pf>`` (the administrative GUID the CNI reads, iproute2 5.5+),
mlx5's ``sriov/<N>/node|port`` (MLNX_OFED's driver only) and the VF's RDMA device ``node_guid`` (the operational
one). An all-zero GUID anywhere is a GUID nobody set: ib-sriov-cni refuses the VF ("GUID is not valid").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ibconform.parsers.guid import ZERO_GUID

DRIVER = "mlx5_core"
#: The order in which a GUID's sources are believed (and cited).
GUID_SOURCES = ("ip link", "sriov", "node_guid")


@dataclass(frozen=True)
class VfPort:
    """One port of a VF's RDMA device: its ``state`` name (None: unreadable)."""

    rdma_device: str
    number: str
    state: str | None


@dataclass(frozen=True)
class Vf:
    """One VF of a PF as the node showed it.

    ``node_guids``/``port_guids``: source (``GUID_SOURCES``) -> canonical GUID, for the sources that showed one.
    """

    index: int
    pci: str
    driver: str | None                       # the driver link's last component; None: no driver bound
    rdma_devices: tuple[str, ...] = ()
    uverbs: tuple[str, ...] = ()              # infiniband_verbs/uverbsN with a char device (``dev``)
    umad: tuple[str, ...] = ()                # infiniband_mad/umadN with a char device
    node_guids: dict[str, str] = field(default_factory=dict)
    port_guids: dict[str, str] = field(default_factory=dict)
    ports: tuple[VfPort, ...] = ()

    def __str__(self) -> str:
        return f"VF {self.index} ({self.pci})"

    def guid(self, kind: str) -> str | None:
        """The ``node`` or ``port`` GUID from its most authoritative source; None when no source showed one."""
        guids = self.node_guids if kind == "node" else self.port_guids
        return next((guids[s] for s in GUID_SOURCES if s in guids), None)


def binding_problem(vf: Vf) -> str | None:
    """Why the VF is not usable by a pod's RDMA stack (driver, RDMA device, uverbs/umad), else None.

    >>> binding_problem(Vf(3, "0000:18:00.4", None))
    'driver expected mlx5_core vs unbound'
    >>> binding_problem(Vf(0, "0000:18:00.1", "mlx5_core", ("mlx5_16",), ("uverbs16",), ("umad16",)))
    """
    if vf.driver is None:
        return f"driver expected {DRIVER} vs unbound"
    if vf.driver != DRIVER:
        return f"driver expected {DRIVER} vs {vf.driver}"
    if not vf.rdma_devices:
        return "RDMA device expected vs none (no infiniband/mlx5_N under the VF)"
    missing = [name for name, found in (("uverbs", vf.uverbs), ("umad", vf.umad)) if not found]
    if missing:
        return f"{' and '.join(missing)} char device expected vs none for {', '.join(vf.rdma_devices)}"
    return None


def zero_guids(vf: Vf) -> list[str]:
    """Each all-zero GUID the VF shows, with where: ``['node GUID 00:..:00 (ip link)', ...]``.

    >>> zero_guids(Vf(5, "0000:18:00.6", "mlx5_core", node_guids={"ip link": ZERO_GUID},
    ...               port_guids={"ip link": "22:11:af:21:cb:05:11:00"}))
    ['node GUID 00:00:00:00:00:00:00:00 (ip link)']
    """
    zeros = []
    for kind, guids in (("node", vf.node_guids), ("port", vf.port_guids)):
        sources = [s for s in GUID_SOURCES if guids.get(s) == ZERO_GUID]
        if sources:
            zeros.append(f"{kind} GUID {ZERO_GUID} ({', '.join(sources)})")
    return zeros


@dataclass(frozen=True)
class GuidOwner:
    """Where a GUID was seen: a VF of a PF of a node, as its node or port GUID."""

    node: str
    iface: str
    vf: int
    pci: str
    kind: str

    def __str__(self) -> str:
        return f"{self.node} {self.iface} VF {self.vf} ({self.pci}) {self.kind} GUID"


def owners(node: str, iface: str, vfs: Iterable[Vf]) -> dict[str, list[GuidOwner]]:
    """Each non-zero GUID of these VFs -> where it is used (a VF's node and port GUID may be the same: one owner
    per VF and kind)."""
    found: dict[str, list[GuidOwner]] = {}
    for vf in vfs:
        for kind in ("node", "port"):
            guid = vf.guid(kind)
            if guid is not None and guid != ZERO_GUID:
                found.setdefault(guid, []).append(GuidOwner(node, iface, vf.index, vf.pci, kind))
    return found


def index(pfs: Iterable[dict[str, list[GuidOwner]]]) -> dict[str, list[GuidOwner]]:
    """The GUIDs of many PFs (each ``owners``' result) -> where each is used."""
    found: dict[str, list[GuidOwner]] = {}
    for pf in pfs:
        for guid, own in pf.items():
            found.setdefault(guid, []).extend(own)
    return found


def duplicates(mine: dict[str, list[GuidOwner]], everyone: dict[str, list[GuidOwner]]) -> list[str]:
    """For each GUID of ``mine`` used by another VF in ``everyone`` (the node's and the fleet's GUIDs, ``mine``
    included), ``'<guid> of <owner> also <other>'``; a VF whose node and port GUID are equal is no duplicate.

    >>> a = GuidOwner("dgx021", "ibp24s0", 0, "0000:18:00.1", "node")
    >>> b = GuidOwner("dgx022", "ibp24s0", 3, "0000:18:00.4", "port")
    >>> found, = duplicates({"02:aa:00:00:00:00:00:01": [a]}, {"02:aa:00:00:00:00:00:01": [a, b]})
    >>> for part in found.split(" also "): print(part)
    02:aa:00:00:00:00:00:01 of dgx021 ibp24s0 VF 0 (0000:18:00.1) node GUID
    dgx022 ibp24s0 VF 3 (0000:18:00.4) port GUID
    """
    found = []
    for guid, own in sorted(mine.items()):
        for owner in own:
            me = (owner.node, owner.iface, owner.vf)
            others: dict[tuple[str, str, int], list[GuidOwner]] = {}
            for other in everyone.get(guid, []):
                if (other.node, other.iface, other.vf) != me:
                    others.setdefault((other.node, other.iface, other.vf), []).append(other)
            if others:
                named = [f"{o[0].node} {o[0].iface} VF {o[0].vf} ({o[0].pci}) "
                         f"{' and '.join(dict.fromkeys(x.kind for x in o))} GUID" for o in others.values()]
                found.append(f"{guid} of {owner} also {', '.join(named[:3])}"
                             + (f" and {len(named) - 3} more" if len(named) > 3 else ""))
                break
    return found


def not_unique(hca: str, clashes: list[str]) -> str:
    """The failure of ``vf_guids_unique`` for ``hca`` (``iface (pci)``) given ``duplicates``' findings."""
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    return (f"VF GUIDs of {hca} expected unique in the fleet vs {clashes[0]}{more}: the subnet manager routes one "
            "GUID to one port — give each VF its own GUID (the operator draws random ones; a static GUID file "
            "(/etc/sriov-operator/infiniband/guids) must not be copied between nodes)")


def port_problem(port: VfPort, pf_state: str | None, guid_zero: bool = False) -> str | None:
    """Why a VF's port is not ACTIVE, and what it means beside its PF's port, else None.

    A VF port DOWN or INIT while its PF's port is ACTIVE: the physical link is up, but the subnet manager does
    not bring up virtual ports (OpenSM without ``virt_enabled 2``, or a UFM/switch SM without virtualization) —
    unless the VF has no GUID, which no subnet manager activates (``guid_zero``).

    >>> port_problem(VfPort("mlx5_16", "1", "DOWN"), "ACTIVE")
    'expected ACTIVE vs DOWN while the PF port is ACTIVE'
    >>> port_problem(VfPort("mlx5_18", "1", "INIT"), "ACTIVE", guid_zero=True)
    'expected ACTIVE vs INIT: its GUID is zero (vf_guids_set)'
    >>> port_problem(VfPort("mlx5_16", "1", "ACTIVE"), "ACTIVE")
    """
    if port.state == "ACTIVE":
        return None
    seen = port.state or "unreadable"
    if guid_zero:
        return f"expected ACTIVE vs {seen}: its GUID is zero (vf_guids_set)"
    if pf_state == "ACTIVE":
        return f"expected ACTIVE vs {seen} while the PF port is ACTIVE"
    return f"expected ACTIVE vs {seen} (the PF port is {pf_state or 'unreadable'})"


def sm_without_virtualization(problems: list[str]) -> bool:
    """Whether the port problems read as a subnet manager that does not serve virtual ports."""
    return bool(problems) and all("while the PF port is ACTIVE" in p for p in problems)
