"""The inventory loader: the shipped example loads; every kind of mistake is one line and exit 4."""

import subprocess
import sys
from pathlib import Path

import pytest
from ClusterShell.NodeSet import NodeSet

from ibconform import inventory
from ibconform.errors import InventoryError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "dgx-b200-example.yaml"

GOOD = """\
format: ibconform/v1
cluster: c1
profiles:
  p:
    hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]
    excluded: [{pci: "0000:29:00.0", reason: BlueField-3 DPU}]
nodes:
  - {names: "dgx[030-031]", profile: p}
"""


def test_example_inventory_describes_the_seed_nodes():
    inv = inventory.load(EXAMPLE)
    assert [n.name for n in inv.nodes] == ["dgx030", "dgx031"]
    node = inv.node("dgx030")
    assert len(node.hcas) == 8 and node.hcas[0].pci == "0000:18:00.0" and node.hcas[0].iface == "ibp24s0"
    assert {d.reason for d in node.excluded} == {"internal mezz ConnectX-7", "BlueField-3 DPU"}
    assert node.expect.vfs_per_hca == 8 and node.expect.link_type == "IB"


def test_per_group_expect_override_keeps_other_defaults():
    text = GOOD.replace('profile: p}', 'profile: p, expect: {vfsPerHca: 16}}')
    node = inventory.parse(text, Path("inv.yaml")).node("dgx031")
    assert node.expect.vfs_per_hca == 16 and node.expect.ipam_image == "nvidia-k8s-ipam"


def test_pci_addresses_are_normalised_to_lower_case():
    inv = inventory.parse(GOOD.replace("0000:18:00.0", "0000:1A:00.0"), Path("inv.yaml"))
    assert inv.nodes[0].hcas[0].pci == "0000:1a:00.0"


MISTAKES = [
    ("missing key", GOOD.replace("cluster: c1\n", ""), "inv.yaml: cluster: missing (required)"),
    ("wrong type", GOOD.replace("cluster: c1", "cluster: c1\nexpect: {vfsPerHca: eight}"),
     "inv.yaml: expect.vfsPerHca: expected an integer, got 'eight'"),
    ("unknown profile", GOOD.replace("profile: p}", "profile: dgx-h100}"),
     "inv.yaml: nodes[0].profile: unknown profile 'dgx-h100' (expected one of: p)"),
    ("duplicate node", GOOD + '  - {names: "dgx031", profile: p}\n',
     "inv.yaml: nodes[1].names: node dgx031 is listed twice (expected each node once)"),
    ("bad PCI address", GOOD.replace('"0000:18:00.0"', '"18:00"'),
     "inv.yaml: profiles.p.hcas[0].pci: expected a PCI address like 0000:18:00.0, got '18:00'"),
    ("unquoted PCI address", GOOD.replace('"0000:18:00.0"', "0000:18:00.0"),
     'inv.yaml: profiles.p.hcas[0].pci: expected a quoted PCI address like "0000:18:00.0"'),
    ("bad NodeSet", GOOD.replace("dgx[030-031]", "dgx[030-"),
     "inv.yaml: nodes[0].names: expected a NodeSet like dgx[030-031], got 'dgx[030-'"),
    ("unknown key", GOOD.replace("cluster: c1", "cluster: c1\nclustre: c2"),
     "inv.yaml: clustre: unknown key"),
    ("wrong format", GOOD.replace("ibconform/v1", "ibconform/v9"),
     "inv.yaml: format: expected 'ibconform/v1', got 'ibconform/v9'"),
    ("not YAML", "format: [", "inv.yaml: line"),
    ("bad node name", GOOD.replace("dgx[030-031]", "../etc"), "inv.yaml: nodes[0].names: expected"),
    ("infinite timeout", GOOD.replace("cluster: c1", "cluster: c1\nssh: {connectTimeout: .inf}"),
     "inv.yaml: ssh.connectTimeout: Input should be a finite number, got inf"),
]


@pytest.mark.parametrize(("text", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistake_is_one_line_naming_file_and_field(text, expected):
    with pytest.raises(inventory.InventoryError) as err:
        inventory.parse(text, Path("inv.yaml"))
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_cli_exits_4_with_one_line_and_no_traceback(tmp_path, text, expected):
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "ibconform.cli", "run", "-i", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ibconform: error: {tmp_path}/{expected}")
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_shards_cut_the_inventory_into_equal_runs_in_its_order():
    inv = inventory.parse(GOOD.replace("dgx[030-031]", "dgx[001-010]"), Path("inv.yaml"))
    shards = [inv.shard(i, 3) for i in range(3)]
    assert shards == ["dgx[001-004]", "dgx[005-007]", "dgx[008-010]"]
    assert [n for s in shards for n in NodeSet(s)] == [n.name for n in inv.nodes]
    assert inv.shard(0, 1) == "dgx[001-010]" and inv.shard(9, 10) == "dgx010"
    with pytest.raises(InventoryError, match=r"--shard: expected INDEX/COUNT with 0 <= INDEX < COUNT, got 3/3"):
        inv.shard(3, 3)
    with pytest.raises(InventoryError, match="11 shards for 10 nodes: expected at most one shard per node"):
        inv.shard(0, 11)
