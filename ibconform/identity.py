"""Which machine answered: the host an SSH (or exec) session reached, judged against the Kubernetes Node.

Node names need not be host names: managed services name Nodes by IP address, FQDNs are shortened or not.
The proof, strongest first: the host's ``/etc/machine-id`` equals the Node's ``status.nodeInfo.machineID``
(kubelet reports that file); else ``uname -n`` names the Node (its name, its ``kubernetes.io/hostname``
label, or a ``Hostname``/``InternalDNS``/``InternalIP`` address). Pure functions over untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibconform.untrusted import d, lst

HOSTNAME_LABEL = "kubernetes.io/hostname"
NAME_ADDRESSES = ("Hostname", "InternalDNS", "InternalIP")


@dataclass(frozen=True)
class Identity:
    """The verdict: ``problem`` is None when the host is proven to be the node, else why not (one line)."""

    proof: str
    problem: str | None


def _short(name: str) -> str:
    return name.strip().lower().split(".")[0] if not _is_ip(name) else name.strip()


def _is_ip(name: str) -> bool:
    parts = name.strip().split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def node_names(name: str, node_obj: dict | None) -> list[str]:
    """Every name the Node goes by: its name, its hostname label, its name-like addresses."""
    names = [name]
    if node_obj:
        label = d(d(node_obj.get("metadata")).get("labels")).get(HOSTNAME_LABEL)
        names += [label] if isinstance(label, str) else []
        names += [str(d(a).get("address")) for a in lst(d(node_obj.get("status")).get("addresses"))
                  if d(a).get("type") in NAME_ADDRESSES and d(a).get("address")]
    return list(dict.fromkeys(names))


def judge(name: str, hostname: str | None, machine_id: str | None, node_obj: dict | None) -> Identity:
    """Is the host that answered (``uname -n`` ``hostname``, ``/etc/machine-id`` ``machine_id``, either None when
    unknown) the Node ``name`` (``node_obj``: its API object, None when unknown)?"""
    node_id = d(d(d(node_obj).get("status")).get("nodeInfo")).get("machineID") if node_obj else None
    seen_id = machine_id.strip() if machine_id else None
    if isinstance(node_id, str) and node_id.strip() and seen_id:
        if seen_id == node_id.strip():
            return Identity(f"/etc/machine-id {seen_id} = Node {name} status.nodeInfo.machineID", None)
        return Identity("machine-id", f"machine-id expected {node_id.strip()} (Node {name} status.nodeInfo.machineID) "
                                      f"vs {seen_id} on the host reached (uname -n {hostname!r})")
    names = node_names(name, node_obj)
    if hostname and _short(hostname) in {_short(n) for n in names}:
        return Identity(f"uname -n {hostname!r} names Node {name}", None)
    return Identity("hostname", f"hostname expected {' or '.join(names)} vs {hostname!r}")
