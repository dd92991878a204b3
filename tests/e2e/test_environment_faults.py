"""Faults of the environment end to end: the real suite, over real SSH and HTTPS, against the `environment` twin.

Each fault leaves the run complete, the other nodes judged normally, and that node's checks in error (or
failed, where the evidence itself is bad) with a one-line reason, within the configured timeouts:
sshd refusing the key, sudo wanting a password, mstconfig printing garbage or a cut table, a missing
sysfs file, a node rebooting or freezing mid-collection; on the API side, objects with missing or
mistyped fields, a probe watch dropped mid-stream (resumed), and an API server slower than
kubernetes.timeout. docs/reliability.md lists each with what the user sees.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ibconform.twin import Twin
from tests.e2e.conftest import Run, run_suite
from tests.e2e.test_node_faults import EXCLUDED, FIRMWARE, HCAS, PER_HCA
from tests.e2e.test_node_faults import NODE_SIDE as NODE_CHECKS  # the VFs' checks too
from tests.e2e.test_vf_faults import VF_PER_HCA

COMMAND_TIMEOUT = 8      # the scenario's ssh.commandTimeout
API_TIMEOUT = 2          # kubernetes.timeout of the slow-API run


def _node_side_error(node: str, reason: str) -> dict[str, tuple[str, str]]:
    """Every node-side item of ``node`` in error with ``reason``."""
    expected = {f"test_{c}[{node}-{h}]": ("error", reason) for c in PER_HCA + VF_PER_HCA for h in HCAS}
    expected |= {f"test_excluded_device_has_no_vfs[{node}-{d}]": ("error", reason) for d in EXCLUDED}
    expected |= {f"test_{c}[{node}]": ("error", reason)
                 for c in ("firmware_version_consistent", "node_identity", "rdma_netns_mode")}
    return expected


ADDRESS = r"127\.\d+\.\d+\.\d+"
# node -> {item id: (outcome, regex the message must match)}: the node-side checks
NODE_SIDE: dict[str, dict[str, tuple[str, str]]] = {
    "env001": {},
    "env002": _node_side_error("env002", rf"^env002 unreachable: ssh root@{ADDRESS}:22 refused authentication "
                                         r"\(Authentication failed\.\)$"),
    "env003": _node_side_error("env003", rf"^env003 unreachable: sudo -n on {ADDRESS} refused to run the node script "
                                         r"\(sudo: a password is required\): give root passwordless sudo \(NOPASSWD\), "
                                         r"or set ssh\.sudo false and log in as root$"),
    "env004": {f"test_{c}[env004-ibp24s0]": (
        "failed", r"^mstconfig -d 0000:18:00\.0 printed no readable table \(exit 0, mstconfig output holds no "
                  r"'Configurations:' table and no '-E-' line\): raw '\\x1b\[2J\\x1b\[H\\x00\\x7f@@ mst: ioctl")
        for c in FIRMWARE},
    "env005": {f"test_{c}[env005-ibp24s0]": (
        "failed", r"^mstconfig -d 0000:18:00\.0 output incomplete \(exit 0\): row NUM_OF_VFS has 1 of 3 values "
                  r"\(Default / Current / Next Boot\): '\*\s+NUM_OF_VFS\s+0': the output was cut short — run "
                  r"mstconfig -d 0000:18:00\.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1 again on the node$")
        for c in FIRMWARE},
    "env006": {"test_sriov_totalvfs_allows_expected[env006-ibp64s0]": (
        "failed", r"^/sys/class/net/ibp64s0/device/sriov_totalvfs could not be read on env006 \(cat: "
                  r"/sys/class/net/ibp64s0/device/sriov_totalvfs: No such file or directory\)")},
    "env007": _node_side_error("env007", rf"^env007 unreachable: ssh connection to {ADDRESS} lost before the node "
                                         r"script finished: the node rebooted or sshd died"),
    "env008": _node_side_error("env008", rf"^env008 unreachable: node script did not finish within "
                                         rf"{COMMAND_TIMEOUT} s \(command timeout\)$"),
    **{node: {} for node in ("env009", "env010", "env011", "env012")},
}
UNSCHEDULABLE = r"^probe pod \S+ on {node} expected scheduled vs unschedulable: FailedScheduling: 0/12 nodes are available"
# node -> {item id: (outcome, regex)}: the cluster-side checks; env002..env008 are healthy in Kubernetes
CLUSTER_SIDE: dict[str, dict[str, tuple[str, str]]] = {
    **{f"env{i:03d}": {} for i in range(1, 13)},
    "env009": {   # Node without status.allocatable
        **{f"test_resource_allocatable[env009-res{h}]": (
            "failed", rf"^allocatable nvidia\.com/res{h} on env009 expected 8 vs absent: the device plugin")
           for h in HCAS},
        "test_probe_scheduled[env009]": ("failed", UNSCHEDULABLE.format(node="env009")),
    },
    "env010": {   # SriovNetworkNodeState without status
        "test_node_state_synced[env010]": (
            "failed", r"^SriovNetworkNodeState env010 syncStatus expected Succeeded vs \(empty: not stable yet\)")},
    "env011": {   # nv-ipam node pod without containers
        "test_ipam_node_pod[env011]": (
            "failed", r"^nv-ipam node pod \S+ on env011 container expected vs none in the pod spec: see what "
                      r"rewrote the pod \(kubectl get pod -o yaml\)$")},
    "env012": {   # a string where a count is expected
        "test_resource_allocatable[env012-resibp24s0]": (
            "failed", r"^allocatable nvidia\.com/resibp24s0 on env012 expected 8 vs 'eight' \(not a count\)"),
        "test_probe_scheduled[env012]": ("failed", UNSCHEDULABLE.format(node="env012")),
    },
}


def _break_objects(twin: Twin) -> None:
    """What a buggy controller or a hand edit can leave in the API: fields missing or of the wrong type."""
    api = twin.api
    node = api.get("v1", "Node", "env009")
    del node["status"]["allocatable"]
    api.put(node)
    state = api.get("sriovnetwork.openshift.io/v1", "SriovNetworkNodeState", "env010", "network-operator")
    del state["status"]
    api.put(state)
    pod = next(p for p in api.list("pods", "network-operator", label_selector="name=nv-ipam-node")
               if p["spec"].get("nodeName") == "env011")
    pod["spec"]["containers"] = []
    api.put(pod)
    node = api.get("v1", "Node", "env012")
    for field in ("allocatable", "capacity"):
        node["status"][field]["nvidia.com/resibp24s0"] = "eight"
    api.put(node)


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One probing run on the environment twin (objects broken, the probe watch dropped after its first
    event), then a read-only run of its healthy node against an API slower than kubernetes.timeout."""
    tmp = tmp_path_factory.mktemp("environment")
    with Twin("environment", tmp / "twin") as twin:
        _break_objects(twin)
        twin.api.clear_requests()
        twin.api.set_fault(paths=r"/pods$", verbs=["watch"], times=1, drop_after=1)
        main = run_suite(twin.inventory_path, tmp / "main")
        main_requests = list(twin.api.requests)
        dropped = twin.api.emulator.dropped_watches
        twin.api.clear_fault()

        inventory = yaml.safe_load(twin.inventory_path.read_text())
        inventory["nodes"] = [{"names": "env001", "profile": "dgx-b200"}]
        inventory["kubernetes"]["timeout"] = API_TIMEOUT
        slow_inventory = tmp / "slow-inventory.yaml"
        slow_inventory.write_text(yaml.safe_dump(inventory))
        twin.api.clear_requests()
        twin.api.set_fault(latency=API_TIMEOUT + 3)
        started = time.monotonic()
        slow = run_suite(slow_inventory, tmp / "slow", "--read-only")
        slow_seconds = time.monotonic() - started
        twin.api.clear_fault()
        return {"main": main, "main_requests": main_requests, "dropped": dropped, "slow": slow,
                "slow_requests": list(twin.api.requests), "slow_seconds": slow_seconds}


def _not_passed(run: Run, node: str | None, node_side: bool) -> dict[str, dict]:
    return {i: r for i, r in run.not_passed(node).items() if (r["check"] in NODE_CHECKS) == node_side}


def _assert_exactly(seen: dict[str, dict], expected: dict[str, tuple[str, str]], where: str) -> None:
    unexpected = sorted(set(seen) - set(expected))
    first = f" (the first: {seen[unexpected[0]]['outcome']} {seen[unexpected[0]]['message']!r})" if unexpected else ""
    assert set(seen) == set(expected), f"{where}: unexpected {unexpected}{first}, " \
                                       f"missing {sorted(set(expected) - set(seen))}"
    for item, (outcome, pattern) in expected.items():
        assert seen[item]["outcome"] == outcome, f"{item}: {seen[item]}"
        assert re.search(pattern, seen[item]["message"]), f"{item}: {seen[item]['message']!r} !~ {pattern!r}"


def test_every_twin_node_is_covered(environment):
    assert {r["node"] for r in environment["main"].results.values()} - {None} == set(NODE_SIDE) == set(CLUSTER_SIDE)


def test_each_node_fault_errs_or_fails_exactly_its_node_checks(environment):
    for node, expected in NODE_SIDE.items():
        _assert_exactly(_not_passed(environment["main"], node, node_side=True), expected, node)


def test_each_malformed_object_fails_exactly_its_cluster_checks(environment):
    for node, expected in CLUSTER_SIDE.items():
        _assert_exactly(_not_passed(environment["main"], node, node_side=False), expected, node)
    assert _not_passed(environment["main"], None, node_side=False) == {}


def test_the_run_completes_without_a_traceback(environment):
    main = environment["main"]
    assert main.code == 1, main.stderr[-2000:]
    assert "Traceback" not in main.stdout + main.stderr
    assert (main.out / "report.html").is_file() and (main.out / "junit.xml").is_file()
    manifest = json.loads((main.out / "bundle" / "manifest.json").read_text())
    assert manifest["complete"] is True


def test_a_dead_node_errs_within_the_command_timeout(environment):
    bundle = environment["main"].out / "bundle" / "nodes"
    rebooted = json.loads((bundle / "env007" / "status.json").read_text())
    frozen = json.loads((bundle / "env008" / "status.json").read_text())
    assert not rebooted["reachable"] and rebooted["seconds"] < COMMAND_TIMEOUT / 2   # the connection closed
    assert not frozen["reachable"] and COMMAND_TIMEOUT <= frozen["seconds"] < COMMAND_TIMEOUT + 2   # silent
    assert not (bundle / "env007" / "mstconfig").exists()   # nothing of the cut output is judged


def test_bad_tool_output_is_shown_raw_under_the_failure(environment):
    results = environment["main"].results
    garbage = results["test_firmware_vfs_committed[env004-ibp24s0]"]["evidence"]
    assert garbage == ["mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1 (exit 0):\n"
                       "\x1b[2J\x1b[H\x00\x7f@@ mst: ioctl 0xc0185a02 returned \x1b[31m-14\x1b[0m ?? \ufffd\ufffd"]
    cut = results["test_firmware_sriov_enabled[env005-ibp24s0]"]["evidence"]
    assert len(cut) == 1 and cut[0].endswith("Next Boot\n*       NUM_OF_VFS                                  0")
    assert "Configurations:" in cut[0] and "SRIOV_EN" not in cut[0].split("(exit 0):", 1)[1]
    remedies = {i: r["remediation"]["id"] for i, r in results.items() if r["node"] in ("env004", "env005", "env006")
                and r["outcome"] in ("failed", "error")}
    assert set(remedies.values()) == {"mstconfig-open-failed", "mstconfig-output-cut", "sysfs-unreadable"}, remedies
    assert remedies["test_sriov_totalvfs_allows_expected[env006-ibp64s0]"] == "sysfs-unreadable"
    report = (environment["main"].out / "report.html").read_bytes()
    assert b"\x00" not in report and b"\x1b" not in report


def test_a_dropped_probe_watch_resumes_and_every_probe_gets_its_verdict(environment):
    assert environment["dropped"] == 1
    watches = [r for r in environment["main_requests"] if r.verb == "watch" and r.resource == "pods"]
    assert len(watches) >= 2, [r.query for r in watches]
    first, second = (int(w.query["resourceVersion"]) for w in watches[:2])
    assert second > first          # resumed from the event it saw, not from the start
    probe_lists = [r for r in environment["main_requests"] if r.verb == "list" and r.resource == "pods"
                   and "ibconform.io/run=" in r.query.get("labelSelector", "")]
    assert len(probe_lists) == 1   # and never LISTed again
    probes = json.loads((environment["main"].out / "bundle" / "cluster" / "probes.json").read_text())["probes"]
    healthy = {p["node"]: p for p in probes if p["node"] not in ("env009", "env012")}
    assert len(healthy) == 10 and {p["outcome"] for p in healthy.values()} == {"running"}
    assert all(p["message"] == f"running on {node}" for node, p in healthy.items())


def test_a_slow_api_errs_naming_the_timeout_within_it(environment):
    slow = environment["slow"]
    assert slow.code == 1 and "Traceback" not in slow.stdout + slow.stderr
    reason = (r"^list nodes \(cluster-wide\): no answer within 2 s \(kubernetes\.timeout\): the API server is "
              r"overloaded or unreachable — check its health, or raise kubernetes\.timeout$")
    not_sent = (r"not sent: the API server did not answer list nodes \(cluster-wide\) within 2 s "
                r"\(kubernetes\.timeout\)")
    cluster = {i: r for i, r in slow.results.items() if r["check"] not in NODE_CHECKS}
    assert cluster and {r["outcome"] for r in cluster.values()} == {"error"}, \
        {i: r["outcome"] for i, r in cluster.items()}
    assert all(re.search(reason, r["message"]) or re.search(not_sent, r["message"]) for r in cluster.values()), \
        {r["message"] for r in cluster.values()}
    assert any(re.search(reason, r["message"]) for r in cluster.values())
    node_side = [r for r in slow.results.values() if r["check"] in NODE_CHECKS]
    assert node_side and {r["outcome"] for r in node_side} == {"passed"}   # the node is judged regardless
    assert [(r.verb, r.resource) for r in environment["slow_requests"]] == [("list", "nodes")]   # one timeout,
    assert environment["slow_seconds"] < 20, environment["slow_seconds"]                          # not 7 or 14


def test_the_reliability_table_cites_only_tests_that_exist():
    root = Path(__file__).parents[2]
    cited = set(re.findall(r"(tests/e2e/test_\w+\.py)::(test_\w+)", (root / "docs" / "reliability.md").read_text()))
    assert len(cited) >= 20
    for path, test in sorted(cited):
        assert re.search(rf"^def {test}\(", (root / path).read_text(), re.M), f"{path}::{test} does not exist"



def test_a_node_with_no_route_errs_at_once(tmp_path):
    """Node down, no route to it: emulated in a network namespace of the test's own, where 127.0.9.9 has an
    `unreachable` route (no packet leaves the namespace; there is no device but lo)."""
    (tmp_path / "ssh_config").write_text("Host down01\n  HostName 127.0.9.9\n")
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "inventory.yaml").write_text(
        "format: ibconform/v1\ncluster: no-route\n"
        "ssh: {config: ssh_config, knownHosts: known_hosts, connectTimeout: 5}\n"
        'profiles: {p: {hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]}}\n'
        "nodes: [{names: down01, profile: p}]\n")
    script = ("ip link set lo up && ip route del local 127.0.0.0/8 dev lo table local && "
              "ip route add unreachable 127.0.9.9/32 && "
              f'exec "$0" -m ibconform.cli run -i {tmp_path}/inventory.yaml --read-only --out {tmp_path}/out')
    started = time.monotonic()
    proc = subprocess.run(["unshare", "--net", "sh", "-c", script, sys.executable], capture_output=True, text=True,
                          timeout=120)
    assert time.monotonic() - started < 60, "no route must not wait for the connect timeout of every retry"
    assert proc.returncode == 1, proc.stderr
    status = json.loads((tmp_path / "out" / "bundle" / "nodes" / "down01" / "status.json").read_text())
    assert status["error"] == "ssh 127.0.9.9:22: no route to host"
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert not [r for r in results if "NOTSET" in r["id"]], "a check with nothing to judge must be no item"
    node_side = [r for r in results if r["check"] == "sriov_numvfs"]
    assert node_side[0]["outcome"] == "error"
    assert node_side[0]["message"] == "down01 unreachable: ssh 127.0.9.9:22: no route to host"
