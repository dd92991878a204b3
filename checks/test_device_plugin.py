"""Link 4 of the chain: the device plugin advertises every HCA's VFs as a node resource.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.cluster_facts import quantity

pytestmark = [pytest.mark.link("device-plugin"), pytest.mark.cluster_lists("nodes", "sriovnetworknodepolicies")]


def test_policy_matches_inventory(hca_resource):
    matches = hca_resource.policies()
    assert matches, (
        f"SriovNetworkNodePolicy for {hca_resource} expected vs none selecting it (nodeSelector + "
        "pfNames/rootDevices): apply the HCA's policy or fix the inventory")
    wanted = hca_resource.node.node.expect.vfs_per_hca
    top = matches[0]
    assert wanted is None or top.num_vfs == wanted, (
        f"policy {top.name} numVfs for {hca_resource} expected {wanted} (inventory) vs {top.num_vfs}: "
        "the cluster's policy drifted from the inventory — fix one of them")
    link = hca_resource.node.node.expect.link_type
    assert top.link_type in (None, link), (
        f"policy {top.name} linkType for {hca_resource} expected {link} vs {top.link_type}: fix the policy")


def test_resource_allocatable(hca_resource):
    expected = hca_resource.expected_vfs()
    for resource in hca_resource.resource_names():
        for field in ("allocatable", "capacity"):
            raw = hca_resource.node.resources(field).get(resource)
            seen = quantity(raw)
            hca_resource.node.cite(f"Node {hca_resource.node} {field} {resource}: "
                                   f"{seen if seen is not None or raw is None else repr(raw)}")
            shown = seen if seen is not None else "absent" if raw is None else f"{raw!r} (not a count)"
            assert seen == expected, (
                f"{field} {resource} on {hca_resource.node} expected {expected} vs {shown}: the device plugin does "
                "not advertise the VFs — check the node's sync state and the sriov-device-plugin pod on the node")


def test_excluded_device_has_no_resource(excluded_resource):
    matches = excluded_resource.policies()
    assert not matches, (
        f"SriovNetworkNodePolicy selecting excluded {excluded_resource} expected none vs "
        f"{', '.join(m.name for m in matches)}: narrow the policy's nicSelector")
    iface = excluded_resource.device.iface
    if iface:
        resource = f"{excluded_resource.cluster.prefix}/res{iface}"
        seen = quantity(excluded_resource.node.resources("allocatable").get(resource))
        assert not seen, (
            f"allocatable {resource} on {excluded_resource.node} expected none vs {seen}: "
            "an excluded device is advertised — remove it from the device plugin's policies")
