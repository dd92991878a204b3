"""The checks' items as pytest sees them, on a real bundle: what the suite computes once per check for speed is
what pytest computes per item."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

# collect the checks on the bundle, then compare each item's shared location with pytest's own computation
COMPARE = """
import sys, pytest
from ibconform import suite

class Compare:
    def pytest_collection_finish(self, session):
        shared = [item.location for item in session.items]
        for item in session.items:
            del item.__dict__["location"]          # pytest's cached property, computed again by pytest
        differing = [i.nodeid for i, loc in zip(session.items, shared) if i.location != loc]
        print("locations", len(session.items), len({loc[:2] for loc in shared}), differing)

sys.exit(pytest.main([str(suite.checks_dir()), "--rootdir", str(suite.SUITE_ROOT), "--disable-plugin-autoload",
                      "-p", "no:cacheprovider", "--bundle", sys.argv[1], "--collect-only", "-qq", "--assert=plain"],
                     plugins=[Compare()]))
"""


def test_each_items_location_is_pytests_own(faults_run):
    proc = subprocess.run([sys.executable, "-c", COMPARE, str(faults_run.out / "bundle")], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("locations "))
    _, items, functions, differing = line.split(" ", 3)
    assert int(items) > 1000 and 30 < int(functions) < 100 and differing == "[]"
