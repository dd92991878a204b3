"""The twin API server's state: which resources it serves and the objects it holds.

``Registry`` knows the served resources: the built-in kinds (from kmock's bundled discovery data of a
recent cluster) and every CustomResourceDefinition stored as an object (installing a CRD object
registers its resource; deleting it unregisters the resource and drops its objects, as on a real server).

``Store`` holds the objects in kmock's ``ObjectsArray`` (so ``emulator.objects`` keeps kmock's
history and pattern-matching views), assigns resource versions from one cluster-wide counter, keeps a
bounded event log for watch resumes, and pushes every change to the live watches. It keeps each resource's
keys sorted and pods indexed by ``spec.nodeName`` (as kube-apiserver's watch cache does), so a namespace or a
node's pods are found without a scan. It is thread-safe: the HTTP server's loop and the test thread
(``ApiTwin.put``) both write through it under one lock.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import copy
import datetime
import re
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import attrs
from kmock import KubernetesError, ObjectsArray, ResourcesArray, resource

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SERVED_SUBRESOURCES = frozenset({"status", "binding", "log", "exec"})
# Groups in kmock's bundled K3s discovery data that a plain cluster serves from CRDs or add-ons, not built in.
NOT_BUILT_IN = frozenset({"metrics.k8s.io", "gateway.networking.k8s.io"})
CRD_GROUP, CRD_PLURAL = "apiextensions.k8s.io", "customresourcedefinitions"
PODS = ("", "pods")
ACCESS_REVIEW = ("authorization.k8s.io", "selfsubjectaccessreviews")   # served: `kubectl auth can-i`
RULES_REVIEW = ("authorization.k8s.io", "selfsubjectrulesreviews")     # served: `kubectl auth can-i --list`
SELF_REVIEW = ("authentication.k8s.io", "selfsubjectreviews")          # served: `kubectl auth whoami`
REVIEWS = frozenset({ACCESS_REVIEW, RULES_REVIEW, SELF_REVIEW})

COMMON_FIELD_LABELS = frozenset({"metadata.name", "metadata.namespace"})
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                             "status.nominatedNodeName"}),
    ("", "events"): frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "secrets"): frozenset({"type"}),
    ("", "replicationcontrollers"): frozenset({"status.replicas"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
    ("batch", "jobs"): frozenset({"status.successful"}),
}
# Built-in groups whose objects carry metadata.generation (CRD objects always do).
GENERATION_GROUPS = frozenset({"apps", "batch", "policy", "networking.k8s.io", "autoscaling"})


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------- errors

@attrs.frozen
class ApiError(KubernetesError):
    """An error the API server answers with a ``Status`` body (kmock's KubernetesError, real shape)."""

    headers: Mapping[str, str] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message or "", "reason": self.reason or ""}
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.status
        return out


def _details(rt: ResourceType | None, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if rt is not None:
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def server_not_found() -> ApiError:
    """What a real server says for an unknown group, version or resource (e.g. a CRD not installed)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str, what: str | None = None) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {what or rt.qualified} "{name}": {why}',
                    _details(rt, name))


def invalid(rt: ResourceType, name: str, field_path: str, why: str) -> ApiError:
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {field_path}: {why}',
                    {**_details(rt, name), "kind": rt.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field_path}]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


# --------------------------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class ResourceType:
    """One served group/version/resource, with what discovery says about it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False          # defined by a CRD
    #: The CRD version's additionalPrinterColumns (what ``kubectl get`` shows of its objects).
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """``pods``, ``ippools.nv-ipam.nvidia.com``: how the server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_plural(self) -> tuple[str, str]:
        return self.group, self.plural

    @property
    def field_labels(self) -> frozenset[str]:
        return COMMON_FIELD_LABELS | FIELD_LABELS.get(self.group_plural, frozenset())

    @property
    def has_generation(self) -> bool:
        return self.custom or self.group in GENERATION_GROUPS


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else (alphabetical)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), version)


def built_in_types() -> list[ResourceType]:
    """The built-in resources of a recent cluster, from kmock's bundled discovery documents."""
    bundled = ResourcesArray()
    with warnings.catch_warnings():  # kmock reads its bundle through a deprecated importlib call
        warnings.simplefilter("ignore", DeprecationWarning)
        bundled.load_bundled()
    types = []
    for res in bundled:
        info = bundled[res]
        review = (res.group, res.plural) in REVIEWS
        if res.group in NOT_BUILT_IN or res.plural is None or ("list" not in info.verbs and not review):
            continue
        types.append(ResourceType(
            group=res.group or "", version=res.version or "v1", plural=res.plural,
            kind=info.kind or res.plural.capitalize(), singular=info.singular or res.plural,
            namespaced=bool(info.namespaced), verbs=tuple(sorted(info.verbs)),
            short_names=tuple(sorted(info.shortnames)), categories=tuple(sorted(info.categories)),
            subresources=tuple(sorted(set(info.subresources) & SERVED_SUBRESOURCES))))
    return types


def crd_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The served versions of a CustomResourceDefinition object, as resource types."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = names.get("kind", "")
    return [ResourceType(
        group=spec.get("group", ""), version=v["name"], plural=names.get("plural", kind.lower() + "s"),
        kind=kind, singular=names.get("singular", kind.lower()), namespaced=spec.get("scope") != "Cluster",
        short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
        subresources=tuple(s for s in ("status",) if s in (v.get("subresources") or {})), custom=True,
        printer_columns=tuple(v.get("additionalPrinterColumns") or ()))
        for v in spec.get("versions") or () if v.get("served", True)]


def crd_storage_version(crd: Mapping[str, Any]) -> str:
    versions = (crd.get("spec") or {}).get("versions") or []
    return next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "v1")


class Registry:
    """The served resources, by group/version/plural; one storage version per group/plural."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._storage: dict[tuple[str, str], str] = {}

    def add(self, rt: ResourceType, storage: bool = False) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt
        if storage or rt.group_plural not in self._storage:
            self._storage[rt.group_plural] = rt.version

    def remove(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if (k[0], k[2]) == (group, plural)]:
            del self._types[key]
        self._storage.pop((group, plural), None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def storage(self, group: str, plural: str) -> ResourceType | None:
        version = self._storage.get((group, plural))
        return None if version is None else self._types[(group, version, plural)]

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Named groups (core excluded) → versions, preferred first."""
        groups: dict[str, set[str]] = collections.defaultdict(set)
        for group, version, _ in self._types:
            if group:
                groups[group].add(version)
        return {g: sorted(vs, key=version_priority) for g, vs in groups.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._types.items() if (g, v) == (group, version)]

    def find(self, api_version: str | None, kind_or_plural: str) -> ResourceType | None:
        """By apiVersion (``v1``, ``group/version``; None = any) and kind, plural, singular or short name."""
        group, version = (api_version.rsplit("/", 1) if "/" in api_version else ("", api_version)) \
            if api_version else (None, None)
        name = kind_or_plural.split(".", 1)[0] if api_version is None else kind_or_plural
        qualifier = kind_or_plural.split(".", 1)[1] if api_version is None and "." in kind_or_plural else None
        matches = [rt for rt in self._types.values()
                   if (group is None or (rt.group, rt.version) == (group, version))
                   and (qualifier is None or rt.group == qualifier)
                   and name in (rt.kind, rt.plural, rt.singular, *rt.short_names)]
        if not matches:
            return None
        # Prefer the core group, then the storage version of the first group found.
        matches.sort(key=lambda rt: (rt.group != "", rt.group, self._storage.get(rt.group_plural) != rt.version))
        return matches[0]


# ------------------------------------------------------------------------------------------------ store

@dataclass(frozen=True)
class Change:
    """One write, as the watch log keeps it: ``obj`` after, ``old`` before (None for ADDED)."""

    type: str                 # ADDED, MODIFIED, DELETED
    rt: ResourceType          # the storage version
    obj: dict[str, Any]
    old: dict[str, Any] | None
    resource_version: int


@dataclass(eq=False)
class Watcher:
    group_plural: tuple[str, str]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


def object_key(namespace: str | None, name: str) -> str:
    """The sort and continue key, like the etcd key suffix: ``ns/name`` or ``name``."""
    return f"{namespace}/{name}" if namespace else name


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def generate_name(prefix: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return prefix + "".join(alphabet[b % len(alphabet)] for b in uuid.uuid4().bytes[:5])


def crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The status a real server gives an accepted CRD."""
    now = now_rfc3339()
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    return {"acceptedNames": names, "storedVersions": [crd_storage_version(crd)], "conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now}]}


class Store:
    """Objects by resource, one resourceVersion counter, a bounded event log and the live watches."""

    def __init__(self, *, first_resource_version: int = 1000, event_limit: int = 20_000,
                 history_limit: int = 16) -> None:
        self.lock = threading.RLock()
        self.registry = Registry()
        self.objects = ObjectsArray()
        self.resource_version = first_resource_version
        self.compacted_rv = first_resource_version   # watches from before this get 410 Gone
        self._events: collections.deque[Change] = collections.deque(maxlen=event_limit)
        self._history_limit = history_limit
        self._index: dict[tuple[str, str], dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self._keys: dict[tuple[str, str], list[str]] = collections.defaultdict(list)   # each _index's keys, sorted
        self._pods_on: dict[str, set[str]] = {}                                        # node name -> pod keys
        self._dependents: dict[str, set[tuple[tuple[str, str], str]]] = collections.defaultdict(set)
        self._watchers: set[Watcher] = set()

    # -- reading (callers hold ``lock`` when they need several reads to agree)

    def storage_type(self, rt: ResourceType) -> ResourceType:
        return self.registry.storage(rt.group, rt.plural) or rt

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself: never mutate it, copy it first."""
        with self.lock:
            return self._index.get(rt.group_plural, {}).get(object_key(namespace, name))

    def items(self, rt: ResourceType, namespace: str | None = None, *,
              node_name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(key, object) sorted by key; ``namespace`` None means all namespaces; ``node_name``: only the pods
        bound to that node (ValueError for another resource)."""
        with self.lock:
            objects = self._index.get(rt.group_plural, {})
            prefix = f"{namespace}/" if namespace and rt.namespaced else ""
            if node_name is not None:
                if rt.group_plural != PODS:
                    raise ValueError(f"only pods are indexed by node, not {rt.qualified}")
                keys = sorted(k for k in self._pods_on.get(node_name, ()) if k.startswith(prefix))
            else:
                keys = self._keys.get(rt.group_plural, [])
                if prefix:              # "ns/" <= every "ns/..." key < "ns0" ("0" follows "/")
                    keys = keys[bisect.bisect_left(keys, prefix):bisect.bisect_left(keys, f"{namespace}0")]
            return [(k, objects[k]) for k in keys]

    def namespace_exists(self, namespace: str) -> bool:
        namespaces = self.registry.storage("", "namespaces")
        return namespaces is not None and self.get(namespaces, None, namespace) is not None

    # -- writing

    def fill_metadata(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
        """Type, uid, creationTimestamp and generation, as the server sets them on create/update."""
        rt = self.storage_type(rt)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = generate_name(metadata["generateName"])
        if not rt.namespaced:
            metadata.pop("namespace", None)
        if old is None:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now_rfc3339()
            if rt.has_generation:
                metadata["generation"] = 1
        else:
            old_meta = meta(old)
            for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if key in old_meta:
                    metadata[key] = old_meta[key]
            if rt.has_generation:
                spec_changed = _spec_part(obj) != _spec_part(old)
                metadata["generation"] = int(old_meta.get("generation") or 1) + (1 if spec_changed else 0)
        if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL) and not (obj.get("status") or {}).get("conditions"):
            obj["status"] = crd_status(obj)
        return obj

    def write(self, rt: ResourceType, obj: dict[str, Any]) -> list[Change]:
        """Store ``obj`` (created or replaced whole); it must be fully prepared. Returns the change."""
        rt = self.storage_type(rt)
        metadata = meta(obj)
        key = object_key(metadata.get("namespace"), metadata["name"])
        with self.lock:
            old = self._index[rt.group_plural].get(key)
            self.resource_version += 1
            metadata["resourceVersion"] = str(self.resource_version)
            self._index[rt.group_plural][key] = obj
            if old is None:
                bisect.insort(self._keys[rt.group_plural], key)
            if rt.group_plural == PODS:
                self._track_node(key, old, obj)
            kmock_key = (resource(rt.group, rt.version, rt.plural), metadata.get("namespace"), metadata["name"])
            if kmock_key in self.objects and old is not None:
                history = self.objects[kmock_key].history
                history.append(obj)
                if len(history) > self._history_limit:
                    del history[: len(history) - self._history_limit]
            elif kmock_key in self.objects:
                self.objects[kmock_key].create(obj)
            else:
                self.objects[kmock_key] = obj
            self._track_owners(rt, key, old, obj)
            change = Change("MODIFIED" if old is not None else "ADDED", rt, obj, old, self.resource_version)
            changes = [change]
            if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
                changes += self._crd_changed(old, obj)
            self._publish(change)
            return changes

    def remove(self, rt: ResourceType, namespace: str | None, name: str,
               propagation: str = "Background") -> list[Change]:
        """Delete now (finalizers are the caller's business), cascading to dependents and namespace content."""
        rt = self.storage_type(rt)
        key = object_key(namespace, name)
        with self.lock:
            old = self._index.get(rt.group_plural, {}).get(key)
            if old is None:
                return []
            changes: list[Change] = []
            if (rt.group, rt.plural) == ("", "namespaces"):
                for other in self.registry.all():
                    if other.namespaced and self.registry.storage(other.group, other.plural) is other:
                        for _, obj in self.items(other, name):
                            changes += self.remove(other, name, meta(obj)["name"])
            uid = meta(old).get("uid")
            for dep_gp, dep_key in sorted(self._dependents.pop(uid, set())) if uid else ():
                dep_rt = self.registry.storage(*dep_gp)
                dep = self._index.get(dep_gp, {}).get(dep_key)
                if dep_rt is None or dep is None:
                    continue
                if propagation == "Orphan":
                    orphan = copy.deepcopy(dep)
                    refs = [r for r in meta(orphan).get("ownerReferences") or [] if r.get("uid") != uid]
                    meta(orphan)["ownerReferences"] = refs
                    if not refs:
                        del meta(orphan)["ownerReferences"]
                    changes += self.write(dep_rt, orphan)
                else:
                    changes += self.remove(dep_rt, meta(dep).get("namespace"), meta(dep)["name"], propagation)
            del self._index[rt.group_plural][key]
            keys = self._keys[rt.group_plural]
            del keys[bisect.bisect_left(keys, key)]
            if rt.group_plural == PODS:
                self._track_node(key, old, None)
            self.resource_version += 1
            gone = copy.copy(old)
            gone["metadata"] = {**meta(old), "resourceVersion": str(self.resource_version)}
            self.objects[(resource(rt.group, rt.version, rt.plural), namespace, name)].delete()
            self._track_owners(rt, key, old, None)
            change = Change("DELETED", rt, gone, old, self.resource_version)
            self._publish(change)
            changes.append(change)
            if (rt.group, rt.plural) == (CRD_GROUP, CRD_PLURAL):
                changes += self._crd_changed(old, None)
            return changes

    def _track_owners(self, rt: ResourceType, key: str, old: Mapping[str, Any] | None,
                      new: Mapping[str, Any] | None) -> None:
        def uids(obj: Mapping[str, Any] | None) -> set[str]:
            return {r["uid"] for r in (meta(obj).get("ownerReferences") or []) if r.get("uid")} if obj else set()

        for uid in uids(old) - uids(new):
            self._dependents[uid].discard((rt.group_plural, key))
            if not self._dependents[uid]:
                del self._dependents[uid]
        for uid in uids(new) - uids(old):
            self._dependents[uid].add((rt.group_plural, key))

    def _track_node(self, key: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        """Keep the pod ``key`` under the node it is bound to (``spec.nodeName``), if any."""
        before, after = _node_name(old), _node_name(new)
        if before == after:
            return
        if before:
            self._pods_on[before].discard(key)
            if not self._pods_on[before]:
                del self._pods_on[before]
        if after:
            self._pods_on.setdefault(after, set()).add(key)

    def _crd_changed(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
        """Register the resources of a stored CRD; drop them (and all their objects) when it goes."""
        changes: list[Change] = []
        if old is not None:
            old_types = crd_types(old)
            new_plurals = {(rt.group, rt.plural) for rt in crd_types(new)} if new is not None else set()
            for gp in {rt.group_plural for rt in old_types} - new_plurals:
                storage = self.registry.storage(*gp)
                if storage is not None:
                    for _, obj in self.items(storage):
                        changes += self.remove(storage, meta(obj).get("namespace"), meta(obj)["name"])
                self.registry.remove(*gp)
                self._index.pop(gp, None)
                self._keys.pop(gp, None)
            for rt in old_types:
                if new is not None:
                    self.registry.remove(rt.group, rt.plural)
        if new is not None:
            storage = crd_storage_version(new)
            for rt in crd_types(new):
                self.registry.add(rt, storage=rt.version == storage)
        return changes

    # -- watching

    def subscribe(self, rt: ResourceType, loop: asyncio.AbstractEventLoop,
                  since: int | None) -> tuple[Watcher, list[Change] | None, int]:
        """Register a watch; return it, the logged changes after ``since`` (None: too old), the current RV."""
        with self.lock:
            watcher = Watcher(rt.group_plural, loop)
            backlog: list[Change] | None = None
            if since is not None and since >= self.compacted_rv:
                backlog = [c for c in self._events
                           if c.resource_version > since and c.rt.group_plural == rt.group_plural]
            self._watchers.add(watcher)
            return watcher, backlog, self.resource_version

    def unsubscribe(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)

    def close_watches(self) -> None:
        """End every live watch cleanly (each gets a None sentinel), as a server shutting down does."""
        with self.lock:
            for watcher in list(self._watchers):
                with contextlib.suppress(RuntimeError):
                    watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, None)

    def _publish(self, change: Change) -> None:
        if len(self._events) == self._events.maxlen:
            self.compacted_rv = self._events[0].resource_version
        self._events.append(change)
        for watcher in list(self._watchers):
            if watcher.group_plural == change.rt.group_plural:
                try:
                    watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, change)
                except RuntimeError:  # its loop is closed: the watch is gone
                    self._watchers.discard(watcher)


def _node_name(pod: Mapping[str, Any] | None) -> str:
    spec = pod.get("spec") if pod is not None else None
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return str(node) if node else ""


def _spec_part(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (obj or {}).items() if k not in ("metadata", "status", "apiVersion", "kind")}


def load_objects(store: Store, rt: ResourceType, objects: Iterable[dict[str, Any]]) -> None:
    """Store prepared copies of ``objects`` (used to seed CRDs and namespaces)."""
    for obj in objects:
        obj = copy.deepcopy(obj)
        store.write(rt, store.fill_metadata(rt, obj, None))
