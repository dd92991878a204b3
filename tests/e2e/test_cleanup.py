"""Leftover probe pods of a crashed run: deleted by the next run and by `ibconform cleanup` once older than
the age guard (probe.leftoverAge), never while they may belong to a run still going."""

from __future__ import annotations

import time

import pytest
import yaml

from ibconform.collect.probes import MANAGED_BY, PROBE_SELECTOR, ROLE, RUN_LABEL
from ibconform.twin import Twin
from tests.e2e.conftest import ibconform, run_suite

GUARD = 6.0  # generous: the run must reach its cleanup within it even on a loaded machine


def _leftover(twin: Twin, name: str, run: str) -> None:
    twin.api.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "default", "labels": {MANAGED_BY[0]: MANAGED_BY[1], ROLE[0]: ROLE[1], RUN_LABEL: run}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}})


def _probe_pods(twin: Twin) -> set[str]:
    return {p["metadata"]["name"] for p in twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)}


def _guarded_inventory(twin: Twin, tmp_path):
    data = yaml.safe_load(twin.inventory_path.read_text())
    data["probe"]["leftoverAge"] = GUARD
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def staged(tmp_path):
    """A twin with two leftover probe pods: "old" (past the age guard) and "young" (within it)."""
    with Twin("demo", tmp_path / "twin") as twin:
        inventory = _guarded_inventory(twin, tmp_path)
        _leftover(twin, "old", "crashed")
        time.sleep(GUARD + 1.5)
        _leftover(twin, "young", "concurrent")
        yield twin, inventory


def test_next_run_deletes_only_leftovers_older_than_the_guard(staged, tmp_path):
    twin, inventory = staged
    run_suite(inventory, tmp_path / "out")
    assert _probe_pods(twin) == {"young"}


def test_cleanup_command_respects_the_age_guard_unless_all(staged):
    twin, inventory = staged
    proc = ibconform("cleanup", "-i", str(inventory))
    assert proc.returncode == 0 and proc.stdout.startswith(f"deleted 1 probe pods older than {GUARD:g} s"), proc
    assert _probe_pods(twin) == {"young"}
    proc = ibconform("cleanup", "-i", str(inventory), "--all")
    assert proc.returncode == 0 and "young" in proc.stdout
    assert _probe_pods(twin) == set()
