"""Link 5 of the chain: nv-ipam runs with the right image and has addresses for every node.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform import nv_ipam
from ibconform.cluster_facts import NCP_NAME, name_of, pod_images

pytestmark = [pytest.mark.link("ipam"), pytest.mark.cluster_lists("nodes", "pods", "ippools", "nicclusterpolicies")]


def test_ipam_node_pod(node_object):
    pods = node_object.ipam_node_pods()
    assert pods, (f"nv-ipam node pod on {node_object} expected vs none: check the nv-ipam-node DaemonSet "
                  "(NicClusterPolicy spec.nvIpam) and the node's taints")
    expect = node_object.node.expect
    for pod in pods:
        image = nv_ipam.image_problem(expect, pod_images(pod))
        assert image is None, f"nv-ipam node pod {name_of(pod)} on {node_object} {image}"
        state = nv_ipam.pod_problem(pod)
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
        image = nv_ipam.image_problem(expect, pod_images(pod))
        assert image is None, f"nv-ipam controller pod {name_of(pod)} {image}"
        state = nv_ipam.pod_problem(pod)
        assert state is None, f"nv-ipam controller pod {name_of(pod)} {state}: kubectl describe pod {name_of(pod)}"


def test_nicclusterpolicy_ready(cluster):
    policy = cluster.nic_cluster_policy
    standalone = bool(cluster.ipam_pods("nv-ipam-node"))       # nv-ipam may run without NicClusterPolicy's help
    problem = nv_ipam.policy_problem(policy, cluster.bundle.inventory.model.expect, standalone, cluster.ipam_namespace)
    assert problem is None, f"NicClusterPolicy {NCP_NAME} {problem}"
