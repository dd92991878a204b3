"""SIGINT/SIGTERM while collecting and while evaluating: the run stops within 10 s, exits 2, and leaves a
partial bundle and a report marked interrupted (the probing phase: test_api_contracts.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibconform.twin import Twin


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text("format: ibconform-twin/v1\ncluster: twin-slow\nprofile: dgx-b200\n"
                    "defaults: {mstDelay: 20}\nnodes:\n  - names: 'dgx[001-004]'\n")
    return path


def _interrupt(args: list[str], sig: int, after: float) -> tuple[subprocess.CompletedProcess, float]:
    proc = subprocess.Popen([sys.executable, "-m", "ibconform.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    sent = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), time.monotonic() - sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_while_collecting(tmp_path, sig):
    with Twin(_scenario(tmp_path), tmp_path / "twin") as twin:
        out = tmp_path / "out"
        # every node's mstconfig takes 20 s: 3 s in, the run is collecting
        proc, took = _interrupt(["run", "-i", str(twin.inventory_path), "--read-only", "--out", str(out)], sig, 3.0)
    assert took < 10 and proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["complete"] is False
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["interrupted"] is True and (out / "report.html").exists()
    assert {r["outcome"] for r in results["results"] if r["check"] == "sriov_numvfs"} == {"error"}


def test_interrupt_while_evaluating(faults_probed, tmp_path):
    out = tmp_path / "re"
    proc, took = _interrupt(["evaluate", str(faults_probed.out / "bundle"), "--out", str(out)], signal.SIGINT, 2.0)
    assert took < 10 and proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["exit_status"] == 2
    assert len(results["results"]) < len(faults_probed.results)
