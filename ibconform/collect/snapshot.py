"""One cluster snapshot per fleet run: the cluster Lists read once, for every shard to read instead of LISTing.

``ibconform snapshot -i INV --out DIR`` makes the LIST calls ``ibconform run`` makes (``cluster.RESOURCES``),
page by page. Each object is cut to the fields the checks read (``prune``) and written as its page arrives,
indexed by the node it belongs to, so the writer holds one page at a time::

    DIR/snapshot.json            format ibconform-snapshot/v1: id, cluster, inventory_sha256, taken, finished,
                                 kubernetes_api, and per List its resourceVersion and object count (written last)
    DIR/errors.json              plural -> why it could not be listed (the bundle's cluster/errors.json)
    DIR/cluster/<plural>.jsonl   one object a line: the objects bound to no node (every object of the cluster-wide
                                 Lists; pods not run on a node by a DaemonSet)
    DIR/cluster/summaries.jsonl  {"list", "object"} a line: one summary per kind of node-bound object (below)
    DIR/nodes/<node>.jsonl       {"list", "object"} a line: the objects bound to that node: its Node, its
                                 SriovNetworkNodeState, the pods DaemonSets run on it

It is written to ``DIR.partial-<pid>`` and renamed to ``DIR`` once finished: a snapshot that exists is whole.

A shard (``ibconform run --snapshot DIR``, ``read_lists``) reads the cluster-wide files and its own nodes' files
only, so its memory grows with its shard, not with the cluster. The few cluster-wide verdicts that look at every
node's objects see them through the summaries: one per distinct set of SR-IOV drain annotations of the node
states (how the operator reports state, ``operator_state.generation``) and one per DaemonSet and image set of the
node-bound pods (components present, operator versions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from ibconform import operator_state
from ibconform.bundle import now
from ibconform.collect import cluster
from ibconform.errors import UsageError
from ibconform.inventory import Inventory
from ibconform.untrusted import d, lst

FORMAT = "ibconform-snapshot/v1"
DEFAULT_MAX_AGE_S = 3600.0
CLOCK_SKEW_S = 300.0   # a snapshot taken this far "in the future" (clocks of two pods) is still accepted
NODE_BOUND = ("nodes", "sriovnetworknodestates", "pods")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
#: The fields kept of each node-bound object (everything else is dropped; objects of the other Lists are kept
#: whole but for metadata.managedFields). What the checks and the probes read, with room: a Node's labels,
#: annotations, taints, resources, addresses, nodeInfo (machineID) and conditions; a pod's labels, owner,
#: node, container names and images, and its whole status.
KEPT: dict[str, dict[str, tuple[str, ...] | None]] = {
    "nodes": {"metadata": ("name", "uid", "resourceVersion", "creationTimestamp", "labels", "annotations"),
              "spec": None,
              "status": ("allocatable", "capacity", "addresses", "nodeInfo", "conditions")},
    "pods": {"metadata": ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "labels", "annotations",
                          "ownerReferences"),
             "spec": ("nodeName", "nodeSelector", "containers"),
             "status": None},
}
_CONTAINER_FIELDS = ("name", "image")
SUMMARY_ANNOTATION = "ibconform.io/snapshot-summary"   # marks a summary object: it stands for other nodes' objects
_DRAIN_KEYS = (operator_state.EXTERNAL_DRAINER_ANNOTATION, operator_state.DESIRED_ANNOTATION,
               operator_state.CURRENT_ANNOTATION)


def inventory_sha256(inventory: Inventory) -> str:
    """The inventory text's SHA-256, as results.json's run.inventory_sha256."""
    return hashlib.sha256(inventory.text.encode()).hexdigest()


def prune(plural: str, obj: dict) -> dict:
    """``obj`` cut to the fields kept of its List (KEPT); metadata.managedFields never kept."""
    kept = KEPT.get(plural)
    if kept is None:
        out = dict(obj)
        if isinstance(out.get("metadata"), dict):
            out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
        return out
    out = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    for section, fields in kept.items():
        value = obj.get(section)
        if not isinstance(value, dict):
            continue
        out[section] = dict(value) if fields is None else {k: value[k] for k in fields if k in value}
    out.get("metadata", {}).pop("managedFields", None)
    spec = out.get("spec")
    if plural == "pods" and isinstance(spec, dict) and "containers" in spec:
        spec["containers"] = [{k: c[k] for k in _CONTAINER_FIELDS if k in c} for c in lst(spec["containers"])
                              if isinstance(c, dict)]
    return out


def _daemonset_of(pod: dict) -> str | None:
    owners = lst(d(pod.get("metadata")).get("ownerReferences"))
    return next((str(d(o).get("name")) for o in owners if d(o).get("kind") == "DaemonSet"), None)


def node_of(plural: str, obj: dict) -> str | None:
    """The node ``obj`` belongs to (a file name, so only a safe name), None when it is cluster-wide."""
    if plural in ("nodes", "sriovnetworknodestates"):
        name = d(obj.get("metadata")).get("name")
    elif plural == "pods" and _daemonset_of(obj) is not None:
        name = d(obj.get("spec")).get("nodeName")
    else:
        return None
    return name if isinstance(name, str) and _SAFE_NAME.match(name) and name not in (".", "..") else None


def summary(plural: str, obj: dict) -> tuple[tuple, dict] | None:
    """(key, summary object) standing for a node-bound object in every shard, or None (a Node needs none)."""
    meta = d(obj.get("metadata"))
    if plural == "sriovnetworknodestates":
        annotations = {k: v for k, v in d(meta.get("annotations")).items() if k in _DRAIN_KEYS}
        key = (annotations.get(operator_state.EXTERNAL_DRAINER_ANNOTATION) == "true",
               operator_state.DESIRED_ANNOTATION in annotations, operator_state.CURRENT_ANNOTATION in annotations)
        return key, {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                                  "annotations": {**annotations, SUMMARY_ANNOTATION: "true"}}}
    if plural == "pods":
        spec = d(obj.get("spec"))
        images = tuple(sorted(str(d(c).get("image")) for c in lst(spec.get("containers"))))
        key = (meta.get("namespace"), _daemonset_of(obj), images)
        kept = {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta}
        return key, {"metadata": {**kept, "annotations": {SUMMARY_ANNOTATION: "true"}},
                     "spec": {"containers": lst(spec.get("containers"))}}
    return None


class _Writer:
    """Writes one snapshot folder as pages arrive: one page in memory, never the List."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "nodes").mkdir(parents=True)
        (root / "cluster").mkdir()
        self.lists: dict[str, dict] = {}
        self.summaries: dict[tuple, None] = {}
        self.nodes: set[str] = set()

    def page(self, res: cluster.Resource, namespace: str | None, page: dict) -> None:
        record = self.lists.setdefault(res.plural, {"apiVersion": page.get("apiVersion", res.version),
                                                    "namespace": namespace, "objects": 0})
        if record["namespace"] == namespace:   # the first namespace's, as an unsharded run's List
            record["resourceVersion"] = str(d(page.get("metadata")).get("resourceVersion", ""))
        by_file: dict[str, list[str]] = {}
        for raw in lst(page.get("items")):
            if not isinstance(raw, dict):
                continue
            obj = prune(res.plural, raw)
            record["objects"] += 1
            node = node_of(res.plural, obj)
            if node is None:
                by_file.setdefault(f"cluster/{res.plural}.jsonl", []).append(_line(obj))
                continue
            self.nodes.add(node)
            by_file.setdefault(f"nodes/{node}.jsonl", []).append(_line({"list": res.plural, "object": obj}))
            found = summary(res.plural, obj)
            if found is not None and (res.plural, found[0]) not in self.summaries:
                self.summaries[(res.plural, found[0])] = None
                by_file.setdefault("cluster/summaries.jsonl", []).append(
                    _line({"list": res.plural, "object": found[1]}))
        for rel, lines in by_file.items():
            with open(self.root / rel, "a", encoding="utf-8") as f:
                f.write("".join(lines))


def _line(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


def take(api: client.ApiClient, inventory: Inventory, out: Path) -> dict:
    """LIST the cluster once into a new snapshot folder ``out``; its snapshot.json document."""
    if out.exists():
        raise UsageError(f"{out}: exists (a snapshot is never overwritten: give a new folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    taken = now()
    writer = _Writer(partial)
    try:
        errors = cluster.read_lists(api, inventory, writer.page)
        (partial / "errors.json").write_text(json.dumps(errors, indent=2, sort_keys=True) + "\n")
        meta = {
            "format": FORMAT, "id": dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3),
            "cluster": inventory.cluster, "inventory": str(inventory.path),
            "inventory_sha256": inventory_sha256(inventory), "taken": taken, "finished": now(),
            "kubernetes_api": getattr(api, "ibconform_access", None), "nodes": len(writer.nodes),
            "lists": {p: {k: v for k, v in r.items() if k != "namespace"} for p, r in writer.lists.items()
                      if p not in errors},
        }
        (partial / "snapshot.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {**meta, "errors": errors}


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot folder and its snapshot.json."""

    root: Path
    meta: dict

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    def age_s(self, at: dt.datetime | None = None) -> float:
        """Seconds since the first LIST of the snapshot was sent."""
        return ((at or dt.datetime.now(dt.UTC)) - _time(self.meta["taken"])).total_seconds()

    def record(self) -> dict:
        """What a bundle's manifest and results.json say of the snapshot a run read."""
        return {"dir": str(self.root), "id": self.id, "taken": self.meta["taken"], "age_s": round(self.age_s(), 1)}


def _time(text: object) -> dt.datetime:
    value = dt.datetime.fromisoformat(str(text))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def open_snapshot(root: Path, inventory: Inventory, max_age_s: float = DEFAULT_MAX_AGE_S) -> Snapshot:
    """The snapshot at ``root`` if a run of ``inventory`` may read it; else UsageError, one line saying why."""
    retake = f"take a new one: ibconform snapshot -i {inventory.path} --out <new folder>"
    try:
        meta = json.loads((root / "snapshot.json").read_text())
    except FileNotFoundError:
        state = "not finished (no snapshot.json)" if root.is_dir() else "absent"
        raise UsageError(f"snapshot {root}: {state}: {retake}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"snapshot {root}/snapshot.json: unreadable ({exc}): {retake}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"snapshot {root}/snapshot.json: format expected {FORMAT!r} vs "
                         f"{d(meta).get('format')!r}: {retake}")
    if meta.get("cluster") != inventory.cluster:
        raise UsageError(f"snapshot {root}: cluster expected {inventory.cluster} (the inventory's) vs "
                         f"{meta.get('cluster')}: {retake}")
    if meta.get("inventory_sha256") != inventory_sha256(inventory):
        raise UsageError(f"snapshot {root}: inventory expected {inventory.path} vs another inventory "
                         f"({meta.get('inventory')}, its sha256 differs): run the shards with the snapshot's "
                         f"inventory, or {retake}")
    try:
        snapshot = Snapshot(root, meta)
        age = snapshot.age_s()
        str(meta["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"snapshot {root}/snapshot.json: taken/id unreadable ({exc}): {retake}") from None
    if age > max_age_s:
        raise UsageError(f"snapshot {root}: taken {meta['taken']}, {age:.0f} s ago, expected at most "
                         f"{max_age_s:g} s (--snapshot-max-age) vs older: {retake}")
    if age < -CLOCK_SKEW_S:
        raise UsageError(f"snapshot {root}: taken {meta['taken']}, {-age:.0f} s in the future: check the clocks, "
                         f"or {retake}")
    return snapshot


def _lines(path: Path) -> list[tuple[int, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            out.append((number, json.loads(line)))
        except ValueError:
            out.append((number, None))
    return out


def read_lists(snapshot: Snapshot, inventory: Inventory) -> tuple[dict[str, dict], dict[str, str]]:
    """The Lists as ``inventory``'s nodes see them in the snapshot (the cluster-wide objects, the summaries, then
    each of its nodes' objects), and the errors by plural: what ``cluster.collect_cluster`` returns for them."""
    root = snapshot.root
    try:
        errors = json.loads((root / "errors.json").read_text())
    except (OSError, ValueError) as exc:
        errors = {"_config": f"snapshot {root}/errors.json unreadable ({exc}): take a new snapshot"}
    errors = {str(k): str(v) for k, v in d(errors).items()}
    lists = {plural: {"apiVersion": str(d(record).get("apiVersion", "v1")), "kind": "List",
                      "metadata": {"resourceVersion": str(d(record).get("resourceVersion", ""))}, "items": []}
             for plural, record in d(snapshot.meta.get("lists")).items() if plural not in errors}

    def add(path: Path, number: int, plural: str, obj: object) -> None:
        if plural not in lists:
            return   # not listed, or damaged further up
        if not isinstance(obj, dict):
            errors[plural] = (f"snapshot {path} line {number}: not a JSON object: the snapshot is damaged — "
                              "take a new one")
            del lists[plural]
            return
        lists[plural]["items"].append(obj)

    def add_bound(path: Path) -> None:
        for number, entry in _lines(path):
            plural = d(entry).get("list")
            if plural in NODE_BOUND:
                add(path, number, plural, d(entry).get("object"))
                continue
            for each in NODE_BOUND:   # a damaged line: whose it is cannot be told, every node-bound List is
                add(path, number, each, None)

    add_bound(root / "cluster" / "summaries.jsonl")
    for plural in list(lists):
        path = root / "cluster" / f"{plural}.jsonl"
        for number, obj in _lines(path):
            add(path, number, plural, obj)
    for node in inventory.nodes:
        add_bound(root / "nodes" / f"{node.name}.jsonl")
    return lists, errors


def probe_run_id(snapshot: Snapshot, nodes: str) -> tuple[str, str]:
    """(run id, prefix): a shard's probe run id, ``<snapshot id>.<shard hash>-<random>``; every attempt of the same
    shard on the same snapshot shares the prefix (a retried Job index finds the pods its killed attempt left)."""
    prefix = f"{snapshot.id}.{hashlib.sha256(nodes.encode()).hexdigest()[:8]}-"
    return prefix + secrets.token_hex(3), prefix


def delete_earlier_attempts(api: client.ApiClient, namespace: str, prefix: str, own: str, timeout: float) -> list[str]:
    """Delete the probe pods an earlier attempt of this shard left (its run label starts with ``prefix``, whatever
    their age: a Job retries an index only once its pod is gone); the names deleted. An API that refuses is left
    to the probe run, which says so."""
    from ibconform.collect import probes

    core = client.CoreV1Api(api)
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=probes.PROBE_SELECTOR, _request_timeout=timeout,
                                        _preload_content=False)
        items = lst(d(json.loads(pods.data)).get("items"))
    except cluster.LIST_ERRORS:
        return []
    gone = []
    for pod in map(d, items):
        meta = d(pod.get("metadata"))
        run = d(meta.get("labels")).get(probes.RUN_LABEL)
        if not (isinstance(run, str) and run.startswith(prefix) and run != own and meta.get("name")):
            continue
        try:
            core.delete_namespaced_pod(str(meta["name"]), namespace, grace_period_seconds=0, _preload_content=False,
                                       _request_timeout=timeout).drain_conn()
        except cluster.LIST_ERRORS:
            continue
        gone.append(str(meta["name"]))
    return gone
