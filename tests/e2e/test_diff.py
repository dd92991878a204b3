"""`ibconform diff` between a demo run with the fault and one without lists exactly the changed facts."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ibconform.twin import Twin
from tests.e2e.conftest import ibconform, run_suite

HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]


def _healthy_demo(tmp_path: Path) -> Path:
    text = (resources.files("ibconform.twin") / "scenarios" / "demo.yaml").read_text()
    head, _, _ = text.partition("    faults:")
    path = tmp_path / "demo-healthy.yaml"
    path.write_text(head)
    return path


def test_diff_of_the_power_cycle_lists_exactly_what_changed(tmp_path):
    runs = {}
    for name, scenario in (("before", "demo"), ("after", _healthy_demo(tmp_path))):
        with Twin(scenario, tmp_path / f"twin-{name}") as twin:
            runs[name] = run_suite(twin.inventory_path, tmp_path / name)
    assert (runs["before"].code, runs["after"].code) == (1, 0)
    proc = ibconform("diff", str(runs["before"].out / "bundle"), str(runs["after"].out / "bundle"),
                     "--html", str(tmp_path / "diff.html"))
    assert proc.returncode == 0, proc.stderr
    expected = set()
    for hca in HCAS:
        expected |= {f"dgx031 {hca} NUM_OF_VFS Current: 16 -> 8", f"dgx031 {hca} sriov_numvfs: 0 -> 8",
                     f"dgx031 {hca} sriov_totalvfs: 16 -> 8",
                     f"dgx031 allocatable nvidia.com/res{hca}: (absent) -> 8"}
    expected |= {
        "dgx031 Node sriovnetwork.openshift.io/state: Reboot_Required -> Idle",
        "dgx031 SriovNetworkNodeState syncStatus: InProgress -> Succeeded",
        "dgx031 SriovNetworkNodeState desired-state: Reboot_Required -> Idle",
        "dgx031 verdict verdict: fail -> pass",
        "dgx031 verdict root cause: firmware_vfs_committed -> none",
    }
    lines = proc.stdout.strip().splitlines()
    assert set(lines[:-1]) == expected
    assert lines[-1] == f"{len(expected)} changed facts"
    page = (tmp_path / "diff.html").read_text()
    assert f"{len(expected)} changed facts" in page and "Reboot_Required" in page


def test_diff_of_a_bundle_with_itself_is_empty(faults_run):
    bundle = str(faults_run.out / "bundle")
    proc = ibconform("diff", bundle, bundle)
    assert proc.returncode == 0 and proc.stdout.strip() == "0 changed facts"
