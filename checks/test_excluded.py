"""Devices the inventory excludes (BlueField-3 DPUs, internal mezz ports) carry no VFs.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

pytestmark = pytest.mark.link("kernel")


def test_excluded_device_has_no_vfs(excluded):
    numvfs = excluded.sriov_numvfs()
    assert not numvfs, (
        f"sriov_numvfs on excluded {excluded} expected 0 vs {numvfs}: find what enables VFs on a device that "
        "must carry none (a SriovNetworkNodePolicy selecting it, a boot script) and set sriov_numvfs to 0")
