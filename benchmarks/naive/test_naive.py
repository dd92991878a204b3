"""The common approach, measured by ``benchmarks/fleet.py``: pytest-testinfra tests, one remote command per
check per HCA (and per excluded device), over every host given with ``--hosts``.

    pytest benchmarks/naive/test_naive.py -n 2 --hosts=paramiko://root@dgx001,paramiko://root@dgx002 \\
        --ssh-config=<ssh_config>

The device map is the benchmark twin's (``NAIVE_DEVICES``: JSON ``{"hcas": [{"iface", "pci"}], "excluded":
[{"pci"}]}``), else the DGX B200 map below; ``NAIVE_VFS`` is the VF count expected per HCA (default 8).
"""

from __future__ import annotations

import json
import os

import pytest

DGX_B200 = {
    "hcas": [{"iface": "ibp24s0", "pci": "0000:18:00.0"}, {"iface": "ibp64s0", "pci": "0000:40:00.0"},
             {"iface": "ibp79s0", "pci": "0000:4f:00.0"}, {"iface": "ibp94s0", "pci": "0000:5e:00.0"},
             {"iface": "ibp154s0", "pci": "0000:9a:00.0"}, {"iface": "ibp192s0", "pci": "0000:c0:00.0"},
             {"iface": "ibp206s0", "pci": "0000:ce:00.0"}, {"iface": "ibp220s0", "pci": "0000:dc:00.0"}],
    "excluded": [{"pci": "0000:29:00.0"}, {"pci": "0000:aa:00.0"}, {"pci": "0000:0e:00.0"}],
}
DEVICES = json.loads(os.environ["NAIVE_DEVICES"]) if os.environ.get("NAIVE_DEVICES") else DGX_B200
VFS = int(os.environ.get("NAIVE_VFS", "8"))
HCAS = [(h["iface"], h["pci"]) for h in DEVICES["hcas"]]
EXCLUDED = [d["pci"] for d in DEVICES["excluded"]]

per_hca = pytest.mark.parametrize(("iface", "pci"), HCAS, ids=[iface for iface, _ in HCAS])


def _mstconfig(host, pci: str) -> dict[str, tuple[str, str, str]]:
    out = host.check_output(f"mstconfig -d {pci} -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1")
    rows = {}
    for line in out.splitlines():
        words = line.lstrip("*").split()
        if len(words) == 4 and words[0] in ("NUM_OF_VFS", "SRIOV_EN", "LINK_TYPE_P1"):
            rows[words[0]] = (words[1], words[2], words[3])
    return rows


@per_hca
def test_firmware(host, iface, pci):
    fw = _mstconfig(host, pci)
    assert fw["NUM_OF_VFS"][1] == fw["NUM_OF_VFS"][2] == str(VFS), f"{iface} NUM_OF_VFS {fw['NUM_OF_VFS']}"
    assert fw["SRIOV_EN"][1] == "True(1)", f"{iface} SRIOV_EN {fw['SRIOV_EN']}"
    assert fw["LINK_TYPE_P1"][1] == "IB(1)", f"{iface} LINK_TYPE_P1 {fw['LINK_TYPE_P1']}"


@per_hca
def test_sriov_numvfs(host, iface, pci):
    assert host.file(f"/sys/class/net/{iface}/device/sriov_numvfs").content_string.strip() == str(VFS)


@per_hca
def test_sriov_totalvfs(host, iface, pci):
    assert int(host.file(f"/sys/class/net/{iface}/device/sriov_totalvfs").content_string) >= VFS


@per_hca
def test_port_state(host, iface, pci):
    assert "ACTIVE" in host.check_output(f"cat /sys/class/net/{iface}/device/infiniband/*/ports/1/state")


@per_hca
def test_port_rate(host, iface, pci):
    assert host.check_output(f"cat /sys/class/net/{iface}/device/infiniband/*/ports/1/rate").startswith("400")


@per_hca
def test_link_layer(host, iface, pci):
    assert host.check_output(f"cat /sys/class/net/{iface}/device/infiniband/*/ports/1/link_layer") == "InfiniBand"


@pytest.mark.parametrize("pci", EXCLUDED)
def test_excluded_has_no_vfs(host, pci):
    assert host.file(f"/sys/bus/pci/devices/{pci}/sriov_numvfs").content_string.strip() == "0"
