"""The operators' components, found by their pods' labels (never by pod name or namespace), and their versions.

Labels as the manifests set them: the SR-IOV Network Operator's (sriov-network-operator ``bindata/manifests``,
the Network Operator's Helm chart: operator pod ``name=sriov-network-operator``), the Network Operator's own
Deployment (``app.kubernetes.io/name=network-operator``; OpenShift's bundle ``control-plane=
nvidia-network-operator-controller``), nv-ipam deployed by the Network Operator (``manifests/state-nv-ipam-cni``:
``component``/``name`` nv-ipam-node, nv-ipam-controller) or standalone (nvidia-k8s-ipam ``deploy/``: its
kustomization's ``commonLabels: {app: nvidia-k8s-ipam}`` with ``name`` nv-ipam-node / controller). Pure functions
over untrusted JSON.
"""

from __future__ import annotations

import re

from ibconform.untrusted import d, lst

#: component -> label sets that identify its pods (a pod has one of them whole)
COMPONENT_LABELS: dict[str, tuple[dict[str, str], ...]] = {
    "network-operator": ({"app.kubernetes.io/name": "network-operator"},
                         {"control-plane": "nvidia-network-operator-controller"}),
    "sriov-network-operator": ({"name": "sriov-network-operator"},),
    "sriov-network-config-daemon": ({"app": "sriov-network-config-daemon"},),
    "sriov-device-plugin": ({"app": "sriov-device-plugin"},),
    "nv-ipam-node": ({"component": "nv-ipam-node"}, {"name": "nv-ipam-node"}),
    "nv-ipam-controller": ({"component": "nv-ipam-controller"}, {"name": "nv-ipam-controller"},
                           {"app": "nvidia-k8s-ipam", "name": "controller"}),
}
_RELEASE = re.compile(r"^(?:network-operator-)?v?(\d+)\.(\d+)(?:\.(\d+))?")


def component_of(pod: dict) -> str | None:
    """The component ``pod`` belongs to, by its labels; None for any other pod."""
    labels = d(d(pod.get("metadata")).get("labels"))
    return next((name for name, sets in COMPONENT_LABELS.items()
                 if any(all(labels.get(k) == v for k, v in wanted.items()) for wanted in sets)), None)


def by_component(pods: list[dict]) -> dict[str, list[dict]]:
    """The pods of each component (components without pods are absent)."""
    out: dict[str, list[dict]] = {}
    for pod in lst(pods):
        component = component_of(d(pod))
        if component is not None:
            out.setdefault(component, []).append(pod)
    return out


def images(pods: list[dict]) -> dict[str, list[str]]:
    """Each component's container images, sorted and each once: the operator versions a run saw."""
    out: dict[str, list[str]] = {}
    for component, members in by_component(pods).items():
        refs = {str(d(c).get("image")) for p in members for c in lst(d(p.get("spec")).get("containers"))
                if isinstance(d(c).get("image"), str)}
        out[component] = sorted(refs)
    return out


def release(image: str) -> tuple[int, int] | None:
    """The Network Operator release an image's tag names: ``...:network-operator-v24.1.0`` -> (24, 1),
    ``.../network-operator:v25.10.0`` -> (25, 10); None for tags that name none (``latest``, digests)."""
    ref = image.split("@", 1)[0]
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
    m = _RELEASE.match(tag)
    return (int(m[1]), int(m[2])) if m else None
