"""The probe levels on the twin, with the real CLI: start (networks attached), rdma (verbs usable in the pod), nccl
(all_reduce_perf over the VFs). Per in-pod fault of the faults scenario (dgx027 on), which checks fail with which
message and which root cause; healthy nodes pass at every level and prove it; no probe pod is left at any level,
nor after SIGINT; --read-only sends no write.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ibconform.collect.probes import PROBE_SELECTOR
from ibconform.twin import Twin
from tests.e2e.conftest import Run, run_suite

pytestmark = pytest.mark.e2e

LEVELS = ("schedule", "start", "rdma", "nccl")
#: The chain's links a probe proves: every check of them, per node.
PROBE_CHECKS = {"probe_scheduled", "attach_network_defined", "attach_sandbox_created", "attach_networks_attached",
                "attach_address_in_pool", "attach_vf_of_pf", "rdma_uverbs", "rdma_port_active", "rdma_memlock",
                "rdma_ipc_lock", "nccl_transport_ib", "nccl_gdr", "nccl_bus_bandwidth"}

# node: (root link, root check, message pattern, remediation id, the checks that fail after it)
FAULTS = {
    "dgx027": ("attach", "attach_network_defined",
               r"NetworkAttachmentDefinition default/ibnet-ibp154s0 expected vs absent \(probe pod ",
               "network-attachment-missing", {"attach_networks_attached"}),
    "dgx028": ("attach", "attach_sandbox_created",
               r'CNI ADD failed: network "default/ibnet-ibp24s0": infiniBand SRI-OV CNI failed to configure VF '
               r'"VF ibp24s0v0 GUID is not valid"', "vf-guid-invalid", {"attach_networks_attached"}),
    "dgx029": ("rdma", "rdma_uverbs", r"a uverbs node per VF expected vs mlx5_\d+ has no /dev/infiniband/uverbs node",
               "rdma-no-uverbs", {"rdma_port_active", "nccl_transport_ib", "nccl_gdr", "nccl_bus_bandwidth"}),
    "dgx030": ("rdma", "rdma_memlock", r"Max locked memory expected unlimited vs 65536 bytes \(unlimited expected\)",
               "rdma-memlock-low", set()),
    "dgx031": ("nccl", "nccl_gdr", r"GPUDirect RDMA expected vs GPU Direct RDMA Disabled for HCA 0 'mlx5_\d+'",
               "nccl-gdr-disabled", {"nccl_bus_bandwidth"}),
    "dgx032": ("nccl", "nccl_transport_ib", r"NCCL over NET/IB expected vs NET/Socket over eth0 \(NET/IB : No device "
               r"found\)", "nccl-socket-fallback", {"nccl_gdr", "nccl_bus_bandwidth"}),
    "dgx033": ("nccl", "nccl_bus_bandwidth", r"Avg bus bandwidth expected >= 40 GB/s vs 22\.65 GB/s \(exit 0\)",
               "nccl-bandwidth-low", set()),
}
HEALTHY = ("dgx001", "dgx009", "dgx016")


def _at_level(inventory: Path, level: str, out: Path) -> Path:
    document = yaml.safe_load(inventory.read_text())
    document["probe"]["level"] = level
    path = out / f"inventory-{level}.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def _verdicts(run: Run) -> dict[str, dict]:
    return {n["name"]: n for n in json.loads((run.out / "results.json").read_text())["nodes"]}


@pytest.fixture(scope="module")
def faults_nccl(faults_twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The faults twin probed to level nccl."""
    tmp = tmp_path_factory.mktemp("nccl")
    run = run_suite(_at_level(faults_twin.inventory_path, "nccl", tmp), tmp / "out")
    run.left = faults_twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)
    return run


@pytest.fixture(scope="module")
def demo_levels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The demo twin (one healthy node, one with firmware pending) run at every level, then --read-only."""
    tmp = tmp_path_factory.mktemp("levels")
    runs = {}
    with Twin("demo", tmp / "twin") as twin:
        for level in LEVELS:
            runs[level] = run_suite(_at_level(twin.inventory_path, level, tmp), tmp / level)
            runs[level].left = twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)
        runs["read-only"] = run_suite(_at_level(twin.inventory_path, "nccl", tmp / "ro"), tmp / "read-only",
                                      "--read-only")
        runs["read-only"].left = twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)
    return runs


@pytest.mark.parametrize("node", sorted(FAULTS))
def test_each_in_pod_fault_fails_its_checks_with_its_cause(faults_nccl, node):
    link, check, pattern, remedy, downstream = FAULTS[node]
    root = _verdicts(faults_nccl)[node]["root_cause"]
    assert (root["link"], root["check"], root["remediation"]) == (link, check, remedy), root
    assert re.search(pattern, root["message"]), root["message"]
    failing = {r["check"] for r in faults_nccl.not_passed(node).values() if r["outcome"] in ("failed", "error")}
    assert failing == {check} | downstream, failing


def test_a_zero_vf_guid_explains_the_cni_failure_after_it(faults_nccl):
    # dgx021: VF 0 of ibp64s0 has no GUID; the probe is given that VF and ib-sriov-cni refuses it at CNI ADD
    verdict = _verdicts(faults_nccl)["dgx021"]
    assert (verdict["root_cause"]["link"], verdict["root_cause"]["check"]) == ("vfs", "vf_guids_set"), verdict
    sandbox = faults_nccl.results["test_attach_sandbox_created[dgx021]"]
    assert sandbox["outcome"] == "failed" and re.search(r'network "default/ibnet-ibp64s0": infiniBand SRI-OV CNI '
                                                        r'failed to configure VF "VF ibp64s0v0 GUID is not valid"',
                                                        sandbox["message"]), sandbox["message"]
    assert "test_attach_sandbox_created[dgx021]" in verdict["consequences"]


def test_healthy_nodes_prove_nccl_at_the_bandwidth_their_ports_give(faults_nccl):
    verdicts = _verdicts(faults_nccl)
    for node in HEALTHY:
        assert faults_nccl.not_passed(node, PROBE_CHECKS) == {}, node
        assert (verdicts[node]["verdict"], verdicts[node]["level"]) == ("pass", "nccl"), verdicts[node]
        assert verdicts[node]["nccl_bus_bandwidth"] == pytest.approx(45.3, abs=0.1)
    # a port at half its rate halves the ring: the ports link explains the bandwidth
    slow = verdicts["dgx012"]
    assert slow["root_cause"]["check"] == "ib_port_active" and slow["nccl_bus_bandwidth"] == pytest.approx(22.65)
    assert "test_nccl_bus_bandwidth[dgx012]" in slow["consequences"]
    assert faults_nccl.left == []


def test_the_report_shows_the_level_and_bandwidth_per_node(faults_nccl):
    page = (faults_nccl.out / "report.html").read_text()
    assert "NCCL bus bandwidth" in page and "45.3" in page
    assert re.search(r"dgx001.{0,400}nccl", page, re.S)


def test_every_level_passes_on_the_healthy_node_and_leaves_no_pod(demo_levels):
    for level in LEVELS:
        run = demo_levels[level]
        verdict = _verdicts(run)["dgx030"]
        assert (verdict["verdict"], verdict["level"]) == ("pass", level), (level, verdict)
        assert run.not_passed("dgx030", PROBE_CHECKS) == {}, level
        # the checks of the levels above the run's are skipped, saying so; every other check passed
        skipped = [r for r in run.results.values() if r["node"] == "dgx030" and r["outcome"] == "skipped"]
        assert {r["link"] for r in skipped} == set(("attach", "rdma", "nccl")[LEVELS.index(level):]), level
        assert all(r["message"].startswith(f"probe.level {level}: ") for r in skipped), level
        assert run.left == [], level
        assert "Warning" not in (run.out / "evaluation.log").read_text(), level
    assert f"dgx030: PASS (level nccl proven, NCCL bus bandwidth {45.305:g} GB/s)" in demo_levels["nccl"].stdout


def test_read_only_skips_every_probe_level_and_writes_nothing(demo_levels):
    run = demo_levels["read-only"]        # run_suite asserts no write was sent
    in_pod = [r for r in run.results.values() if r["check"] in PROBE_CHECKS]
    assert in_pod and {r["outcome"] for r in in_pod} == {"skipped"}
    assert _verdicts(run)["dgx030"]["level"] is None and run.left == []


@pytest.mark.parametrize("level", ["rdma", "nccl"])
def test_sigint_while_the_probe_scripts_run_deletes_the_pods(tmp_path, level):
    # kubelets that take a minute to start the pods: the probes wait, scripts unrun, when SIGINT comes
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("format: ibconform-twin/v1\ncluster: twin-slow-pods\nprofile: dgx-b200\n"
                        "kubernetes: {kubeletDelay: 60}\nnodes:\n  - names: 'dgx[001-002]'\n")
    with Twin(scenario, tmp_path / "twin") as twin:
        inventory = _at_level(twin.inventory_path, level, tmp_path)
        proc = subprocess.Popen([sys.executable, "-m", "ibconform.cli", "run", "-i", str(inventory), "--out",
                                 str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "probes were never created"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2, stderr
        assert twin.api.list("pods", "default", label_selector=PROBE_SELECTOR) == []
