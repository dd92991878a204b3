"""Server-side printing: the ``Table`` kube-apiserver answers ``kubectl get`` with.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ..., application/json`` and prints the
columns the server chose. The columns and cells here follow kube-apiserver's printers
(``pkg/printers/internalversion``) for nodes, pods, namespaces and events, and apiextensions' table convertor for
custom resources: Name, then each ``additionalPrinterColumns`` entry of the served version (its JSONPath, typed),
or Age when the CRD names none. The server always fills every column (``-o wide`` only shows those of priority 1).
Other built-in resources have no printer here: they are served as plain JSON, which kubectl accepts too (it then
prints NAME and AGE).

    >>> human_duration(dt.timedelta(minutes=3, seconds=5))
    '3m5s'
    >>> json_path({"metadata": {"annotations": {"a.b/c": "x"}}}, r".metadata.annotations.a\\.b/c")
    ['x']
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ibconform.twin.apiserver.store import ResourceType, meta

TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
NAME_DESCRIPTION = "Name must be unique within a namespace. Cannot be updated."
AGE_DESCRIPTION = "CreationTimestamp is a timestamp representing the server time when this object was created."


@dataclass(frozen=True)
class Column:
    """One ``TableColumnDefinition``."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format, "description": self.description,
                "priority": self.priority}


Cells = Callable[[Mapping[str, Any], dt.datetime], list[Any]]


@dataclass(frozen=True)
class Printer:
    """The columns of a resource, how one object fills them, and the row's conditions (if any)."""

    columns: tuple[Column, ...]
    cells: Cells
    conditions: Callable[[Mapping[str, Any]], list[dict[str, Any]] | None] | None = None


# ---------------------------------------------------------------------------------------------- negotiation

def _media_types(accept: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for media in accept.split(","):
        kind, *params = (p.strip() for p in media.split(";"))
        found.append((kind.lower(), {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}))
    return found


def table_version(accept: str) -> str | None:
    """The ``meta.k8s.io`` Table version the Accept header prefers to plain JSON, or None."""
    for kind, params in _media_types(accept):
        if params.get("as") == "Table" and params.get("g") == TABLE_GROUP and params.get("v") in TABLE_VERSIONS \
                and kind in ("application/json", "*/*"):
            return params["v"]
        if kind in ("application/json", "application/*", "*/*") and "as" not in params:
            return None
    return None


def accepts_json(accept: str) -> bool:
    """Whether plain JSON objects are acceptable (an empty Accept accepts anything)."""
    if not accept.strip():
        return True
    return any(kind in ("application/json", "application/*", "*/*") and "as" not in params
               for kind, params in _media_types(accept))


# ---------------------------------------------------------------------------------------------- time

def human_duration(delta: dt.timedelta) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures (``45s``, ``3m5s``, ``4h12m``, ``9d``)."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(text: object) -> dt.datetime | None:
    """An RFC 3339 timestamp (``metav1.Time`` or ``MicroTime``), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def since(text: object, now: dt.datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when there is none."""
    when = parse_time(text)
    return "<unknown>" if when is None else human_duration(now - when)


# ---------------------------------------------------------------------------------------------- built-ins

def _d(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


NODE_COLUMNS = (
    Column("Name", format="name", description=NAME_DESCRIPTION),
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    Column("Age", description=AGE_DESCRIPTION),
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    Column("External-IP", priority=1, description="List of addresses reachable to the node."),
    Column("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release."),
    Column("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
    Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the node."),
)


def _node_roles(labels: Mapping[str, str]) -> list[str]:
    roles = {key.removeprefix("node-role.kubernetes.io/") for key in labels
             if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/"}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return sorted(roles)


def _node_address(status: Mapping[str, Any], kind: str) -> str:
    return next((str(a.get("address")) for a in _l(status.get("addresses")) if _d(a).get("type") == kind), "<none>")


def node_cells(node: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    """``printNode``: Ready/NotReady (Unknown without a Ready condition), SchedulingDisabled when cordoned."""
    status, info = _d(node.get("status")), _d(_d(node.get("status")).get("nodeInfo"))
    ready = next((c for c in _l(status.get("conditions")) if _d(c).get("type") == "Ready"), None)
    states = ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    if _d(node.get("spec")).get("unschedulable"):
        states.append("SchedulingDisabled")
    return [meta(node).get("name"), ",".join(states), ",".join(_node_roles(_d(meta(node).get("labels")))) or "<none>",
            since(meta(node).get("creationTimestamp"), now), info.get("kubeletVersion", ""),
            _node_address(status, "InternalIP"), _node_address(status, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


POD_COLUMNS = (
    Column("Name", format="name", description=NAME_DESCRIPTION),
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been restarted and when "
                                   "the last container in this pod has restarted."),
    Column("Age", description=AGE_DESCRIPTION),
    Column("IP", priority=1, description="IP address allocated to the pod."),
    Column("Node", priority=1, description="NodeName is a request to schedule this pod onto a specific node."),
    Column("Nominated Node", priority=1, description="nominatedNodeName is set only when this pod preempts other "
                                                     "pods on the node."),
    Column("Readiness Gates", priority=1, description="If specified, all readiness gates will be evaluated for pod "
                                                      "readiness."),
)


def _condition_true(conditions: list[Any], kind: str) -> bool:
    return any(_d(c).get("type") == kind and _d(c).get("status") == "True" for c in conditions)


def _terminated_reason(terminated: Mapping[str, Any], prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def pod_cells(pod: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    """``printPod``: READY ready/total, STATUS the reason a human reads (phase, a waiting or terminated
    container's reason, Init:..., Terminating), RESTARTS with the last one's age."""
    spec, status = _d(pod.get("spec")), _d(pod.get("status"))
    conditions = _l(status.get("conditions"))
    init_specs = {str(_d(c).get("name")): _d(c) for c in _l(spec.get("initContainers"))}
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total, ready = len(_l(spec.get("containers"))) + len(sidecars), 0
    reason = str(status.get("reason") or status.get("phase") or "")
    if any(_d(c).get("type") == "PodScheduled" and _d(c).get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"
    restarts, last_restart = 0, None
    sidecar_restarts, sidecar_last = 0, None

    def later(when: dt.datetime | None, terminated: Mapping[str, Any]) -> dt.datetime | None:
        finished = parse_time(terminated.get("finishedAt"))
        return finished if finished is not None and (when is None or finished > when) else when

    initializing = False
    init_statuses = _l(status.get("initContainerStatuses"))
    for index, container in enumerate(map(_d, init_statuses)):
        state, last = _d(container.get("state")), _d(_d(container.get("lastState")).get("terminated"))
        restarts += int(container.get("restartCount") or 0)
        last_restart = later(last_restart, last)
        if container.get("name") in sidecars:
            sidecar_restarts += int(container.get("restartCount") or 0)
            sidecar_last = later(sidecar_last, last)
        terminated, waiting = _d(state.get("terminated")), _d(state.get("waiting"))
        if state.get("terminated") is not None and terminated.get("exitCode", 0) == 0:
            continue
        if container.get("name") in sidecars and container.get("started"):
            ready += 1 if container.get("ready") else 0
            continue
        if state.get("terminated") is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart, running = sidecar_restarts, sidecar_last, False
        for container in map(_d, reversed(_l(status.get("containerStatuses")))):
            state, last = _d(container.get("state")), _d(_d(container.get("lastState")).get("terminated"))
            restarts += int(container.get("restartCount") or 0)
            last_restart = later(last_restart, last)
            terminated, waiting = _d(state.get("terminated")), _d(state.get("waiting"))
            if waiting.get("reason"):
                reason = str(waiting["reason"])
            elif state.get("terminated") is not None:
                reason = _terminated_reason(terminated)
            elif container.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"
    if meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    gates = [str(_d(g).get("conditionType")) for g in _l(spec.get("readinessGates"))]
    gates_text = "<none>"
    if gates:
        true = sum(1 for g in gates if next((_d(c).get("status") == "True" for c in conditions
                                              if _d(c).get("type") == g), False))
        gates_text = f"{true}/{len(gates)}"
    pod_ips = _l(status.get("podIPs"))
    pod_ip = _d(pod_ips[0]).get("ip") if pod_ips else ""
    return [meta(pod).get("name"), f"{ready}/{total}", reason, restarts_text,
            since(meta(pod).get("creationTimestamp"), now), pod_ip or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_text]


def pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A finished pod's row carries condition Completed (kubectl's ``--show-all`` filter reads it)."""
    phase = _d(pod.get("status")).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed "
                                                                                          "successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


NAMESPACE_COLUMNS = (
    Column("Name", format="name", description=NAME_DESCRIPTION),
    Column("Status", description="The status of the namespace"),
    Column("Age", description=AGE_DESCRIPTION),
)


def namespace_cells(namespace: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    return [meta(namespace).get("name"), _d(namespace.get("status")).get("phase", ""),
            since(meta(namespace).get("creationTimestamp"), now)]


EVENT_COLUMNS = (
    Column("Last Seen", description="The time at which the most recent occurrence of this event was recorded."),
    Column("Type", description="Type of this event (Normal, Warning), new types could be added in the future"),
    Column("Reason", description="This should be a short, machine understandable string that gives the reason for "
                                 "the transition into the object's current status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="The field of the object the event is about (fieldPath)."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the status of this operation."),
    Column("First Seen", priority=1, description="The time at which the event was first recorded."),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format="name", description=NAME_DESCRIPTION),
)


def event_cells(event: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    """``printEvent``: an events.k8s.io event (no firstTimestamp) is aged by its eventTime."""
    first = since(event.get("firstTimestamp") or event.get("eventTime"), now)
    last = since(event["lastTimestamp"], now) if event.get("lastTimestamp") else first
    count = event.get("count") or 1
    series = event.get("series")
    if isinstance(series, dict):
        last, count = since(series.get("lastObservedTime"), now), series.get("count") or count
    involved, source = _d(event.get("involvedObject")), _d(event.get("source"))
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return [last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {host}" if host else component, str(event.get("message") or "").strip(), first,
            int(count), meta(event).get("name")]


BUILT_IN: dict[tuple[str, str], Printer] = {
    ("", "nodes"): Printer(NODE_COLUMNS, node_cells),
    ("", "pods"): Printer(POD_COLUMNS, pod_cells, pod_conditions),
    ("", "namespaces"): Printer(NAMESPACE_COLUMNS, namespace_cells),
    ("", "events"): Printer(EVENT_COLUMNS, event_cells),
}


# ---------------------------------------------------------------------------------------------- custom resources

_SEGMENT = re.compile(r"\.((?:\\.|[^.\[\\])+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def json_path(obj: Any, path: str) -> list[Any] | None:
    """The value a CRD column's simple JSONPath (``.a.b``, ``\\.`` escapes, ``[0]``, ``['key']``) finds: ``[value]``,
    ``[]`` when a step is missing, None for a path this evaluator does not take."""
    position, current = 0, obj
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            return None
        position = match.end()
        field, index, key = match.groups()
        if index is not None:
            if not isinstance(current, list) or int(index) >= len(current):
                return []
            current = current[int(index)]
            continue
        name = key if key is not None else re.sub(r"\\(.)", r"\1", field)
        if not isinstance(current, dict) or name not in current:
            return []
        current = current[name]
    return [current]


def _go_text(value: Any) -> str:
    """How JSONPath prints a value: strings as they are, numbers and booleans as Go does, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _typed_cell(kind: str, value: Any, now: dt.datetime) -> Any:
    """``cellForJSONValue``: the value as the column's type, None (shown ``<none>``) when it is not of it."""
    if value is None:
        return None
    if kind == "string":
        return _go_text(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        when = parse_time(value)
        return "<invalid>" if when is None else human_duration(now - when)
    return None


DEFAULT_CRD_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


def crd_printer(printer_columns: Sequence[Mapping[str, Any]]) -> Printer:
    """Name, then the version's additionalPrinterColumns (Age when there are none)."""
    declared = list(printer_columns) or list(DEFAULT_CRD_COLUMNS)
    columns = (Column("Name", format="name", description=NAME_DESCRIPTION), *(
        Column(str(c.get("name", "")), str(c.get("type", "string")), str(c.get("description", "")),
               int(c.get("priority") or 0), str(c.get("format", ""))) for c in declared))

    def cells(obj: Mapping[str, Any], now: dt.datetime) -> list[Any]:
        row: list[Any] = [meta(obj).get("name")]
        for column in declared:
            found = json_path(obj, str(column.get("jsonPath", "")))
            row.append(_typed_cell(str(column.get("type", "string")), found[0], now) if found else None)
        return row

    return Printer(columns, cells)


def printer_for(rt: ResourceType) -> Printer | None:
    """How the server prints ``rt``: its CRD's columns, a built-in printer, or None (served as plain JSON)."""
    if rt.custom:
        return crd_printer(rt.printer_columns)
    return BUILT_IN.get(rt.group_plural)


# ---------------------------------------------------------------------------------------------- the Table

def row_object(obj: Mapping[str, Any], version: str, include: str | None) -> dict[str, Any] | None:
    """What a row carries (``includeObject``): the object's metadata by default, the object, or nothing."""
    if include == "None":
        return None
    if include == "Object":
        return dict(obj)
    return {"kind": "PartialObjectMetadata", "apiVersion": f"{TABLE_GROUP}/{version}", "metadata": meta(obj)}


def table(printer: Printer, objects: Sequence[Mapping[str, Any]], *, version: str, include: str | None,
          list_meta: Mapping[str, Any], headers: bool = True, now: dt.datetime | None = None) -> dict[str, Any]:
    """The ``Table`` of ``objects`` (one for a GET); ``list_meta``: resourceVersion, continue, remainingItemCount."""
    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer.cells(obj, now)}
        if printer.conditions is not None and (conditions := printer.conditions(obj)):
            row["conditions"] = conditions
        if (shown := row_object(obj, version, include)) is not None:
            row["object"] = shown
        rows.append(row)
    return {"kind": "Table", "apiVersion": f"{TABLE_GROUP}/{version}", "metadata": dict(list_meta),
            "columnDefinitions": [c.definition() for c in printer.columns] if headers else [], "rows": rows}
