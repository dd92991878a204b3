"""Concurrency hygiene: a run never exceeds its configured fan-out (measured on the wire), and two runs
at once on the same cluster never touch each other's probe pods."""

from __future__ import annotations

import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ibconform.twin import Twin
from tests.e2e.conftest import run_suite


def _scenario(tmp_path: Path, nodes: int, mst_delay: float) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"format: ibconform-twin/v1\ncluster: twin-fanout\nprofile: dgx-b200\n"
                    f"defaults: {{mstDelay: {mst_delay}}}\nnodes:\n  - names: 'dgx[001-{nodes:03d}]'\n")
    return path


def _ssh_connections(addresses: set[str]) -> int:
    """Client-side ESTABLISHED TCP connections to :22 of ``addresses`` right now (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        host_hex, port_hex = remote.split(":")
        if state == "01" and int(port_hex, 16) == 22:
            host = socket.inet_ntoa(struct.pack("<I", int(host_hex, 16)))
            count += host in addresses
    return count


def test_collection_never_exceeds_the_configured_fan_out(tmp_path):
    parallel = 3
    with Twin(_scenario(tmp_path, 12, mst_delay=1.0), tmp_path / "twin") as twin:
        data = yaml.safe_load(twin.inventory_path.read_text())
        data["collect"] = {"parallel": parallel}
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(data))
        addresses, peak, done = set(twin.addresses.values()), 0, threading.Event()

        def sample() -> None:
            # /proc/net/tcp is not read atomically: a connection closing while the next one opens can be seen
            # both in one read. A real excess lasts a whole session (>= 1 s here), so it shows in two reads
            # 20 ms apart; count what both consecutive reads agree on.
            nonlocal peak
            previous = 0
            while not done.is_set():
                now = _ssh_connections(addresses)
                peak = max(peak, min(previous, now))
                previous = now
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            started = time.monotonic()
            run = run_suite(inventory, tmp_path / "out", "--read-only")
            elapsed = time.monotonic() - started
        finally:
            done.set()
            sampler.join()
    assert run.code == 0, run.stdout[-1000:]
    assert 1 <= peak <= parallel, f"peak {peak} SSH connections with collect.parallel {parallel}"
    assert elapsed >= 12 / parallel * 1.0, "12 nodes of >= 1 s each, 3 at a time, cannot finish sooner"


def test_two_runs_at_once_keep_to_their_own_probe_pods(tmp_path):
    with Twin("demo", tmp_path / "twin") as twin:
        twin.api.clear_requests()
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda name: run_suite(twin.inventory_path, tmp_path / name), ["a", "b"]))
        creates = [r for r in twin.api.requests if r.method == "POST" and r.resource == "pods"]
        deletes = [r for r in twin.api.requests if r.method == "DELETE" and r.resource == "pods"]
        assert len(creates) == 4 and len(deletes) == 4
        created_by = {}
        for run, name in ((runs[0], "a"), (runs[1], "b")):
            probes = [r for r in run.results.values() if r["check"] == "probe_scheduled"]
            assert len(probes) == 2
            created_by[name] = {e.split()[2].rstrip(":") for r in probes for e in r["evidence"]
                                if e.startswith("probe pod ")}
        assert created_by["a"] and created_by["b"] and not created_by["a"] & created_by["b"]
        # each DELETE names a pod its own run created: no run deleted the other's probes
        deleted = [r.name for r in deletes]
        assert sorted(deleted) == sorted(created_by["a"] | created_by["b"])
        # the probes compete for the same GPUs and VFs, so one run's probe may find them taken (and its in-pod
        # checks have nothing to judge); all else agrees
        outcomes = [{i: r["outcome"] for i, r in run.results.items()
                     if r["link"] not in ("workload", "attach", "rdma", "nccl")} for run in runs]
        assert outcomes[0] == outcomes[1]
        assert twin.api.list("pods", "default") == []
