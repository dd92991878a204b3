"""kube-scheduler v1.31's default filters and its FailedScheduling words, as pure functions.

Filters run per node in the default plugin order, a node failing at its first failing filter:
NodeUnschedulable (``spec.unschedulable`` unless tolerated), TaintToleration (NoSchedule/NoExecute
taints), NodeAffinity (``nodeSelector`` and required node affinity), NodeResourcesFit (the pod's requests
plus those of the non-terminated pods bound to the node must fit ``status.allocatable``; a resource the
node does not list is 0). When no node fits, the message is ``FitError.Error()`` with the
DefaultPreemption verdict appended::

    0/3 nodes are available: 1 Insufficient nvidia.com/resibp24s0, 2 node(s) didn't match Pod's node
    affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod,
    2 Preemption is not helpful for scheduling.

Reasons are counted over nodes and sorted as strings. A node rejected by the first three filters is
UnschedulableAndUnresolvable ("Preemption is not helpful"); one short of resources is Unschedulable and,
every pod here having priority 0 or more than the lower-priority pods it would need to evict, reports
"No preemption victims found" (v1.31: the v1.34 rule making "request > allocatable" unresolvable is not
in it). Victims are never evicted.

A pod pinned to named nodes (``nodeSelector`` on ``kubernetes.io/hostname``, or every required term naming
hostnames or ``metadata.name`` values) is first tried on those nodes only, as kube-scheduler's NodeAffinity
PreFilter narrows the nodes it filters; when none fits, every node is filtered for the message.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NO_NODES = "no nodes available to schedule pods"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
_NATIVE = ("cpu", "memory", "ephemeral-storage")
_SUFFIXES = {"": Fraction(1), "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6),
             "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
             "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
             "Pi": Fraction(2**50), "Ei": Fraction(2**60)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+))?([A-Za-z]*)$")


def quantity(value: object) -> Fraction:
    """A resource quantity (``"8"``, ``"100m"``, ``"2113348180Ki"``, ``"1e3"``) as an exact number; 0 if
    it does not parse (the API server would have refused it)."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(3) not in _SUFFIXES:
        return Fraction(0)
    number = Fraction(match.group(1)) * _SUFFIXES[match.group(3)]
    return number * Fraction(10) ** int(match.group(2)) if match.group(2) else number


def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value: object) -> list:
    return value if isinstance(value, list) else []


def pod_requests(pod: dict[str, Any]) -> dict[str, Fraction]:
    """The pod's effective requests: containers summed, each init container a floor, plus overhead.
    A container's limit stands in for a missing request (as API defaulting makes it)."""
    spec = _d(pod.get("spec"))

    def of(container: dict) -> dict[str, Fraction]:
        resources = _d(container.get("resources"))
        wanted = dict(_d(resources.get("limits"))) | dict(_d(resources.get("requests")))
        return {k: quantity(v) for k, v in wanted.items()}

    total: dict[str, Fraction] = {}
    for container in _l(spec.get("containers")):
        for name, amount in of(_d(container)).items():
            total[name] = total.get(name, Fraction(0)) + amount
    for container in _l(spec.get("initContainers")):
        for name, amount in of(_d(container)).items():
            total[name] = max(total.get(name, Fraction(0)), amount)
    for name, amount in _d(spec.get("overhead")).items():
        total[name] = total.get(name, Fraction(0)) + quantity(amount)
    return total


def terminated(pod: dict[str, Any]) -> bool:
    return _d(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def tolerates(tolerations: Iterable[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """``ToleratesTaint``: effect (if set) and key (if set) equal; Exists ignores the value."""
    for toleration in tolerations:
        toleration = _d(toleration)
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("key") and toleration["key"] != taint.get("key"):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" or (operator == "Equal" and (toleration.get("value") or "") == (
                taint.get("value") or "")):
            return True
    return False


def _expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = expr.get("key"), expr.get("operator"), [str(v) for v in _l(expr.get("values"))]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            seen, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return seen > bound if operator == "Gt" else seen < bound
    return False


def affinity_matches(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """NodeAffinity's filter: every nodeSelector label, and one required nodeSelectorTerm (its
    matchExpressions on labels and matchFields on metadata.name all true)."""
    labels = {str(k): str(v) for k, v in _d(_d(node.get("metadata")).get("labels")).items()}
    spec = _d(pod.get("spec"))
    if any(labels.get(k) != str(v) for k, v in _d(spec.get("nodeSelector")).items()):
        return False
    node_affinity = _d(_d(spec.get("affinity")).get("nodeAffinity"))
    required = _d(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = _l(required.get("nodeSelectorTerms"))
    if not terms:
        return True
    fields = {"metadata.name": str(_d(node.get("metadata")).get("name", ""))}
    for term in terms:
        term = _d(term)
        if not term.get("matchExpressions") and not term.get("matchFields"):
            continue                      # an empty term matches nothing
        if all(_expression(_d(e), labels) for e in _l(term.get("matchExpressions"))) and \
                all(_expression(_d(e), fields) for e in _l(term.get("matchFields"))):
            return True
    return False


@dataclass(frozen=True)
class NodeVerdict:
    """Why a node cannot take the pod: the failing filter's reasons, and whether evicting pods could help."""

    reasons: tuple[str, ...]
    resolvable: bool


def fit_reasons(pod: dict[str, Any], node: dict[str, Any], bound: Iterable[dict[str, Any]]) -> list[str]:
    """NodeResourcesFit: ``Too many pods``, ``Insufficient <resource>`` for each request that does not fit."""
    bound = [p for p in bound if not terminated(p)]
    allocatable = {k: quantity(v) for k, v in _d(_d(node.get("status")).get("allocatable")).items()}
    reasons = []
    if len(bound) + 1 > allocatable.get("pods", Fraction(0)):
        reasons.append("Too many pods")
    wanted = pod_requests(pod)
    used: dict[str, Fraction] = {}
    for other in bound:
        for name, amount in pod_requests(other).items():
            used[name] = used.get(name, Fraction(0)) + amount
    for name in [*_NATIVE, *sorted(n for n in wanted if n not in (*_NATIVE, "pods"))]:
        amount = wanted.get(name, Fraction(0))
        if amount > 0 and amount > allocatable.get(name, Fraction(0)) - used.get(name, Fraction(0)):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_node(pod: dict[str, Any], node: dict[str, Any], bound: Iterable[dict[str, Any]]) -> NodeVerdict | None:
    """The first failing default filter's verdict on ``node``, None when the pod fits there."""
    spec, node_spec = _d(pod.get("spec")), _d(node.get("spec"))
    tolerations = _l(spec.get("tolerations"))
    if node_spec.get("unschedulable") and not tolerates(
            tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return NodeVerdict(("node(s) were unschedulable",), False)
    for taint in _l(node_spec.get("taints")):
        taint = _d(taint)
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return NodeVerdict((f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}",),
                               False)
    if not affinity_matches(pod, node):
        return NodeVerdict(("node(s) didn't match Pod's node affinity/selector",), False)
    reasons = fit_reasons(pod, node, bound)
    return NodeVerdict(tuple(reasons), True) if reasons else None


def _histogram(total: int, verdicts: Iterable[NodeVerdict]) -> str:
    counts = Counter(reason for verdict in verdicts for reason in verdict.reasons)
    return f"0/{total} nodes are available: " + ", ".join(sorted(f"{n} {r}" for r, n in counts.items())) + "."


def failure_message(pod: dict[str, Any], verdicts: dict[str, NodeVerdict]) -> str:
    """What kube-scheduler writes on the pod's PodScheduled condition and its FailedScheduling event."""
    total = len(verdicts)
    if total == 0:
        return NO_NODES
    message = _histogram(total, verdicts.values())
    if _d(pod.get("spec")).get("preemptionPolicy") == "Never":
        return f"{message} preemption: not eligible due to preemptionPolicy=Never."
    after = [NodeVerdict((NO_VICTIMS if v.resolvable else NOT_HELPFUL,), False) for v in verdicts.values()]
    return f"{message} preemption: {_histogram(total, after)}"


def pinned_nodes(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The nodes NodeAffinity may admit (it refuses every other) when the pod names its nodes, told by each
    node's name and hostname label alone; None when the pod does not name them."""
    spec = _d(pod.get("spec"))
    selected = _d(spec.get("nodeSelector")).get(HOSTNAME_LABEL)
    affinity = _d(_d(spec.get("affinity")).get("nodeAffinity"))
    terms = [_d(t) for t in _l(_d(affinity.get("requiredDuringSchedulingIgnoredDuringExecution")).get(
        "nodeSelectorTerms"))]
    by_terms = bool(terms)                                       # then a node is in hostnames or names
    hostnames: set[str] = set()
    names: set[str] = set()
    for term in terms:
        if not term.get("matchExpressions") and not term.get("matchFields"):
            continue                                             # an empty term matches nothing
        by_label = [e for e in map(_d, _l(term.get("matchExpressions")))
                    if e.get("key") == HOSTNAME_LABEL and e.get("operator") == "In"]
        by_name = [e for e in map(_d, _l(term.get("matchFields")))
                   if e.get("key") == "metadata.name" and e.get("operator") == "In"]
        if by_label:
            hostnames |= {str(v) for v in _l(by_label[0].get("values"))}
        elif by_name:
            names |= {str(v) for v in _l(by_name[0].get("values"))}
        else:
            by_terms = False                                     # this term may match any node
            break
    if selected is None and not by_terms:
        return None
    out = []
    for node in nodes:
        metadata = _d(node.get("metadata"))
        labels = _d(metadata.get("labels"))
        hostname = str(labels[HOSTNAME_LABEL]) if HOSTNAME_LABEL in labels else None
        if selected is not None and hostname != str(selected):
            continue
        if by_terms and hostname not in hostnames and str(metadata.get("name", "")) not in names:
            continue
        out.append(node)
    return out


def _filter(pod: dict[str, Any], nodes: list[dict[str, Any]], bound: Callable[[str], list[dict[str, Any]]]
            ) -> tuple[str | None, dict[str, NodeVerdict]]:
    verdicts: dict[str, NodeVerdict] = {}
    feasible = []
    for node in nodes:
        name = str(_d(node.get("metadata")).get("name", ""))
        pods = bound(name)
        verdict = filter_node(pod, node, pods)
        if verdict is None:
            feasible.append((sum(not terminated(p) for p in pods), name))
        else:
            verdicts[name] = verdict
    return (min(feasible)[1] if feasible else None), verdicts


def schedule(pod: dict[str, Any], nodes: list[dict[str, Any]],
             bound: Callable[[str], list[dict[str, Any]]]) -> tuple[str | None, dict[str, NodeVerdict]]:
    """The node to bind ``pod`` to (the feasible one with the fewest pods, then by name) and no verdicts, or
    None and every node's verdict. ``bound``: the pods bound to a node, by its name."""
    pinned = pinned_nodes(pod, nodes)
    if pinned:
        target, _ = _filter(pod, pinned, bound)
        if target is not None:
            return target, {}
    target, verdicts = _filter(pod, nodes, bound)
    return (target, {}) if target is not None else (None, verdicts)
