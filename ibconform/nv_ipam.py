"""Judgements on nv-ipam and the NicClusterPolicy that deploys it: pure functions over untrusted API JSON, each
returning why the object falls short (one line, no subject: the check names it) or None."""

from __future__ import annotations

from ibconform.cluster_facts import NCP_NAME, Image, pod_ready, pod_waiting_reason
from ibconform.inventory import Expect
from ibconform.untrusted import d, lst


def image_problem(expect: Expect, images: list[str]) -> str | None:
    """Why a pod's images differ from the expected nv-ipam image (its name; repository and tag only when the
    inventory pins them), or None."""
    if not images:
        return "container expected vs none in the pod spec: see what rewrote the pod (kubectl get pod -o yaml)"
    for ref in images:
        image = Image.parse(ref)
        if image.name != expect.ipam_image:
            return (f"image name expected {expect.ipam_image} vs {image.name} ({ref}): set NicClusterPolicy "
                    f"{NCP_NAME} spec.nvIpam.image to {expect.ipam_image}")
        if expect.ipam_repository and image.repository != expect.ipam_repository:
            return f"image repository expected {expect.ipam_repository} vs {image.repository} ({ref})"
        if expect.ipam_version and image.tag != expect.ipam_version:
            return f"image tag expected {expect.ipam_version} vs {image.tag} ({ref})"
    return None


def pod_problem(pod: dict) -> str | None:
    """Why a pod is not Running and Ready (with its waiting reason), or None."""
    phase = d(pod.get("status")).get("phase")
    if phase != "Running" or not pod_ready(pod):
        waiting = pod_waiting_reason(pod)
        return f"expected Running and Ready vs {phase}{f' ({waiting})' if waiting else ''}, ready {pod_ready(pod)}"
    return None


def policy_problem(policy: dict, expect: Expect, standalone: bool, ipam_namespace: str) -> str | None:
    """Why NicClusterPolicy ``nic-cluster-policy`` does not deploy nv-ipam as expected, or None: spec.nvIpam absent
    (unless nv-ipam runs on its own: ``standalone``), its image name, its state and the states not ready."""
    nv_ipam = d(d(policy.get("spec")).get("nvIpam"))
    if not nv_ipam and not standalone:
        return (f"spec.nvIpam expected vs absent, and no nv-ipam pods in namespace {ipam_namespace}: nv-ipam is "
                "not deployed — add spec.nvIpam (or set kubernetes.namespaces.nvIpam where it runs)")
    image = nv_ipam.get("image")
    if nv_ipam and image != expect.ipam_image:
        return (f"spec.nvIpam.image expected {expect.ipam_image} vs {image}: set it to {expect.ipam_image} (the image "
                "name of every release since 24.7)")
    status = d(policy.get("status"))
    state, reason = status.get("state"), status.get("reason")
    if state == "ready":
        return None
    failing = [f"{d(s).get('name')} {d(s).get('state')}" + (f": {why}" if (why := d(s).get("message") or d(s).get(
        "error")) else "") for s in lst(status.get("appliedStates")) if d(s).get("state") in ("notReady", "error")]
    return (f"state expected ready vs {state}{f' ({reason})' if reason else ''}: "
            + (f"{'; '.join(failing)}" if failing else "see its status.appliedStates"))
