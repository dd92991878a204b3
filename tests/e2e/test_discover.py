"""`ibconform discover` writes an inventory from the twin's policies and node states."""

from __future__ import annotations

from ibconform import inventory
from tests.e2e.conftest import ibconform


def test_discover_writes_a_loadable_inventory_of_the_selected_nodes(faults_twin, tmp_path):
    out = tmp_path / "discovered.yaml"
    proc = ibconform("discover", "--kubeconfig", str(faults_twin.kubeconfig_path), "--cluster", "pod1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    inv = inventory.load(out)
    assert [n.name for n in inv.nodes] == sorted(faults_twin.addresses)
    expected = inventory.load(faults_twin.inventory_path).nodes[0]
    node = inv.node("dgx001")
    assert {(h.iface, h.pci) for h in node.hcas} == {(h.iface, h.pci) for h in expected.hcas}
    assert {d.pci for d in node.excluded} == {d.pci for d in expected.excluded}
    assert proc.stdout.strip() == f"inventory: {out} (27 nodes, 1 profile)"


def test_discover_never_overwrites(faults_twin, tmp_path):
    out = tmp_path / "exists.yaml"
    out.write_text("keep me")
    proc = ibconform("discover", "--kubeconfig", str(faults_twin.kubeconfig_path), "-o", str(out))
    assert proc.returncode == 4 and "never overwrites" in proc.stderr and out.read_text() == "keep me"
