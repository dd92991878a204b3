"""The evidence bundle read while it is written (``Bundle(follow=True)``), and what the writer refuses."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ibconform import bundle as bundle_mod
from ibconform.bundle import Bundle, BundleWriter, NodeStatus
from ibconform.collect.nodescript import NodeOutput
from ibconform.inventory import load as load_inventory

INVENTORY = Path(__file__).resolve().parents[2] / "inventories" / "dgx-b200-example.yaml"


@pytest.fixture
def inventory():
    return load_inventory(INVENTORY)


def _output(node: str) -> NodeOutput:
    return NodeOutput(hostname=node, mstconfig={"0000:18:00.0": ("NUM_OF_VFS 8 8 8\n", 0)},
                      files={"/sys/class/net/ibp24s0/device/sriov_numvfs": "8\n",
                             "/sys/class/net/ibp24s0/device/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n"})


def _status() -> NodeStatus:
    return NodeStatus(reachable=True, error=None, transport="ssh", seconds=0.1)


def test_a_following_reader_waits_for_each_node_then_reads_it(tmp_path, inventory):
    writer = BundleWriter(tmp_path / "b", inventory, read_only=True)
    first, second = (n.name for n in inventory.nodes[:2])
    reader = Bundle(tmp_path / "b", follow=True)
    seen: dict[str, object] = {}

    def read() -> None:
        seen["status"] = reader.status(first)
        seen["at"] = time.monotonic()

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()                          # not written yet: the reader waits
    written = time.monotonic()
    writer.node(first, _status(), _output(first))
    thread.join(5)
    assert seen["status"].hostname == first and seen["at"] >= written
    assert reader.sysfs(first, "/sys/class/net/ibp24s0/device/sriov_numvfs") == "8\n"
    assert reader.sysfs_glob(first, "/sys/class/net/ibp24s0/device/infiniband/*/ports/*/state") == {
        "/sys/class/net/ibp24s0/device/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n"}
    threading.Timer(0.3, writer.finish).start()
    assert reader.status(second) is None              # never written: known once the bundle is finished
    assert reader.settled().manifest["complete"] is True


def test_a_reader_stops_waiting_when_the_writer_dies(tmp_path, inventory):
    """The writer's lock goes with its process: a reader then judges what is there instead of waiting forever."""
    code = (f"import sys, time; from pathlib import Path; from ibconform.bundle import BundleWriter; "
            f"from ibconform.inventory import load; BundleWriter(Path({str(tmp_path / 'b')!r}), "
            f"load({str(INVENTORY)!r}), read_only=True); print('begun', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "begun"
        reader = Bundle(tmp_path / "b", follow=True)
        threading.Timer(0.5, proc.kill).start()
        started = time.monotonic()
        assert reader.status(inventory.nodes[0].name) is None
        assert 0.4 < time.monotonic() - started < 5
        assert "finished" not in reader.manifest and reader.manifest["complete"] is False
    finally:
        proc.kill()
        proc.wait()


def test_an_unsafe_device_name_from_a_node_is_refused(tmp_path, inventory):
    writer = BundleWriter(tmp_path / "b", inventory, read_only=True)
    node = inventory.nodes[0].name
    output = _output(node)
    output.mstconfig["../../../../escaped"] = ("x", 0)
    output.files["/sys/../etc/passwd"] = "root:x:0:0"
    status = _status()
    writer.node(node, status, output)
    writer.finish()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))
    assert not (tmp_path / "b" / "nodes" / node / "etc").exists()
    notes = json.loads((tmp_path / "b" / "nodes" / node / "status.json").read_text())["notes"]
    assert notes == ["ignored unsafe mstconfig device name '../../../../escaped'",
                     "ignored unsafe file path '/sys/../etc/passwd'"]
    assert Bundle(tmp_path / "b").mstconfig(node, "0000:18:00.0") == ("NUM_OF_VFS 8 8 8\n", 0)
    assert os.listdir(tmp_path) == ["b"]



def test_a_writer_finishing_between_the_readers_two_looks_is_seen_finished(tmp_path, inventory, monkeypatch):
    """The reader reads the manifest, then finds the lock free: the writer may have finished in between
    (its last manifest written, then the lock released), so what it left is read again."""
    writer = BundleWriter(tmp_path / "b", inventory, read_only=True)
    reader = Bundle(tmp_path / "b", follow=True)
    alive = bundle_mod._writer_alive

    def finish_first(root: Path) -> bool:
        writer.finish(interrupted=True, complete=False)
        return alive(root)

    monkeypatch.setattr(bundle_mod, "_writer_alive", finish_first)
    assert reader.settled().manifest.get("interrupted") is True

GLOB_FILES = ["class/net/ib0/device/infiniband/mlx5_0/ports/1/state", "class/net/ib0/device/infiniband/mlx5_0/ports/2/state",
              "class/net/ib0/device/infiniband/mlx5_0/ports/1/rate", "class/net/ib0/device/infiniband/mlx5_0/fw_ver",
              "class/net/ib0/device/infiniband/.hidden/fw_ver", "class/net/ib0/device/.sriov_numvfs",
              "class/net/ib0/device/sriov_numvfs", "class/net/ib1/device/sriov_numvfs", "bus/pci/devices/x[1]/y"]
GLOBS = ["class/net/ib0/device/infiniband/*/ports/*/state", "class/net/*/device/sriov_numvfs",
         "class/net/ib0/device/*", "class/net/ib0/device/.*", "class/net/ib0/device/infiniband/*/fw_ver",
         "class/net/ib?/device/sriov_numvfs", "class/net/ib[!0]/device/sriov_numvfs", "class/net/ib0/device",
         "class/net/ib0/device/infiniband/mlx5_0/ports/1/state", "class/*", "class/net/ib9/*", "*/*/*/*/*",
         "bus/pci/devices/x[[]1]/y", "class/net/ib0/device/infiniband/*/ports/1"]


@pytest.mark.parametrize("pattern", GLOBS)
def test_sysfs_glob_finds_what_glob_finds_on_disk(tmp_path, inventory, pattern):
    """Shell-style patterns as glob has them (hidden names, brackets), files only, read, in path order."""
    node = inventory.nodes[0].name
    output = NodeOutput(hostname=node, mstconfig={}, files={f"/sys/{f}": f"{f}\n" for f in GLOB_FILES})
    writer = BundleWriter(tmp_path / "b", inventory, read_only=True)
    writer.node(node, _status(), output)
    writer.finish()
    base = tmp_path / "b" / "nodes" / node / "sysfs"
    on_disk = {f"/sys/{m}": (base / m).read_text() for m in sorted(glob.glob(pattern, root_dir=base))
               if (base / m).is_file()}
    assert Bundle(tmp_path / "b").sysfs_glob(node, f"/sys/{pattern}") == on_disk
    assert list(on_disk) == sorted(on_disk)


def test_vfs_are_read_from_the_pf_virtfn_links_by_index(tmp_path, inventory):
    from ibconform.facts import HcaFacts, NodeFacts
    node = inventory.nodes[0]
    hca = node.hcas[0]
    base = f"/sys/class/net/{hca.iface}/device"
    links = {base: "../../../0000:18:00.0", f"{base}/virtfn10": "../0000:18:01.3", f"{base}/virtfn2": "../0000:18:00.3",
             f"{base}/virtfnX": "../garbage", f"/sys/class/net/{node.hcas[1].iface}/device/virtfn0": "../0000:40:00.1"}
    writer = BundleWriter(tmp_path / "b", inventory, read_only=True)
    writer.node(node.name, _status(), NodeOutput(hostname=node.name, links=links))
    writer.finish()
    ledger: list = []
    facts = HcaFacts(NodeFacts(Bundle(tmp_path / "b"), node, ledger), hca)
    assert facts.vf_pcis() == {2: "0000:18:00.3", 10: "0000:18:01.3"}
    assert ledger[-1] == ("evidence", f"VFs of {facts}: 2=0000:18:00.3, 10=0000:18:01.3")
