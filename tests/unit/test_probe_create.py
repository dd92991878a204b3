"""Probe pods are created a bounded number at a time, and every pod a run asked for is deleted, even when the run
is stopped while creates are in flight."""

import threading
import time
from pathlib import Path

from kubernetes import client

from ibconform import inventory
from ibconform.collect.probes import API_PARALLEL, ProbeRun

NODES = 40
TEXT = f"""\
format: ibconform/v1
cluster: c1
profiles:
  p:
    hcas: [{{iface: ibp24s0, pci: "0000:18:00.0"}}]
nodes:
  - {{names: "dgx[001-{NODES:03d}]", profile: p}}
"""


class _Drained:
    def drain_conn(self) -> None:
        pass


class FakeCore:
    """Counts creates in flight; ``stop`` is set after ``stop_after`` creates began."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int = 0) -> None:
        self.lock, self.in_flight, self.peak = threading.Lock(), 0, 0
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.stop, self.stop_after = stop, stop_after

    def create_namespaced_pod(self, namespace: str, body: dict, **_: object) -> _Drained:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.stop is not None and len(self.created) + self.in_flight >= self.stop_after:
                self.stop.set()
        time.sleep(0.02)
        with self.lock:
            self.in_flight -= 1
            self.created.append(body["metadata"]["name"])
        return _Drained()

    def delete_namespaced_pod(self, name: str, namespace: str, **_: object) -> _Drained:
        with self.lock:
            self.deleted.append(name)
        return _Drained()


def _probe_run(stop: threading.Event | None = None) -> ProbeRun:
    inv = inventory.parse(TEXT, Path("inv.yaml"))
    lists = {"nodes": {"items": [{"metadata": {"name": n.name}} for n in inv.nodes]}}
    return ProbeRun(client.ApiClient(), inv, lists, run_id="ibconform-test-1", stop=stop)


def test_probes_are_created_a_bounded_number_at_a_time():
    run, core = _probe_run(), FakeCore()
    run.core = core
    records: dict[str, dict] = {}
    pods = run.create(records)
    assert len(pods) == len(core.created) == NODES
    assert 1 < core.peak <= API_PARALLEL
    assert {r["outcome"] for r in records.values()} == {"pending"}
    assert sorted(run.delete_created()) == sorted(core.created)


def test_a_run_stopped_while_creating_deletes_every_pod_it_asked_for():
    stop = threading.Event()
    run, core = _probe_run(stop), FakeCore(stop, stop_after=5)
    run.core = core
    records: dict[str, dict] = {}
    run.create(records)
    run.delete_created()
    assert 0 < len(core.created) < NODES
    assert set(core.created) <= set(core.deleted)
    skipped = [r for r in records.values() if r["pod"] is None]
    assert skipped and all(r["message"] == "the run was stopped before its probe pod was created" for r in skipped)
