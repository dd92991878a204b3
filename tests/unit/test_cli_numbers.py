"""Numbers on the command line: a bad one is refused before anything runs, in one line, exit 4."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "dgx-b200-example.yaml"


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--workers", "-1", "argument --workers: expected a whole number (0: serial), got '-1'"),
    ("--workers", "two", "argument --workers: expected a whole number (0: serial), got 'two'"),
    ("--part-nodes", "0", "argument --part-nodes: expected a positive whole number, got '0'"),
    ("--snapshot-max-age", "-5", "argument --snapshot-max-age: expected a number of seconds >= 0, got '-5'"),
    ("--snapshot-max-age", "nan", "argument --snapshot-max-age: expected a number of seconds >= 0, got 'nan'"),
])
def test_a_bad_number_is_one_line(option, value, expected):
    proc = subprocess.run([sys.executable, "-m", "ibconform.cli", "run", "-i", str(EXAMPLE), option, value],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 4 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == f"ibconform: error: {expected}"
