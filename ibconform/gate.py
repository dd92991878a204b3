"""The CI gate: what to do to each node given its verdict — label it, release or hold it.

Passing nodes get ``KEY=passed``, lose the hold taint and are uncordoned; failing nodes get
``KEY=failed`` and a ``KEY=failed:NoSchedule`` taint. By default the commands are only printed
(kubectl), so a human or a pipeline can review them; ``--apply`` makes the same changes through the API.
"""

from __future__ import annotations

import re
import shlex

from kubernetes import client

from ibconform.errors import UsageError

_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
_KEY = re.compile(_PREFIX + r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise UsageError(f"--gate-label: expected a label key like ibconform.io/acceptance, got {key!r}")
    return key


def commands(verdicts: list[dict], key: str) -> list[str]:
    """The kubectl commands that gate each node (pure)."""
    lines = []
    for node in verdicts:
        name = shlex.quote(node["name"])
        if node["verdict"] == "pass":
            lines += [f"kubectl label node {name} {key}=passed --overwrite",
                      f"kubectl taint node {name} {key}:NoSchedule- || true",
                      f"kubectl uncordon {name}"]
        else:
            lines += [f"kubectl label node {name} {key}=failed --overwrite",
                      f"kubectl taint node {name} {key}=failed:NoSchedule --overwrite"]
    return lines


def apply(api: client.ApiClient, verdicts: list[dict], key: str) -> None:
    """Make the changes ``commands`` prints, through the API (one read and one patch per node)."""
    core = client.CoreV1Api(api)
    for node in verdicts:
        current = core.read_node(node["name"])
        taints = [t for t in (current.spec.taints or []) if t.key != key]
        passed = node["verdict"] == "pass"
        if not passed:
            taints.append(client.V1Taint(key=key, value="failed", effect="NoSchedule"))
        spec: dict = {"taints": [api.sanitize_for_serialization(t) for t in taints]}
        if passed:
            spec["unschedulable"] = False
        body = {"metadata": {"labels": {key: "passed" if passed else "failed"}}, "spec": spec}
        core.patch_node(node["name"], body)
