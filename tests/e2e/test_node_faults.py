"""The node half end to end: the real suite, over real SSH, against the `faults` twin.

For each injected fault: exactly which node-side checks fail on which node/HCA, with which message;
the healthy node passes every node-side check.
"""

from __future__ import annotations

import json
import re
import shutil

from tests.e2e.conftest import ibconform
from tests.e2e.test_vf_faults import VF_CHECKS

HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
NODE_CHECKS = {
    "firmware_vfs_committed", "firmware_vfs_enough", "firmware_sriov_enabled", "firmware_link_type",
    "iface_is_expected_pci", "sriov_numvfs", "sriov_totalvfs_allows_expected", "excluded_device_has_no_vfs",
    "ib_port_active", "firmware_version_consistent", "node_identity",
}
#: Every check judged from the node's own evidence: these and the VFs' (tests/e2e/test_vf_faults.py)
NODE_SIDE = NODE_CHECKS | VF_CHECKS
FIRMWARE = ["firmware_vfs_committed", "firmware_vfs_enough", "firmware_sriov_enabled", "firmware_link_type"]
PER_HCA = ["firmware_vfs_committed", "firmware_vfs_enough", "firmware_sriov_enabled", "firmware_link_type",
           "iface_is_expected_pci", "sriov_numvfs", "sriov_totalvfs_allows_expected", "ib_port_active"]
EXCLUDED = ["ibs14f0", "ibs14f1", "ibs14f2", "ibs14f3", "ibp41s0f0", "ibp170s0f0"]


def _unreachable(node: str, reason: str) -> dict:
    expected = {f"test_{c}[{node}-{h}]": ("error", reason) for c in PER_HCA for h in HCAS}
    expected |= {f"test_excluded_device_has_no_vfs[{node}-{d}]": ("error", reason) for d in EXCLUDED}
    expected |= {f"test_{c}[{node}]": ("error", reason) for c in ("firmware_version_consistent", "node_identity")}
    return expected


# node -> {item id: (outcome, regex the message must match)}
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "dgx001": {},
    "dgx002": {
        **{f"test_firmware_vfs_committed[dgx002-{h}]": (
            "failed", rf"^NUM_OF_VFS on {h} \(0000:..:00\.0\) Current 16 vs Next Boot 8: firmware change pending — "
                      r"power-cycle the node \(cold reboot\); a warm reboot does not apply NVRAM changes$") for h in HCAS},
        **{f"test_sriov_numvfs[dgx002-{h}]": ("failed", rf"^sriov_numvfs on {h} .* expected 8 vs 0: VFs not created")
           for h in HCAS},
    },
    "dgx003": {f"test_{c}[dgx003-{h}]": (
        "failed", r"^mstconfig -d 0000:..:00\.0 failed \(exit 3\): Error when trying to check if NV access registers "
                  r"are supported: .*kernel lockdown") for c in FIRMWARE for h in HCAS},
    "dgx004": {"test_sriov_numvfs[dgx004-ibp64s0]": ("failed", r"^sriov_numvfs on ibp64s0 \(0000:40:00\.0\) expected 8 vs 0")},
    "dgx005": {"test_excluded_device_has_no_vfs[dgx005-ibp41s0f0]": (
        "failed", r"^sriov_numvfs on excluded ibp41s0f0 \(BlueField-3 DPU\) expected 0 vs 8: find what enables VFs .* set sriov_numvfs to 0$")},
    "dgx006": {"test_ib_port_active[dgx006-ibp220s0]": (
        "failed", r"^IB port mlx5_15/1 of ibp220s0 \(0000:dc:00\.0\) expected ACTIVE vs DOWN: check the cable")},
    "dgx007": _unreachable("dgx007", r"^dgx007 unreachable: ssh 127\.\d+\.\d+\.7:22: connection refused$"),
    "dgx008": _unreachable("dgx008", r"^dgx008 unreachable: ssh 127\.\d+\.\d+\.8:22: no SSH banner within 3 s"),
    "dgx009": {},
    "dgx010": {f"test_{c}[dgx010-ibp24s0]": (
        "failed", r"^mstconfig -d 0000:18:00\.0 did not answer within the mstconfig timeout") for c in FIRMWARE},
    "dgx011": {f"test_{c}[dgx011-ibp94s0]": (
        "failed", r"^mstconfig -d 0000:5e:00\.0 failed \(exit 3\): Failed to open the device: ") for c in FIRMWARE},
    "dgx012": {"test_ib_port_active[dgx012-ibp154s0]": (
        "failed", r"^IB port mlx5_10/1 of ibp154s0 \(0000:9a:00\.0\) expected 400 Gb/s vs 200\.0 Gb/s")},
    "dgx013": {"test_firmware_version_consistent[dgx013]": (
        "failed", r"^firmware version on dgx013 expected one across HCAs vs 2 \(28\.39\.1002 on ibp192s0; "
                  r"28\.41\.1000 on 7 HCAs\)")},
    "dgx014": {
        "test_firmware_sriov_enabled[dgx014-ibp206s0]": ("failed", r"^SRIOV_EN on ibp206s0 .* expected True\(1\) vs False\(0\)"),
        "test_sriov_numvfs[dgx014-ibp206s0]": ("failed", r"expected 8 vs 0"),
        "test_sriov_totalvfs_allows_expected[dgx014-ibp206s0]": ("failed", r"^sriov_totalvfs on ibp206s0 .* expected >= 8 vs 0"),
    },
    "dgx015": {
        "test_firmware_link_type[dgx015-ibp79s0]": (
            "failed", r"^LINK_TYPE_P1 on ibp79s0 \(0000:4f:00\.0\) expected IB\(1\) vs ETH\(2\)"),
        "test_ib_port_active[dgx015-ibp79s0]": (            # the port runs Ethernet: its link layer says so
            "failed", r"^IB port mlx5_8/1 of ibp79s0 \(0000:4f:00\.0\) link layer expected InfiniBand vs Ethernet"),
    },
    # Kubernetes-side faults (tests/e2e/test_cluster_faults.py): the hardware of these nodes is healthy
    **{node: {} for node in ("dgx016", "dgx017", "dgx018", "dgx019", "dgx020")},
    # VF faults (tests/e2e/test_vf_faults.py): the PFs of these nodes are healthy
    **{f"dgx{i:03d}": {} for i in range(21, 27)},
    # in-pod faults (tests/e2e/test_probe_levels.py): the hardware of these nodes is healthy
    **{f"dgx{i:03d}": {} for i in range(27, 34)},
}


def test_every_twin_node_is_covered(faults_twin):
    assert set(EXPECTED) == set(faults_twin.addresses)


def test_each_fault_fails_exactly_its_checks(faults_run):
    for node, expected in EXPECTED.items():
        seen = faults_run.not_passed(node, NODE_CHECKS)
        assert set(seen) == set(expected), f"{node}: unexpected {sorted(set(seen) - set(expected))}, " \
                                           f"missing {sorted(set(expected) - set(seen))}"
        for item, (outcome, pattern) in expected.items():
            result = seen[item]
            assert result["outcome"] == outcome, f"{item}: {result}"
            assert re.search(pattern, result["message"]), f"{item}: {result['message']!r} !~ {pattern!r}"


def test_failures_carry_evidence_and_remediation(faults_run):
    pending = faults_run.results["test_firmware_vfs_committed[dgx002-ibp24s0]"]
    assert any("NUM_OF_VFS" in e and "16" in e for e in pending["evidence"])
    assert pending["remediation"]["id"] == "firmware-change-pending"
    assert "warm reboot" in pending["remediation"]["action"]
    nv = faults_run.results["test_firmware_vfs_committed[dgx003-ibp24s0]"]
    assert nv["remediation"]["id"] == "mstconfig-nv-access"
    assert faults_run.results["test_node_identity[dgx007]"]["remediation"]["id"] == "node-unreachable"


def test_run_exits_1_and_writes_every_artefact(faults_run):
    assert faults_run.code == 1, faults_run.stderr
    for name in ("report.html", "junit.xml", "results.json", "bundle/manifest.json", "bundle/inventory.yaml",
                 "bundle/nodes/dgx001/status.json", "bundle/nodes/dgx001/mstconfig/0000:18:00.0.out",
                 "bundle/nodes/dgx001/sysfs/class/net/ibp24s0/device/sriov_numvfs"):
        assert (faults_run.out / name).is_file(), name
    assert "Traceback" not in faults_run.stderr


def test_evaluate_on_a_copied_bundle_gives_the_live_results(faults_run, tmp_path):
    copy = tmp_path / "bundle-copy"
    shutil.copytree(faults_run.out / "bundle", copy)
    proc = ibconform("evaluate", str(copy), "--out", str(tmp_path / "re"))
    assert proc.returncode == faults_run.code, proc.stderr
    again = {r["id"]: r for r in json.loads((tmp_path / "re" / "results.json").read_text())["results"]}
    assert again == faults_run.results


def test_evaluate_with_xdist_workers_gives_the_same_results_in_the_same_order(faults_run, tmp_path):
    proc = ibconform("evaluate", str(faults_run.out / "bundle"), "--out", str(tmp_path / "xdist"), "--workers", "2")
    assert proc.returncode == faults_run.code, proc.stderr
    serial = json.loads((faults_run.out / "results.json").read_text())["results"]
    assert json.loads((tmp_path / "xdist" / "results.json").read_text())["results"] == serial
