"""DaemonSets and Deployments of the operators, and the pods their controllers make.

Pure builders. A :class:`Workload` describes one component the way its manifest does (labels, image,
tolerations); ``owner`` gives the DaemonSet or Deployment (+ ReplicaSet), ``pod`` one of its pods bound to
a node, with the name its controller would give it (``nv-ipam-node-x7k2p``,
``nv-ipam-controller-5c8d9f7b6d-q2w9z``). Names are stable per twin: a digest of the cluster and the
pod's place stands in for the controllers' random suffixes. Statuses come from ``kubelet.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: The alphabet of generateName suffixes and pod-template hashes (no vowels, no 0/1/3).
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

#: The tolerations the DaemonSet controller adds to every pod it makes.
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"},
)


def suffix(seed: str, length: int = 5) -> str:
    """A generateName-like suffix, stable for ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:length])


@dataclass(frozen=True)
class Workload:
    """One component's controller object, as its manifest writes it."""

    kind: Literal["DaemonSet", "Deployment"]
    name: str
    namespace: str
    labels: dict[str, str]                    # on the object and its pod template
    selector: dict[str, str]                  # spec.selector.matchLabels
    container: str
    image: str
    host_network: bool = True
    replicas: int = 1                         # Deployments only
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    service_account: str = ""

    @property
    def template_hash(self) -> str:
        """The ReplicaSet's pod-template-hash (a Deployment's pods carry it in their names)."""
        return suffix(f"{self.namespace}/{self.name}/{self.image}", 10)

    @property
    def replica_set(self) -> str:
        return f"{self.name}-{self.template_hash}"


def _template(w: Workload) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": w.container, "image": w.image, "imagePullPolicy": "IfNotPresent"}],
        "serviceAccountName": w.service_account or w.name, "tolerations": list(w.tolerations),
    }
    if w.host_network:
        spec["hostNetwork"] = True
    if w.node_selector:
        spec["nodeSelector"] = dict(w.node_selector)
    labels = dict(w.labels) | ({"pod-template-hash": w.template_hash} if w.kind == "Deployment" else {})
    return {"metadata": {"labels": labels}, "spec": spec}


def owner(w: Workload, scheduled: int, ready: int) -> list[dict[str, Any]]:
    """The DaemonSet, or the Deployment and its ReplicaSet, with the status their controllers report
    for ``scheduled`` pods of which ``ready`` are Ready (the ReplicaSet's owner reference is the caller's)."""
    metadata = {"name": w.name, "namespace": w.namespace, "labels": dict(w.labels)}
    selector = {"matchLabels": dict(w.selector)}
    if w.kind == "DaemonSet":
        return [{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": metadata,
                 "spec": {"selector": selector, "template": _template(w),
                          "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
                 "status": {"currentNumberScheduled": scheduled, "desiredNumberScheduled": scheduled,
                            "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                            "updatedNumberScheduled": scheduled, "observedGeneration": 1,
                            **({"numberUnavailable": scheduled - ready} if scheduled > ready else {})}}]
    available = ready >= w.replicas
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": w.replicas, "selector": selector, "template": _template(w)},
        "status": {"observedGeneration": 1, "replicas": scheduled, "updatedReplicas": scheduled,
                   "readyReplicas": ready, "availableReplicas": ready,
                   **({"unavailableReplicas": scheduled - ready} if scheduled > ready else {}),
                   "conditions": [
                       {"type": "Available", "status": "True" if available else "False",
                        "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                        "message": "Deployment has minimum availability." if available
                        else "Deployment does not have minimum availability."},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"
                        if available else "ReplicaSetUpdated",
                        "message": f'ReplicaSet "{w.replica_set}" has successfully progressed.' if available
                        else f'ReplicaSet "{w.replica_set}" is progressing.'}]},
    }
    replica_set = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": w.replica_set, "namespace": w.namespace,
                     "labels": dict(w.labels) | {"pod-template-hash": w.template_hash}},
        "spec": {"replicas": w.replicas, "selector": {"matchLabels": dict(w.selector) | {
            "pod-template-hash": w.template_hash}}, "template": _template(w)},
        "status": {"replicas": scheduled, "fullyLabeledReplicas": scheduled, "readyReplicas": ready,
                   "availableReplicas": ready, "observedGeneration": 1},
    }
    return [deployment, replica_set]


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``obj`` (which must carry its uid)."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod(w: Workload, node: str, controller: dict[str, Any], seed: str, replica: int = 0) -> dict[str, Any]:
    """One pod of ``w`` bound to ``node``, owned by ``controller`` (its DaemonSet or ReplicaSet)."""
    template = _template(w)
    spec = dict(template["spec"], nodeName=node)
    if w.kind == "DaemonSet":
        name = f"{w.name}-{suffix(f'{seed}/{w.namespace}/{w.name}/{node}')}"
        spec["tolerations"] = list(w.tolerations) + [t for t in DAEMON_TOLERATIONS if t not in w.tolerations]
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    else:
        name = f"{w.replica_set}-{suffix(f'{seed}/{w.namespace}/{w.name}/{replica}')}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": w.namespace, "labels": template["metadata"]["labels"],
                     "ownerReferences": [owner_reference(controller)]},
        "spec": spec | {"restartPolicy": "Always", "schedulerName": "default-scheduler", "dnsPolicy": "ClusterFirst",
                        "terminationGracePeriodSeconds": 30, "priority": 0, "enableServiceLinks": True},
        "status": {"qosClass": "BestEffort"},
    }


LogEntry = tuple[str, str, Mapping[str, Any]]


def log_text(when: str, entries: Sequence[LogEntry]) -> str:
    """A component's log as its structured logger prints it, one ``<time> <LEVEL> <message> <fields>`` line per
    ``(level, message, fields)`` entry (the operators' Go loggers, without the caller column)."""
    lines = []
    for level, message, fields in entries:
        line = f"{when}\t{level}\t{message}"
        lines.append(f"{line}\t{json.dumps(dict(fields))}" if fields else line)
    return "".join(f"{line}\n" for line in lines)
