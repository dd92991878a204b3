"""SIGINT/SIGTERM while collecting and while evaluating: the run stops within 10 s, exits 2, and leaves a
partial bundle and a report marked interrupted (the probing phase: test_api_contracts.py)."""

from __future__ import annotations

import json
import os
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


def _interrupt(args: list[str], sig: int, ready) -> tuple[subprocess.CompletedProcess, float]:
    """Start the CLI, wait until ``ready(proc)`` says it is in the phase under test, then signal it."""
    proc = subprocess.Popen([sys.executable, "-m", "ibconform.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 60
    while not ready(proc):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the phase under test"
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), time.monotonic() - sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_while_collecting(tmp_path, sig):
    with Twin(_scenario(tmp_path), tmp_path / "twin") as twin:
        out = tmp_path / "out"
        # every node's mstconfig takes 20 s: once the bundle is begun, plus a second, the run is collecting
        begun = out / "bundle" / "manifest.json"
        proc, took = _interrupt(["run", "-i", str(twin.inventory_path), "--read-only", "--out", str(out)], sig,
                                lambda _: begun.exists() and time.sleep(1.0) is None)
    assert took < 10 and proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["complete"] is False
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["interrupted"] is True and (out / "report.html").exists()
    assert {r["outcome"] for r in results["results"] if r["check"] == "sriov_numvfs"} == {"error"}


def test_interrupt_while_evaluating(faults_probed, tmp_path):
    out = tmp_path / "re"
    # the first progress character on stdout: pytest is running the checks
    proc, took = _interrupt(["evaluate", str(faults_probed.out / "bundle"), "--out", str(out)], signal.SIGINT,
                            lambda p: p.stdout.read(1) in (".", "F", "E", "s"))
    assert took < 10 and proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["exit_status"] == 2
    assert len(results["results"]) < len(faults_probed.results)
