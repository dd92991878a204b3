"""benchmarks/plot.py: the committed fleet results plot to a PNG; a file that is not a result is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLOT = ROOT / "benchmarks" / "plot.py"


def test_committed_results_plot_to_png(tmp_path):
    results = sorted((ROOT / "docs" / "benchmarks").glob("fleet-*.json"))
    assert len(results) >= 3
    out = tmp_path / "fleet.png"
    proc = subprocess.run([sys.executable, str(PLOT), *map(str, results), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_file_that_is_not_a_result_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"suite_s": 1}')
    proc = subprocess.run([sys.executable, str(PLOT), str(bad), "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"plot: {bad}: not a fleet benchmark result ('nodes')"]
