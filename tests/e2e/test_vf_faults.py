"""The VFs on the node end to end: the real suite, over real SSH, against the `faults` twin, read-only.

Per VF fault (dgx021-dgx026): exactly which checks of the link `vfs` fail, with which message, and that the
node's root cause is in that link; every other node passes every `vfs` check its own fault does not explain,
and the healthy node passes them all. The run is `--read-only` (no probe pod), which judges them all.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import ibconform, run_suite

HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
VF_PER_HCA = ["vfs_bound", "vf_guids_set", "vf_guids_unique", "vf_ports_active"]
VF_CHECKS = {*VF_PER_HCA, "rdma_netns_mode"}
GUID = r"[0-9a-f]{2}(?::[0-9a-f]{2}){7}"
ZERO = "00:00:00:00:00:00:00:00"
SM_HINT = r"the subnet manager does not bring up virtual ports — enable virtualization in it \(OpenSM: virt_enabled 2"


def _duplicate(node: str, other: str) -> str:
    return (rf"^VF GUIDs of ibp24s0 \(0000:18:00\.0\) expected unique in the fleet vs ({GUID}) of {node} ibp24s0 "
            rf"VF 0 \(0000:18:00\.1\) node GUID also {other} ibp24s0 VF 0 \(0000:18:00\.1\) node and port GUID: "
            r"the subnet manager routes one GUID to one port")


# node -> {item id: (outcome, regex)}, and the root cause (link, check, remediation)
EXPECTED: dict[str, tuple[dict[str, tuple[str, str]], tuple[str, str, str]]] = {
    "dgx021": ({
        "test_vf_guids_set[dgx021-ibp64s0]": (
            "failed", rf"^GUID of VF 0 \(0000:40:00\.1\) of ibp64s0 \(0000:40:00\.0\) expected non-zero vs node GUID "
                      rf"{ZERO} \(ip link, sriov, node_guid\); port GUID {ZERO} \(ip link, sriov\): nobody set it — "
                      r"pods get \"GUID is not valid\" at CNI ADD; .* ip link set ibp64s0 vf 0 node_guid <guid>"),
        "test_vf_ports_active[dgx021-ibp64s0]": (      # the SM activates no port without a GUID
            "failed", r"^VF port mlx5_\d+/1 of VF 0 \(0000:40:00\.1\) expected ACTIVE vs INIT: its GUID is zero "
                      r"\(vf_guids_set\): give the VF a GUID"),
    }, ("vfs", "vf_guids_set", "vf-guid-zero")),
    "dgx022": ({"test_vf_guids_unique[dgx022-ibp24s0]": ("failed", _duplicate("dgx022", "dgx023"))},
               ("vfs", "vf_guids_unique", "vf-guid-duplicate")),
    "dgx023": ({"test_vf_guids_unique[dgx023-ibp24s0]": ("failed", _duplicate("dgx023", "dgx022"))},
               ("vfs", "vf_guids_unique", "vf-guid-duplicate")),
    "dgx024": ({"test_vfs_bound[dgx024-ibp94s0]": (
        "failed", r"^VF 5 \(0000:5e:00\.6\) of ibp94s0 \(0000:5e:00\.0\) driver expected mlx5_core vs unbound: bind "
                  r"it to mlx5_core \(echo 0000:5e:00\.6 > /sys/bus/pci/drivers/mlx5_core/bind\)")},
        ("vfs", "vfs_bound", "vf-unbound")),
    "dgx025": ({f"test_vf_ports_active[dgx025-{h}]": (
        "failed", r"^VF port mlx5_\d+/1 of VF 0 \(0000:..:00\.1\) expected ACTIVE vs DOWN while the PF port is ACTIVE "
                  rf"\(and 7 more\): {SM_HINT}") for h in HCAS},
        ("vfs", "vf_ports_active", "sm-without-virtualization")),
    "dgx026": ({"test_rdma_netns_mode[dgx026]": (
        "failed", r"^RDMA netns mode on dgx026 expected shared \(the inventory's expect\.rdmaNetnsMode\) vs exclusive: "
                  r"run `rdma system set netns shared` and put ib_core\.netns_mode=1 on the kernel command line")},
        ("vfs", "rdma_netns_mode", "rdma-netns-mode")),
}
# Nodes whose fault earlier in the chain also fails VF checks (their consequences, not VF faults)
UPSTREAM: dict[str, set[str]] = {
    "dgx002": {f"test_vfs_bound[dgx002-{h}]" for h in HCAS},            # no VFs: firmware change pending
    "dgx004": {"test_vfs_bound[dgx004-ibp64s0]"},                       # no VFs on one HCA
    "dgx006": {"test_vf_ports_active[dgx006-ibp220s0]"},                # the PF's port is down
    "dgx014": {"test_vfs_bound[dgx014-ibp206s0]"},                      # SR-IOV disabled
    **{node: {f"test_{c}[{node}-{h}]" for c in VF_PER_HCA for h in HCAS}
       | {f"test_rdma_netns_mode[{node}]"} for node in ("dgx007", "dgx008")},   # unreachable: error
}


@pytest.fixture(scope="module")
def verdicts(faults_run):
    return {n["name"]: n for n in json.loads((faults_run.out / "results.json").read_text())["nodes"]}


@pytest.mark.parametrize("node", sorted(EXPECTED))
def test_each_vf_fault_fails_exactly_its_checks_with_its_root_cause(faults_run, verdicts, node):
    expected, (link, check, remediation) = EXPECTED[node]
    seen = faults_run.not_passed(node, VF_CHECKS)
    assert set(seen) == set(expected), f"unexpected {sorted(set(seen) - set(expected))}, " \
                                       f"missing {sorted(set(expected) - set(seen))}"
    for item, (outcome, pattern) in expected.items():
        assert seen[item]["outcome"] == outcome, seen[item]
        assert re.search(pattern, seen[item]["message"]), f"{item}: {seen[item]['message']!r} !~ {pattern!r}"
        assert seen[item]["link"] == "vfs"
    root = verdicts[node]["root_cause"]
    assert (root["link"], root["check"], root["remediation"]) == (link, check, remediation), root


def test_the_duplicate_names_the_same_guid_on_both_nodes(faults_run):
    pattern = re.compile(_duplicate("dgx0\\d\\d", "dgx0\\d\\d"))
    first, second = (pattern.search(faults_run.results[f"test_vf_guids_unique[{n}-ibp24s0]"]["message"])
                     for n in ("dgx022", "dgx023"))
    assert first and second and first[1] == second[1]


def test_every_other_node_passes_its_vf_checks(faults_run):
    items = {i: r for i, r in faults_run.results.items() if r["check"] in VF_CHECKS}
    nodes = {r["node"] for r in items.values()}
    assert {f"dgx{i:03d}" for i in range(1, 27)} <= nodes
    for node in sorted(nodes - set(EXPECTED)):
        bad = {i for i, r in items.items() if r["node"] == node and r["outcome"] != "passed"}
        assert bad == UPSTREAM.get(node, set()), f"{node}: {sorted(bad ^ UPSTREAM.get(node, set()))}"
    healthy = [r for r in items.values() if r["node"] == "dgx001"]
    assert len(healthy) == 4 * len(HCAS) + 1 and all(r["outcome"] == "passed" for r in healthy)


def test_upstream_faults_keep_their_root_cause_and_list_the_vf_checks_as_consequences(verdicts):
    assert verdicts["dgx002"]["root_cause"]["link"] == "firmware"
    assert {f"test_vfs_bound[dgx002-{h}]" for h in HCAS} <= set(verdicts["dgx002"]["consequences"])
    assert verdicts["dgx006"]["root_cause"]["check"] == "ib_port_active"
    assert "test_vf_ports_active[dgx006-ibp220s0]" in verdicts["dgx006"]["consequences"]


def test_vf_failures_carry_the_vf_evidence(faults_run):
    zero = faults_run.results["test_vf_guids_set[dgx021-ibp64s0]"]
    assert any(e.startswith("ip link show ibp64s0 (exit 0):") and "vf 0 " in e and f"NODE_GUID {ZERO}" in e
               for e in zero["evidence"]), zero["evidence"]
    assert any(e.startswith("VF 0 (0000:40:00.1): driver mlx5_core, RDMA mlx5_") for e in zero["evidence"])
    unbound = faults_run.results["test_vfs_bound[dgx024-ibp94s0]"]
    assert any(e.startswith("VF 5 (0000:5e:00.6): driver none, RDMA none, uverbs none, umad none")
               for e in unbound["evidence"]), unbound["evidence"]


def test_the_bundle_holds_the_vf_facts(faults_run):
    bundle = faults_run.out / "bundle"
    assert json.loads((bundle / "manifest.json").read_text())["format"] == "ibconform-evidence/v3"
    commands = json.loads((bundle / "nodes" / "dgx001" / "commands.json").read_text())
    assert set(commands) == {f"ip link show {h}" for h in HCAS}
    assert commands["ip link show ibp24s0"]["exit"] == 0
    links = json.loads((bundle / "nodes" / "dgx001" / "links.json").read_text())
    assert links["/sys/class/net/ibp24s0/device/virtfn0/driver"] == "../../../../bus/pci/drivers/mlx5_core"
    files = json.loads((bundle / "nodes" / "dgx001" / "vfs.json").read_text())   # one file, not hundreds
    vf = "/sys/class/net/ibp24s0/device/virtfn0"
    assert {p.split("/")[8] for p in files if p.startswith(f"{vf}/infiniband/")} == {"mlx5_16"}
    assert files[f"{vf}/infiniband/mlx5_16/ports/1/state"] == "4: ACTIVE\n"
    assert files[f"{vf}/infiniband_verbs/uverbs14/dev"] == "231:206\n"
    assert not (bundle / "nodes" / "dgx001" / "sysfs" / "class" / "net" / "ibp24s0" / "device" / "virtfn0").exists()
    unbound = json.loads((bundle / "nodes" / "dgx024" / "links.json").read_text())
    assert "/sys/class/net/ibp94s0/device/virtfn5" in unbound          # the VF is there
    assert "/sys/class/net/ibp94s0/device/virtfn5/driver" not in unbound   # with no driver


def test_a_shard_compares_its_own_nodes_and_merge_the_fleet(faults_twin, faults_run, tmp_path):
    """docs/formats.md#vfs: a --nodes/--shard run sees duplicates inside its nodes; merge sees them across shards."""
    item = "test_vf_guids_unique[dgx022-ibp24s0]"
    alone = run_suite(faults_twin.inventory_path, tmp_path / "alone", "--read-only", "--nodes", "dgx022")
    assert alone.results[item]["outcome"] == "passed"
    run_suite(faults_twin.inventory_path, tmp_path / "other", "--read-only", "--nodes", "dgx023")
    pair = run_suite(faults_twin.inventory_path, tmp_path / "pair", "--read-only", "--nodes", "dgx[022-023]")
    assert pair.results[item]["outcome"] == "failed"
    merged = ibconform("merge", str(tmp_path / "alone"), str(tmp_path / "other"), "--out", str(tmp_path / "fleet"))
    assert merged.returncode == 1, merged.stderr
    results = {r["id"]: r for r in json.loads((tmp_path / "fleet" / "results.json").read_text())["results"]}
    for node in ("dgx022", "dgx023"):
        twin = [i for i in results if i.startswith(f"test_vf_guids_unique[{node}-")]
        assert [(results[i]["outcome"], results[i]["message"]) for i in twin] == [
            (faults_run.results[i]["outcome"], faults_run.results[i]["message"]) for i in twin]
    assert results[item]["outcome"] == "failed" and results[item]["remediation"] is not None
