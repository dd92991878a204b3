"""Link 1 of the chain: the HCA firmware (NVRAM) is set for SR-IOV and the setting is active.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

pytestmark = pytest.mark.link("firmware")


def test_firmware_vfs_committed(hca):
    vfs = hca.param("NUM_OF_VFS")
    assert vfs.current == vfs.next_boot, (
        f"NUM_OF_VFS on {hca} Current {vfs.current} vs Next Boot {vfs.next_boot}: firmware change pending — "
        "power-cycle the node (cold reboot); a warm reboot does not apply NVRAM changes")


def _who_sets(hca) -> str:
    """Who sets the firmware: the operator, or (its mellanox plugin disabled) the admin."""
    if hca.node.operator_sets_firmware:
        return "the operator's mellanox plugin does"
    return ("yourself, with mstconfig: the operator's mellanox plugin is disabled (SriovOperatorConfig default "
            "spec.disablePlugins), it does not manage firmware")


def test_firmware_vfs_enough(hca):
    vfs = hca.param("NUM_OF_VFS")
    assert vfs.active is not None and vfs.active >= hca.expected_vfs, (
        f"NUM_OF_VFS on {hca} expected >= {hca.expected_vfs} vs {vfs.active}: "
        f"set NUM_OF_VFS={hca.expected_vfs} ({_who_sets(hca)}) and power-cycle the node")


def test_firmware_sriov_enabled(hca):
    sriov = hca.param("SRIOV_EN")
    assert sriov.active == 1, (
        f"SRIOV_EN on {hca} expected True(1) vs {sriov.active_text}: "
        f"enable SR-IOV in firmware (SRIOV_EN=1: {_who_sets(hca)}) and power-cycle the node")


def test_firmware_link_type(hca):
    name = hca.link_type_param   # each PF by its own port: a VPI card may run port 1 as ETH and port 2 as IB
    link = hca.param(name)
    wanted = {"IB": 1, "ETH": 2}[hca.expect.link_type]
    assert link.active == wanted, (
        f"{name} on {hca} expected {hca.expect.link_type}({wanted}) vs {link.active_text}: "
        f"set {name}={wanted} in firmware ({_who_sets(hca)}) and power-cycle the node, or fix expect.linkType")
