"""The CI gate: commands printed by default, the same changes made through the API with --apply."""

from __future__ import annotations

from ibconform.twin import Twin
from tests.e2e.conftest import run_suite

KEY = "ibconform.io/acceptance"



def test_gate_label_prints_then_apply_labels_taints_and_uncordons(tmp_path):
    with Twin("demo", tmp_path / "twin") as twin:
        printed = run_suite(twin.inventory_path, tmp_path / "printed", "--gate-label", KEY)
        assert f"kubectl label node dgx030 {KEY}=passed --overwrite" in printed.stdout
        assert "kubectl uncordon dgx030" in printed.stdout
        assert f"kubectl taint node dgx031 {KEY}=failed:NoSchedule --overwrite" in printed.stdout
        node = twin.api.get("v1", "nodes", "dgx031")
        assert KEY not in node["metadata"].get("labels", {})          # printing changed nothing

        applied = run_suite(twin.inventory_path, tmp_path / "applied", "--gate-label", KEY, "--apply")
        assert "gate applied to 2 nodes" in applied.stdout
        good, bad = twin.api.get("v1", "nodes", "dgx030"), twin.api.get("v1", "nodes", "dgx031")
        assert good["metadata"]["labels"][KEY] == "passed" and not good["spec"].get("unschedulable")
        assert bad["metadata"]["labels"][KEY] == "failed"
        assert {"key": KEY, "value": "failed", "effect": "NoSchedule"} in bad["spec"]["taints"]


def test_apply_without_gate_or_with_read_only_is_a_usage_error(faults_twin, tmp_path):
    from tests.e2e.conftest import ibconform
    proc = ibconform("run", "-i", str(faults_twin.inventory_path), "--apply", "--out", str(tmp_path / "o"))
    assert proc.returncode == 4 and "--apply needs --gate-label" in proc.stderr
    proc = ibconform("run", "-i", str(faults_twin.inventory_path), "--gate-label", "bad key!", "--out", str(tmp_path / "o"))
    assert proc.returncode == 4 and "expected a label key" in proc.stderr
