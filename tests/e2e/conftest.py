"""End-to-end fixtures: a twin per scenario, the real CLI run against it over real SSH and HTTPS."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ibconform.twin import Twin
from ibconform.twin.apiserver.api_twin import ApiTwin
from tests.bundle_schema import validate_bundle

#: The links proven inside the probe pod (checks/test_attach.py, test_rdma.py, test_nccl.py).
IN_POD_LINKS = ("attach", "rdma", "nccl")


@dataclass
class Run:
    """One finished `ibconform run`: its exit code, output and results.json by item id."""

    code: int
    stdout: str
    stderr: str
    out: Path
    results: dict[str, dict]

    def not_passed(self, node: str, checks: set[str] | None = None) -> dict[str, dict]:
        """The node's items that did not pass, but for skipped checks of the probe's links: a level the run did not
        ask for, or a pod that never got that far (its earlier check says why)."""
        return {i: r for i, r in self.results.items()
                if r["node"] == node and r["outcome"] != "passed" and (checks is None or r["check"] in checks)
                and not (r["outcome"] == "skipped" and r["link"] in IN_POD_LINKS)}


def ibconform(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibconform.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _twin_api(inventory: Path) -> ApiTwin | None:
    """The twin API the inventory's kubeconfig points at, when it runs in this process."""
    kubeconfig = (yaml.safe_load(inventory.read_text()).get("kubernetes") or {}).get("kubeconfig")
    if not kubeconfig or not Path(kubeconfig).is_file():
        return None
    clusters = yaml.safe_load(Path(kubeconfig).read_text()).get("clusters") or []
    return next((api for c in clusters if (api := ApiTwin.serving(c["cluster"]["server"]))), None)


def run_suite(inventory: Path, out: Path, *extra: str) -> Run:
    """`ibconform run`; every --read-only run of the e2e suite is also checked to send no write at all."""
    api = _twin_api(inventory) if "--read-only" in extra else None
    before = len(api.requests) if api else 0
    proc = ibconform("run", "-i", str(inventory), "--out", str(out), *extra)
    if api is not None:
        writes = [f"{r.method} {r.path}" for r in api.requests[before:] if r.method in ("POST", "PUT", "PATCH", "DELETE")]
        assert writes == [], f"--read-only run sent writes: {writes}"
    results_path = out / "results.json"
    assert results_path.exists(), f"no results.json; exit {proc.returncode}; stderr: {proc.stderr[-2000:]}"
    if (out / "bundle" / "manifest.json").exists():
        validate_bundle(out / "bundle")       # every bundle an end-to-end run writes keeps docs/bundle.md's contract
    results = {r["id"]: r for r in json.loads(results_path.read_text())["results"]}
    return Run(proc.returncode, proc.stdout, proc.stderr, out, results)


@pytest.fixture(scope="session")
def faults_twin(tmp_path_factory: pytest.TempPathFactory):
    with Twin("faults", tmp_path_factory.mktemp("twin-faults")) as twin:
        yield twin


@pytest.fixture(scope="session")
def faults_run(faults_twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_suite(faults_twin.inventory_path, tmp_path_factory.mktemp("run") / "out", "--read-only")


@pytest.fixture(scope="session")
def faults_probed(faults_twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The full run (probes included) against the faults twin."""
    return run_suite(faults_twin.inventory_path, tmp_path_factory.mktemp("probed") / "out")
