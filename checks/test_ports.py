"""IB ports are up at the expected rate, and HCAs run one firmware version.

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest


@pytest.mark.link("ports")
def test_ib_port_active(hca):
    ports = hca.ports()
    assert ports, f"IB port of {hca} expected {hca.expect.port_state} vs no port in sysfs: check the mlx5 driver"
    layer = {"IB": "InfiniBand", "ETH": "Ethernet"}[hca.expect.link_type]
    for port in ports:
        assert port.link_layer in (None, layer), (
            f"IB port {port.rdma_device}/{port.number} of {hca} link layer expected {layer} vs {port.link_layer}: "
            f"the port runs the other protocol — set the firmware's {hca.link_type_param} and power-cycle the node")
        state = port.state.name if port.state else "unreadable"
        assert state == hca.expect.port_state, (
            f"IB port {port.rdma_device}/{port.number} of {hca} expected {hca.expect.port_state} vs {state}: "
            "check the cable, the switch port and the subnet manager")
        rate = port.rate.gbps if port.rate else None
        assert hca.expect.port_rate is None or rate == hca.expect.port_rate, (
            f"IB port {port.rdma_device}/{port.number} of {hca} expected {hca.expect.port_rate} Gb/s vs "
            f"{rate if rate is not None else 'unreadable'} Gb/s: check the cable and the switch port speed")


@pytest.mark.link("firmware")
def test_firmware_version_consistent(node):
    versions = {}
    for hca in node.hcas:
        versions.update({f"{hca.hca.iface}": v for v in hca.fw_versions().values()})
    by_version: dict[str, list[str]] = {}
    for iface, version in sorted(versions.items()):
        by_version.setdefault(version, []).append(iface)
    assert len(by_version) <= 1, (
        f"firmware version on {node.node.name} expected one across HCAs vs {len(by_version)} ("
        + "; ".join(f"{v} on {', '.join(ifaces) if len(ifaces) < 3 else f'{len(ifaces)} HCAs'}"
                    for v, ifaces in sorted(by_version.items(), key=lambda kv: len(kv[1])))
        + "): update every HCA to one release")


@pytest.mark.link("node")
def test_node_identity(node):
    identity = node.identity()
    assert identity.problem is None, (
        f"{identity.problem}: the node's address leads to another host — fix ssh_config/DNS before trusting any "
        "result for this node")
