"""What the suite does to the Kubernetes API, proven by the twin's request log.

A fixed number of LISTs whatever the node count; --read-only sends no write at all; no probe pod is
left after a run, nor after one interrupted with SIGINT while its probes wait; evaluate on the bundle
gives the live results.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ibconform.collect import cluster
from ibconform.collect.probes import PROBE_SELECTOR
from ibconform.twin import Twin
from tests.e2e.conftest import ibconform, run_suite

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _scenario(tmp_path: Path, nodes: int, kubelet_delay: float | None = None) -> Path:
    text = (f"format: ibconform-twin/v1\ncluster: twin-{nodes}\nprofile: dgx-b200\n"
            f"nodes:\n  - names: 'dgx[001-{nodes:03d}]'\n")
    if kubelet_delay is not None:
        text += f"kubernetes: {{kubeletDelay: {kubelet_delay}}}\n"
    path = tmp_path / f"scenario-{nodes}.yaml"
    path.write_text(text)
    return path


def _lists(twin: Twin) -> Counter:
    return Counter(r.resource for r in twin.api.requests if r.verb == "list")


def _probe_pods(twin: Twin) -> list[dict]:
    return twin.api.list("pods", "default", label_selector=PROBE_SELECTOR)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """For 2 and 32 nodes: the request log of a read-only run and of a probing run."""
    seen = {}
    for nodes in (2, 32):
        tmp = tmp_path_factory.mktemp(f"n{nodes}")
        with Twin(_scenario(tmp, nodes), tmp / "twin") as twin:
            twin.api.clear_requests()
            read_only = run_suite(twin.inventory_path, tmp / "ro", "--read-only")
            ro_requests = list(twin.api.requests)
            twin.api.clear_requests()
            probed = run_suite(twin.inventory_path, tmp / "probed")
            seen[nodes] = {"ro": read_only, "ro_requests": ro_requests, "probed": probed,
                           "probed_requests": list(twin.api.requests), "left": _probe_pods(twin)}
    return seen


def test_healthy_nodes_pass_every_check_including_the_probe(runs):
    for nodes in (2, 32):
        probed = runs[nodes]["probed"]
        assert probed.code == 0, probed.stdout[-2000:]
        # the default probe level start: the rdma and nccl checks are skipped, everything else passes
        assert {r["outcome"] for r in probed.results.values() if r["link"] not in ("rdma", "nccl")} == {"passed"}
        assert sum(r["check"] == "probe_scheduled" for r in probed.results.values()) == nodes


def test_list_calls_do_not_grow_with_the_node_count(runs):
    for kind in ("ro_requests", "probed_requests"):
        small = Counter(r.resource for r in runs[2][kind] if r.verb == "list")
        large = Counter(r.resource for r in runs[32][kind] if r.verb == "list")
        assert small == large, f"{kind}: {small} vs {large}"
    # one LIST per kind the collector reads (pods: one per component namespace, all one here), whatever the N
    assert Counter(r.resource for r in runs[32]["ro_requests"] if r.verb == "list") == dict.fromkeys(
        (r.plural for r in cluster.RESOURCES), 1)


def test_read_only_sends_no_write_and_skips_the_probe(runs):
    for nodes in (2, 32):
        methods = {r.method for r in runs[nodes]["ro_requests"]}
        assert methods <= {"GET"}, methods
        probe = runs[nodes]["ro"].results["test_probe_scheduled[dgx001]"]
        assert probe["outcome"] == "skipped" and "read-only" in probe["message"]


def test_probing_run_creates_one_pod_per_node_and_leaves_none(runs):
    for nodes in (2, 32):
        requests = runs[nodes]["probed_requests"]
        creates = [r for r in requests if r.method == "POST" and r.resource == "pods"]
        deletes = [r for r in requests if r.method == "DELETE" and r.resource == "pods"]
        assert len(creates) == nodes and len(deletes) == nodes
        assert {r.method for r in requests} <= {"GET", "POST", "DELETE"}
        assert runs[nodes]["left"] == []


def test_evaluate_on_the_bundle_gives_the_live_results(runs, tmp_path):
    live = runs[2]["probed"]
    copy = tmp_path / "bundle"
    shutil.copytree(live.out / "bundle", copy)
    proc = ibconform("evaluate", str(copy), "--out", str(tmp_path / "re"))
    assert proc.returncode == live.code
    again = {r["id"]: r for r in json.loads((tmp_path / "re" / "results.json").read_text())["results"]}
    assert again == live.results


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_while_probes_wait_deletes_them_and_exits_2(tmp_path, sig):
    # kubelets that take a minute to admit: the probes are bound and waiting when SIGINT comes
    with Twin(_scenario(tmp_path, 4, kubelet_delay=60), tmp_path / "twin") as twin:
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-m", "ibconform.cli", "run", "-i", str(twin.inventory_path),
                                 "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(_probe_pods(twin)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_probe_pods(twin)) == 4, "probes were never created"
        sent = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 10, "took 10 s or more to stop"
        assert proc.returncode == 2, stderr
        assert _probe_pods(twin) == []
        manifest = json.loads((out / "bundle" / "manifest.json").read_text())
        assert manifest["interrupted"] is True and manifest["complete"] is False
        results = json.loads((out / "results.json").read_text())
        assert results["run"]["interrupted"] is True
