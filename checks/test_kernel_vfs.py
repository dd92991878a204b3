"""Link 2 of the chain: the kernel created the expected VFs on each HCA's PF.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

pytestmark = pytest.mark.link("kernel")


def test_iface_is_expected_pci(hca):
    pci = hca.pci_of_iface()
    assert pci == hca.hca.pci, (
        f"{hca.hca.iface} expected on PCI {hca.hca.pci} vs {pci or 'no such interface'}: "
        "fix the inventory's HCA map (map by PCI address, never by mlx5 index)")


def test_sriov_numvfs(hca):
    numvfs = hca.sysfs_uint("sriov_numvfs")
    if numvfs == hca.expected_vfs:
        return
    what = "VFs not created" if not numvfs else "fewer VFs than asked" if numvfs < hca.expected_vfs else \
        "more VFs than asked"
    why = hca.node.unmanaged() or "check the SriovNetworkNodeState and the sriov-network-config-daemon log"
    raise AssertionError(f"sriov_numvfs on {hca} expected {hca.expected_vfs} vs {numvfs}: {what} — {why}")


def test_sriov_totalvfs_allows_expected(hca):
    total = hca.sysfs_uint("sriov_totalvfs")
    numvfs = hca.sysfs_uint("sriov_numvfs")
    assert hca.expected_vfs <= total and numvfs <= total, (
        f"sriov_totalvfs on {hca} expected >= {max(hca.expected_vfs, numvfs)} vs {total}: "
        "the active firmware NUM_OF_VFS is too low — set it and power-cycle the node")
