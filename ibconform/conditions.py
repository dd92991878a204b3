"""Verdicts as Node conditions (``ibconform run --publish-conditions``): each judged node gets the condition
``InfiniBandSRIOVReady`` — True when every check passed, False with its root cause, Unknown when the node could
not be judged (unreachable, evidence missing) — so readiness tooling (Node Problem Detector dashboards, SIG
Node's node-readiness-controller, NVSentinel) can gate on it.

One strategic-merge PATCH of ``nodes/<name>/status`` per judged node (conditions merge by ``type``: the kubelet's
own are untouched); ``lastTransitionTime`` is kept while the status stays the same, read from the Node as the
run listed it (no extra read). Never with ``--read-only``; needs deploy/rbac/conditions.yaml.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from ibconform.collect.cluster import LIST_ERRORS, NODES, describe_error
from ibconform.untrusted import d, lst

CONDITION_TYPE = "InfiniBandSRIOVReady"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MESSAGE_CAP = 1024      # characters: a finding is one line; the whole evidence is in results.json
PARALLEL = 8            # patches in flight at once (far below the API's in-flight limit for one client)


def reason_of(name: str) -> str:
    """A condition reason in the API's CamelCase from a remediation id or check: ``firmware-change-pending`` ->
    ``FirmwareChangePending``."""
    words = [w for w in name.replace("_", "-").split("-") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Unknown"


def condition(verdict: dict, previous: dict | None, now: str) -> dict:
    """The condition for one node's verdict (a ``nodes[]`` entry of results.json); ``previous``: the Node's
    current condition of this type, if any."""
    root = verdict.get("root_cause")
    if root is None:
        status, reason, message = "True", "AllChecksPassed", "every ibconform check of the node passed"
    else:
        status = "Unknown" if root.get("outcome") == "error" else "False"
        reason = reason_of(str(root.get("remediation") or root.get("check") or ""))
        message = f"{root.get('check')}: {root.get('message') or ''}"
    kept = d(previous).get("lastTransitionTime") if d(previous).get("status") == status else None
    return {"type": CONDITION_TYPE, "status": status, "reason": reason, "message": message[:MESSAGE_CAP],
            "lastHeartbeatTime": now, "lastTransitionTime": kept or now}


def previous_conditions(nodes_list: dict | None) -> dict[str, dict]:
    """Node name -> its current condition of this type, from a List of Nodes (the bundle's)."""
    found = {}
    for node in lst(d(nodes_list).get("items")):
        name = d(d(node).get("metadata")).get("name")
        for cond in lst(d(d(node).get("status")).get("conditions")):
            if d(cond).get("type") == CONDITION_TYPE and isinstance(name, str):
                found[name] = d(cond)
    return found


def publish(api: client.ApiClient, verdicts: list[dict], nodes_list: dict | None, now: str) -> list[str]:
    """PATCH each judged node's condition; return one line per node that could not be patched."""
    core = client.CoreV1Api(api)
    previous = previous_conditions(nodes_list)

    def patch(verdict: dict) -> str | None:
        name = str(verdict["name"])
        body = {"status": {"conditions": [condition(verdict, previous.get(name), now)]}}
        try:
            core.patch_node_status(name, body, _content_type=STRATEGIC_MERGE, _preload_content=False,
                                   _request_timeout=getattr(api, "ibconform_timeout", 30.0)).drain_conn()
        except LIST_ERRORS as exc:  # one node's refusal never stops the others
            return f"{name}: " + describe_error(exc, "patch", NODES, None,
                                                grant="apply deploy/rbac/conditions.yaml")
        return None

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="conditions") as pool:
        return [line for line in pool.map(patch, verdicts) if line]
