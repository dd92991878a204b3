"""Link 4 of the chain: the policies configure every HCA, and the device plugin advertises every resource they
define with the VFs they route to it (a resource may pool several PFs; a PF may be split into VF ranges).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform.cluster_facts import quantity

pytestmark = [pytest.mark.link("device-plugin"), pytest.mark.cluster_lists("nodes", "sriovnetworknodepolicies")]


def test_policy_matches_inventory(hca_resource):
    config = hca_resource.config()
    assert config is not None, (
        f"SriovNetworkNodePolicy for {hca_resource} expected vs none selecting it (nodeSelector + "
        "nicSelector: vendor, deviceID, pfNames, rootDevices): apply the HCA's policy or fix the inventory")
    wanted = hca_resource.node.node.expect.vfs_per_hca
    assert wanted is None or config.num_vfs == wanted, (
        f"policy {config.policy} numVfs for {hca_resource} expected {wanted} (inventory) vs {config.num_vfs}: "
        "the cluster's policy drifted from the inventory — fix one of them")
    link = hca_resource.node.node.expect.link_type
    assert config.link_type in (None, link), (
        f"policy {config.policy} linkType for {hca_resource} expected {link} vs {config.link_type}: fix the policy")


def test_resource_allocatable(resource):
    shares = resource.shares()
    expected = sum(shares.values())
    for field in ("allocatable", "capacity"):
        raw = resource.node.resources(field).get(resource.name)
        seen = quantity(raw)
        resource.node.cite(f"Node {resource.node} {field} {resource.name}: "
                           f"{seen if seen is not None or raw is None else repr(raw)}")
        if seen == expected:
            continue
        shown = seen if seen is not None else "absent" if raw is None else f"{raw!r} (not a count)"
        detail = f" ({resource.share_text(shares)})" if len(shares) > 1 else ""
        short = resource.short_pfs(shares)
        why = (f"{'; '.join(short)} in the kernel — the VFs are missing (see sriov_numvfs)" if short else
               resource.node.unmanaged() or "the device plugin does not advertise the VFs — check the node's sync "
               "state and the sriov-device-plugin pod on the node")
        raise AssertionError(f"{field} {resource.name} on {resource.node} expected {expected}{detail} vs {shown}: "
                             f"{why}")


def test_excluded_device_has_no_resource(excluded_resource):
    config = excluded_resource.config()
    assert config is None, (
        f"SriovNetworkNodePolicy selecting excluded {excluded_resource} expected none vs "
        f"{', '.join(config.selected_by)}: narrow the policy's nicSelector")
    iface = excluded_resource.device.iface
    if iface:
        resource = f"{excluded_resource.cluster.prefix}/res{iface}"
        seen = quantity(excluded_resource.node.resources("allocatable").get(resource))
        assert not seen, (
            f"allocatable {resource} on {excluded_resource.node} expected none vs {seen}: "
            "an excluded device is advertised — remove it from the device plugin's policies")
