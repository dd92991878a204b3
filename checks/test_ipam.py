"""Link 5 of the chain: nv-ipam runs with the right image and has addresses for every node.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.cluster_facts import NCP_NAME, Image, name_of, pod_images, pod_ready, pod_waiting_reason
from ibconform.untrusted import d

pytestmark = [pytest.mark.link("ipam"), pytest.mark.cluster_lists("nodes", "pods", "ippools", "nicclusterpolicies")]


def _image_problem(expect, images: list[str]) -> str | None:
    """Why the images differ from the expected nv-ipam image, or None."""
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


def _pod_problem(pod: dict) -> str | None:
    phase = d(pod.get("status")).get("phase")
    if phase != "Running" or not pod_ready(pod):
        waiting = pod_waiting_reason(pod)
        return f"expected Running and Ready vs {phase}{f' ({waiting})' if waiting else ''}, ready {pod_ready(pod)}"
    return None


def test_ipam_node_pod(node_object):
    pods = node_object.ipam_node_pods()
    assert pods, (f"nv-ipam node pod on {node_object} expected vs none: check the nv-ipam-node DaemonSet "
                  "(NicClusterPolicy spec.nvIpam) and the node's taints")
    expect = node_object.node.expect
    for pod in pods:
        image = _image_problem(expect, pod_images(pod))
        assert image is None, f"nv-ipam node pod {name_of(pod)} on {node_object} {image}"
        state = _pod_problem(pod)
        assert state is None, (f"nv-ipam node pod {name_of(pod)} on {node_object} {state}: "
                               f"kubectl describe pod {name_of(pod)} for the reason")


def test_ipam_pool_allocation(node_object):
    pools = node_object.pools()
    assert pools, (f"nv-ipam pool for {node_object} expected vs none: create an IPPool or CIDRPool whose "
                   "nodeSelector selects the node, named by the SriovIBNetworks' ipam poolName")
    for use in pools:
        assert use.pool is not None, (
            f"{use} expected in namespace {node_object.cluster.ipam_namespace} vs absent: create it, or fix the "
            "network's ipam poolName / poolType")
        assert use.selects_node, (f"{use} nodeSelector expected to select {node_object} vs not: widen the pool's "
                                  "nodeSelector (or the node's labels)")
        assert use.allocation, (f"{use} allocation for {node_object} expected vs none: check the nv-ipam-controller "
                                f"log and the pool's events (exhausted? its size vs {use.block_field})")


def test_ipam_controller(cluster):
    pods = cluster.ipam_pods("nv-ipam-controller")
    assert pods, "nv-ipam controller pods expected vs none: check NicClusterPolicy spec.nvIpam"
    expect = cluster.bundle.inventory.model.expect
    for pod in pods:
        image = _image_problem(expect, pod_images(pod))
        assert image is None, f"nv-ipam controller pod {name_of(pod)} {image}"
        state = _pod_problem(pod)
        assert state is None, f"nv-ipam controller pod {name_of(pod)} {state}: kubectl describe pod {name_of(pod)}"


def test_nicclusterpolicy_ready(cluster):
    policy = cluster.nic_cluster_policy
    expect = cluster.bundle.inventory.model.expect
    nv_ipam = d(d(policy.get("spec")).get("nvIpam"))
    standalone = not nv_ipam and cluster.ipam_pods("nv-ipam-node")   # nv-ipam installed on its own, not by NCP
    assert nv_ipam or standalone, (
        f"NicClusterPolicy {NCP_NAME} spec.nvIpam expected vs absent, and no nv-ipam pods in namespace "
        f"{cluster.ipam_namespace}: nv-ipam is not deployed — add spec.nvIpam (or set kubernetes.namespaces.nvIpam "
        "where it runs)")
    if nv_ipam:
        image = str(nv_ipam.get("image"))
        assert image == expect.ipam_image, (
            f"NicClusterPolicy {NCP_NAME} spec.nvIpam.image expected {expect.ipam_image} vs {image}: "
            f"set it to {expect.ipam_image} (the image name of every release since 24.7)")
    status = d(policy.get("status"))
    state, reason = status.get("state"), status.get("reason")
    assert state == "ready", (
        f"NicClusterPolicy {NCP_NAME} state expected ready vs {state}{f' ({reason})' if reason else ''}: "
        "see its status.appliedStates")
