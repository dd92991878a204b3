"""How the SR-IOV Network Operator reports a node busy, in each generation of its state reporting.

Three generations (sriov-network-operator ``pkg/consts/constants.go``, ``pkg/daemon``, ``controllers/``):

- ``legacy`` (upstream up to v1.2, Network Operator 24.1 and earlier): the config daemon drains the node itself
  and says so only on the Node: annotation ``sriovnetwork.openshift.io/state`` Idle | Draining |
  Draining_MCP_Paused; the SriovNetworkNodeState carries no drain annotations;
- ``drain-controller`` (upstream v1.3+, Network Operator 24.4+): the daemon asks on the Node's ``state`` and
  the node state's ``desired-state`` (Idle | Drain_Required | Reboot_Required), the operator's drain controller
  answers in ``current-state`` (Idle | Draining | DrainComplete) and creates any of them missing as Idle;
- ``external-drainer`` (the node state annotated ``sriovnetwork.openshift.io/use-external-drainer: "true"``,
  Network Operator 25.10+ with the NVIDIA maintenance operator): the operator's drain controller leaves the node
  to the Network Operator's, which drains through a NodeMaintenance (maintenance.nvidia.com, named
  ``nvidia-operator-<node>``, deleted when done) and writes ``current-state`` DrainComplete once it is Ready.

A generation is judged only by the signals it writes: a legacy operator is never asked for a
``current-state`` it never sets. Pure functions over untrusted JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibconform import components
from ibconform.untrusted import d, lst

STATE_ANNOTATION = "sriovnetwork.openshift.io/state"
DESIRED_ANNOTATION = "sriovnetwork.openshift.io/desired-state"
CURRENT_ANNOTATION = "sriovnetwork.openshift.io/current-state"
EXTERNAL_DRAINER_ANNOTATION = "sriovnetwork.openshift.io/use-external-drainer"
IDLE = "Idle"
LEGACY, DRAIN_CONTROLLER, EXTERNAL_DRAINER = "legacy", "drain-controller", "external-drainer"


@dataclass(frozen=True)
class Generation:
    name: str
    evidence: str     # what showed it, for the report


def _annotations(obj: dict) -> dict:
    return d(d(obj.get("metadata")).get("annotations"))


def _sriov_release(images: dict[str, list[str]]) -> tuple[str, tuple[int, int]] | None:
    """("network-operator", (24, 1)) or ("upstream", (1, 2)) from the operator's or config daemon's image tags."""
    for component in ("sriov-network-config-daemon", "sriov-network-operator", "network-operator"):
        for image in images.get(component, []):
            found = components.release(image)
            if found is not None:
                return ("upstream" if found[0] < 20 else "network-operator"), found
    return None


def generation(node_states: list[dict], pods: list[dict]) -> Generation:
    """The cluster's generation of state reporting: from what its node states carry, else from the release its
    operator images name, else legacy (no node state carries a drain annotation)."""
    states = [s for s in lst(node_states) if isinstance(s, dict)]
    if any(_annotations(s).get(EXTERNAL_DRAINER_ANNOTATION) == "true" for s in states):
        return Generation(EXTERNAL_DRAINER, f"a SriovNetworkNodeState has {EXTERNAL_DRAINER_ANNOTATION}: true")
    if any(DESIRED_ANNOTATION in _annotations(s) or CURRENT_ANNOTATION in _annotations(s) for s in states):
        return Generation(DRAIN_CONTROLLER, "SriovNetworkNodeStates carry desired-state/current-state")
    found = _sriov_release(components.images(pods))
    if found is not None:
        line, (major, minor) = found
        newer = (major, minor) >= ((1, 3) if line == "upstream" else (24, 4))
        label = f"v{major}.{minor}" if line == "upstream" else f"Network Operator {major}.{minor}"
        return Generation(DRAIN_CONTROLLER if newer else LEGACY, f"operator images of {label}")
    return Generation(LEGACY, "no SriovNetworkNodeState carries a drain annotation, operator release unknown")


def maintenance_for(node: str, maintenances: list[dict] | None) -> list[dict]:
    """The NodeMaintenance objects for ``node`` (spec.nodeName)."""
    return [m for m in lst(maintenances) if d(d(m).get("spec")).get("nodeName") == node]


def maintenance_text(maintenance: dict) -> str:
    """A NodeMaintenance holds its node as long as it exists (its requestor deletes it when done): its name and
    where its drain is (the Ready condition's reason: Pending, Cordon, Draining, Ready...)."""
    ready = next((c for c in lst(d(maintenance.get("status")).get("conditions")) if d(c).get("type") == "Ready"),
                 None)
    return f"NodeMaintenance {d(maintenance.get('metadata')).get('name')} ({d(ready).get('reason') or 'Pending'})"


def busy(gen: Generation, node_obj: dict, state: dict, maintenances: list[dict]) -> dict[str, str]:
    """The signals of this generation that say the node is not idle: {signal: value} (empty: idle)."""
    seen: dict[str, str | None] = {"Node state": _annotations(node_obj).get(STATE_ANNOTATION)}
    if gen.name in (DRAIN_CONTROLLER, EXTERNAL_DRAINER):
        seen["desired-state"] = _annotations(state).get(DESIRED_ANNOTATION)
    current = _annotations(state).get(CURRENT_ANNOTATION)
    if gen.name == DRAIN_CONTROLLER or current is not None:   # an external drainer may leave it unset
        seen["current-state"] = current
    out = {k: str(v) for k, v in seen.items() if v != IDLE}
    if gen.name == EXTERNAL_DRAINER:
        held = [maintenance_text(d(m)) for m in maintenances]
        out |= {"held by": ", ".join(held)} if held else {}
    return out
