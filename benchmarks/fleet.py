#!/usr/bin/env python3
"""Fleet benchmark: ``ibconform run`` against the parallel-SSH floor and the naive testinfra approach,
all on one twin of N DGX nodes.

    python benchmarks/fleet.py --nodes 64 [--mst-latency 0.3] [--json out.json] [--repeat 3]
                               [--skip-naive | --naive-max-nodes M] [--naive-workers 2]
                               [--naive-backend paramiko|ssh] [--parallel P] [--profile dgx-b200]
                               [--quiet S] [--keep DIR] [--cprofile FILE] [--shards K [--shard-parallelism P]]

Brings up one twin (each node an sshd on its own loopback address, a fake mstconfig that takes
``--mst-latency`` seconds per query, the Kubernetes API) and measures on it, per repeat (in the order
suite ``--read-only``, clush, suite with probes, paramiko pool, naive: the probing suite and the faster floor
back to back, each repeat's ratio in ``suite_over_floor_each``):

- ``suite``: ``ibconform run`` end to end as a subprocess, once ``--read-only`` and once with probe pods;
  ``suite_s`` is the probing run;
- ``floor``: parallel SSH alone running the suite's own node script (``nodescript.build``) on every node,
  with the suite's fan-out (``collect.parallel``): ClusterShell's ``clush`` (a subprocess, so its
  interpreter start-up is in it) and a bare paramiko thread pool (in this process: connect + one exec
  per node, nothing else); ``floor_s`` is the faster;
- ``naive``: ``benchmarks/naive/test_naive.py`` (pytest-testinfra, one command per check per HCA) over
  every node, under pytest-xdist; with ``--naive-max-nodes M`` < N it runs on M nodes and the per-node
  cost is extrapolated linearly to N (its fixed start-up, measured with every test deselected, is not).

SSH sessions are counted from the nodes' sshd logs (the twin runs sshd at LogLevel VERBOSE, which
logs each TCP connection, login and exec session); API LISTs from the twin's request log; peak memory
is the summed resident set of ``ibconform run`` and the evaluation process it starts (sampled every
0.1 s; ``wait4``'s maximum of the largest if that is higher); MB means 10**6 bytes.
Times are medians over ``--repeat`` runs. The CPU other processes used during each measurement is
recorded (``others_cores``); ``--quiet S`` waits for a quiet machine before each one and redoes those
others disturbed. Needs root (the twin), sshd, unshare and ssh (for clush).
Ctrl-C or SIGTERM stops the running measurement (``ibconform run`` deletes its probe pods) and takes
the twin down.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paramiko  # noqa: E402
import yaml  # noqa: E402
from ClusterShell.NodeSet import NodeSet  # noqa: E402

from benchmarks import chromium  # noqa: E402
from ibconform import inventory as inventory_mod  # noqa: E402
from ibconform.collect import nodescript  # noqa: E402
from ibconform.errors import ParseError  # noqa: E402
from ibconform.transports.ssh import add_known_keys, resolve_target  # noqa: E402
from ibconform.twin import Twin  # noqa: E402
from ibconform.twin.machines.hardware import PROFILES  # noqa: E402

NAIVE = REPO / "benchmarks" / "naive"
BENCH_PROFILE = "dgx-b200-bench"
MB = 1e6
CHILD_TIMEOUT_S = 1800.0        # --child-timeout: the longest any one measured command may run
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------- the twin

def bench_profile() -> dict:
    """The issue's DGX node: the built-in dgx-b200's 8 compute ConnectX-7, its 2 BlueField-3 DPUs and one
    internal mezz port as the 3 excluded devices (the built-in profile excludes all 4 mezz ports: 6)."""
    slots = PROFILES["dgx-b200"]
    hcas = [s for s in slots if s.excluded is None]
    dpus = [s for s in slots if s.excluded and "BlueField" in s.excluded]
    mezz = [s for s in slots if s.excluded and "mezz" in s.excluded][:1]
    return {"devices": [{"iface": s.iface, "pci": s.pci, "rdma": s.rdma, "type": s.type,
                         **({"excluded": s.excluded} if s.excluded else {})} for s in hcas + dpus + mezz]}


def scenario(nodes: int, mst_latency: float, profile: str, parallel: int | None, level: str | None = None) -> dict:
    width = max(3, len(str(nodes)))
    names = f"dgx[{1:0{width}d}-{nodes:0{width}d}]" if nodes > 1 else f"dgx{1:0{width}d}"
    doc: dict = {"format": "ibconform-twin/v1", "cluster": f"fleet-{nodes}", "profile": profile,
                 "defaults": {"mstDelay": mst_latency}, "nodes": [{"names": names}]}
    if profile == BENCH_PROFILE:
        doc["profiles"] = {BENCH_PROFILE: bench_profile()}
    # the product's SSH timeouts (the twin's own inventory shortens them for its fault tests; the floor has none)
    doc["inventory"] = {"ssh": {"connectTimeout": 10.0, "commandTimeout": 120.0}}
    if parallel:
        doc["inventory"]["collect"] = {"parallel": parallel}
    if level:
        doc["inventory"]["probe"] = {"level": level}
    return doc


class SshdLogs:
    """Counts what each node's sshd logged since a mark."""

    KINDS: ClassVar[dict[str, str]] = {"connections": "Connection from ", "logins": "Accepted publickey for ",
                                       "sessions": "Starting session: "}

    def __init__(self, twin: Twin) -> None:
        self.paths = {name: twin.node_dir(name) / "sshd.log" for name in twin.addresses}

    def settle(self, timeout: float = 10.0) -> None:
        """Wait till the twin's own readiness probes (a TCP connect per node at start-up) are logged and
        the logs are still, so they are not counted as the first measurement's connections."""
        deadline = time.monotonic() + timeout
        last: dict[str, int] = {}
        while time.monotonic() < deadline:
            sizes = self.mark()
            logged = all("Connection closed" in path.read_text(errors="replace") for path in self.paths.values())
            if logged and sizes == last:
                return
            last = sizes
            time.sleep(0.2)

    def mark(self) -> dict[str, int]:
        return {name: path.stat().st_size if path.exists() else 0 for name, path in self.paths.items()}

    def since(self, mark: dict[str, int]) -> dict[str, Counter]:
        counts = {}
        for name, path in self.paths.items():
            with open(path, "rb") as f:
                f.seek(mark[name])
                text = f.read().decode(errors="replace")
            counts[name] = Counter({kind: text.count(word) for kind, word in self.KINDS.items()})
        return counts

    @staticmethod
    def summary(counts: dict[str, Counter], nodes: list[str]) -> dict:
        """Per kind: min and max over ``nodes`` (a node absent from the log counts 0)."""
        return {kind: {"min": min(counts[n][kind] for n in nodes), "max": max(counts[n][kind] for n in nodes)}
                for kind in SshdLogs.KINDS}


# ---------------------------------------------------------------------------------------------- interference

class Others:
    """CPU time used by processes outside this benchmark's process tree: someone else's work on the machine.

    Sums utime+stime+cutime+cstime of every process not descending from this one (a process that ends
    between two snapshots is in its parent's cutime by the second), so ``cores(a, b, seconds)`` is the
    average number of cores others kept busy between snapshots ``a`` and ``b``.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> float:
        stats: dict[int, tuple[int, int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()          # fields[0] is field 3 (state)
            stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        mine, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            mine.add(pid)
            todo.extend(children.get(pid, []))
        return sum(ticks for pid, (_, ticks) in stats.items() if pid not in mine) / self.TICK

    def wait_quiet(self, limit: float, threshold: float) -> float:
        """Wait (at most ``limit`` s) till others use less than ``threshold`` cores over one second;
        return how long it waited."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.snapshot()
            time.sleep(1.0)
            if self.snapshot() - before < threshold:
                break
        return round(time.monotonic() - started, 1)


# ---------------------------------------------------------------------------------------------- children

@dataclass
class Finished:
    seconds: float
    code: int
    peak_rss_mb: float
    started: float      # wall clock (time.time) at start, to place file mtimes
    ended: float


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in children.read_text().split()]
    return found


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants right now."""
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
    return total


class TreeRss(threading.Thread):
    """Samples the summed resident set of a process tree every ``period`` s; ``peak`` is the largest sum."""

    def __init__(self, pid: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.period, self.peak = pid, period, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.peak = max(self.peak, _tree_rss(self.pid))


def run_child(cmd: list[str], *, stdout: Path, stdin: Path | None = None, env: dict | None = None,
              cwd: Path | None = None, stop_grace: float = 20.0) -> Finished:
    """Run ``cmd`` in its own session, time it, and measure its peak memory: the largest of its own
    maximum resident set (wait4) and the summed resident sets of it and its children (sampled).

    Any exception while it runs (Ctrl-C, SIGTERM) stops it first: SIGTERM to its process group (so
    ``ibconform run`` deletes its probe pods while the twin's API is still up), SIGKILL after ``stop_grace``.
    So does a run longer than ``--child-timeout``, which then ends the benchmark naming the command.
    """
    with open(stdout, "wb") as out, open(stdin or os.devnull, "rb") as inp:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdin=inp, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd, start_new_session=True)
        sampler = TreeRss(proc.pid)
        sampler.start()
        fired = threading.Event()

        def overdue_stop() -> None:
            fired.set()
            _stop_group(proc.pid, stop_grace)

        overdue = threading.Timer(CHILD_TIMEOUT_S, overdue_stop)
        overdue.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _stop(proc, stop_grace)
            raise
        finally:
            overdue.cancel()
            sampler.done.set()
        seconds = time.perf_counter() - t0
    if fired.is_set():
        raise SystemExit(f"fleet: {' '.join(str(c) for c in cmd[:4])} ... ran over --child-timeout "
                         f"{CHILD_TIMEOUT_S:g} s and was stopped; the end of its output ({stdout.name}):\n"
                         + _tail(stdout))
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = max(usage.ru_maxrss * 1024, sampler.peak)
    return Finished(seconds, proc.returncode, peak / MB, started, time.time())


def _stop_group(pid: int, grace: float) -> None:
    """SIGTERM to a process group, SIGKILL after ``grace`` s if its leader still runs (its waiter reaps it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            os.killpg(pid, 0)           # ProcessLookupError once the whole group is gone
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):   # whatever is left of its group (pytest-xdist workers)
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
        proc.wait(timeout=5)


def _tail(path: Path, lines: int = 5) -> str:
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------- suite

def measure_suite(twin: Twin, logs: SshdLogs, work: Path, tag: str, read_only: bool,
                  inventory: Path | None = None) -> dict:
    out, attempt = work / tag, 1
    while out.exists():                     # a measurement done again (--quiet) gets its own folder
        attempt += 1
        out = work / f"{tag}-{attempt}"
    tag = out.name
    mark, first = logs.mark(), len(twin.api.requests)
    cmd = [sys.executable, "-m", "ibconform.cli", "run", "-i", inventory or twin.inventory_path, "--out", out]
    finished = run_child([*cmd, "--read-only"] if read_only else cmd, stdout=work / f"{tag}.log", cwd=REPO)
    requests = twin.api.requests[first:]
    if not (out / "results.json").exists():
        raise SystemExit(f"fleet: ibconform run ({tag}) wrote no results.json, exit {finished.code}:\n"
                         + _tail(work / f"{tag}.log"))
    results = json.loads((out / "results.json").read_text())
    counts = results["run"].get("counts", {})
    items = sum(counts.values())
    phases = suite_phases(out, finished)
    return {
        "seconds": finished.seconds, "exit_code": finished.code, "peak_rss_mb": finished.peak_rss_mb,
        "api_lists": sum(r.verb == "list" for r in requests), "api_requests": len(requests),
        "api_list_calls": sum(r.verb == "list" and not r.query.get("continue") for r in requests),
        "api_writes": sum(r.is_write for r in requests),
        "api_by_verb": dict(Counter(f"{r.verb} {r.resource}" for r in requests if r.verb)),
        "ssh": SshdLogs.summary(logs.since(mark), list(twin.addresses)),
        "items": items, "outcomes": counts, "not_passed": not_passed(results["results"]), "phases": phases,
        "report_mb": (out / "report.html").stat().st_size / MB if (out / "report.html").exists() else None,
        "out": out,
    }


def not_passed(results: list[dict]) -> list[str]:
    """A run's items that did not pass, grouped by outcome and message: ``N x outcome: message (first id)``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r["outcome"] != "passed":
            groups.setdefault((r["outcome"], r["message"]), []).append(r["id"])
    return [f"{len(ids)} x {outcome}: {message} ({ids[0]})" for (outcome, message), ids in groups.items()]


def judged_bundle(out: Path, items: int) -> tuple[Path, int]:
    """The bundle of a run's output and its items; of a run in parts (over more than 256 nodes), its first part's."""
    if (out / "bundle").is_dir() or not (out / "parts" / "part-0").is_dir():
        return out / "bundle", items
    part = out / "parts" / "part-0"
    return part / "bundle", len(json.loads((part / "results.json").read_text())["results"])


def measure_evaluation(work: Path, bundle: Path, items: int) -> dict:
    """``ibconform evaluate`` of a finished bundle alone: what judging and reporting cost per item (in a run
    that cost is spread over the collection, which it overlaps)."""
    out = work / "evaluate-alone"
    finished = run_child([sys.executable, "-m", "ibconform.cli", "evaluate", bundle, "--out", out],
                         stdout=work / "evaluate-alone.log", cwd=REPO)
    return {"seconds": round(finished.seconds, 3), "exit_code": finished.code,
            "ms_per_item": round(1000 * finished.seconds / items, 3) if items else None,
            "peak_rss_mb": round(finished.peak_rss_mb, 1)}


def exec_inventory(twin: Twin, work: Path) -> Path:
    """The twin's inventory with every node reached through its config-daemon pod instead of SSH."""
    data = yaml.safe_load(Path(twin.inventory_path).read_text())
    data["transport"] = "config-daemon"
    for group in data.get("nodes", []):
        group.pop("transport", None)
    path = work / "inventory-config-daemon.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def verdicts(out: Path) -> dict[str, tuple]:
    """Each item's outcome and message in a run's results.json."""
    results = json.loads((out / "results.json").read_text())["results"]
    return {r["id"]: (r["outcome"], r["message"]) for r in results}


def suite_phases(out: Path, finished: Finished) -> dict:
    """When each part of the run ended, in seconds from its start, from the mtimes of what it wrote, and
    the durations between them."""
    bundle = out / "bundle"

    def at(path: Path) -> float | None:
        return round(path.stat().st_mtime - finished.started, 3) if path.exists() else None

    lists = [at(p) for p in (bundle / "cluster").glob("*.json") if p.name != "probes.json"]
    statuses = sorted((bundle / "nodes").glob("*/status.json"))
    node_seconds = [json.loads(p.read_text())["seconds"] for p in statuses]
    marks = {
        "cluster_lists_done": max(lists) if lists else None,
        "nodes_done": max(at(p) for p in statuses) if statuses else None,
        "probes_done": at(bundle / "cluster" / "probes.json"),
        "bundle_done": at(bundle / "manifest.json"),
        "results_json": at(out / "results.json"),
        "report_html": at(out / "report.html"),
        "junit_xml": at(out / "junit.xml"),
        "exit": round(finished.ended - finished.started, 3),
    }
    evaluated = max((v for k, v in marks.items() if k in ("results_json", "report_html", "junit_xml") and v),
                    default=None)
    phases: dict = {"marks_s": marks}
    if marks["cluster_lists_done"] is not None:
        phases["start_and_lists_s"] = marks["cluster_lists_done"]
        if marks["nodes_done"] is not None:
            phases["nodes_s"] = round(marks["nodes_done"] - marks["cluster_lists_done"], 3)
    if marks["bundle_done"] is not None and evaluated is not None:
        phases["collection_s"] = marks["bundle_done"]
        # evaluation runs while the bundle is written: this is only what is left once it is complete
        phases["evaluation_after_collection_s"] = round(evaluated - marks["bundle_done"], 3)
        phases["exit_s"] = round(marks["exit"] - evaluated, 3)
    if node_seconds:
        phases["node_seconds"] = {"min": min(node_seconds), "median": statistics.median(node_seconds),
                                  "max": max(node_seconds)}
    return phases


def report_breakdown(report: Path) -> dict:
    """Where report.html's bytes go: pytest-html's per-test JSON blob (table rows, logs, extras) vs the
    rest (the suite's summary matrix and root causes, CSS, scripts)."""
    text = report.read_text(errors="replace")
    total = len(text.encode())
    found = re.search(r'data-jsonblob="([^"]*)"', text)
    out: dict = {"bytes": total}
    if not found:
        return out
    blob_escaped = len(found.group(1).encode())
    blob = json.loads(html.unescape(found.group(1)))
    tests = blob.get("tests", {})
    rows = [entry for entries in tests.values() for entry in entries]
    parts = Counter()
    for entry in rows:
        for key, value in entry.items():
            parts[key] += len(json.dumps(value))
    escaped_ratio = blob_escaped / max(1, len(json.dumps(blob)))
    styles = sum(len(m.encode()) for m in re.findall(r"<style.*?</style>", text, re.S))
    scripts = sum(len(m.encode()) for m in re.findall(r"<script.*?</script>", text, re.S))
    out.update({
        "test_entries": len(rows),
        "jsonblob_bytes": blob_escaped,
        "jsonblob_bytes_per_entry": round(blob_escaped / max(1, len(rows))),
        "jsonblob_by_field_bytes": {k: round(v * escaped_ratio) for k, v in parts.most_common()},
        "style_bytes": styles, "script_bytes": scripts,
        "other_html_bytes": total - blob_escaped - styles - scripts,
    })
    return out


# ---------------------------------------------------------------------------------------------- fleet Job

ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"


def measure_fleet_job(twin: Twin, work: Path, tag: str, shards: int, parallelism: int) -> dict:
    """The fleet as deploy/fleet-job.yaml runs it, each step through the image's entry point as its pod would
    (``JOB_COMPLETION_INDEX`` per index, ``parallelism`` indexes at once): the snapshot Job, the Indexed Job of
    ``shards`` read-only shards reading it, the merge Job. API LISTs from the twin's request log."""
    run_dir = work / tag
    run_dir.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "IBCONFORM_INVENTORY": str(twin.inventory_path), "IBCONFORM_REPORTS": str(run_dir),
           "IBCONFORM_RUN_DIR": str(run_dir)}
    first = len(twin.api.requests)

    def step(name: str, *args: str, index: int | None = None) -> Finished:
        step_env = {**env, "HOSTNAME": f"{tag}-{name}"} | ({"JOB_COMPLETION_INDEX": str(index)} if index is not None
                                                          else {})
        done = run_child(["sh", ENTRYPOINT, *args], stdout=work / f"{tag}-{name}.log", env=step_env, cwd=REPO)
        if done.code not in (0, 1):
            raise SystemExit(f"fleet: fleet Job step {name} exit {done.code}:\n" + _tail(work / f"{tag}-{name}.log"))
        return done

    t0 = time.perf_counter()
    snap = step("snapshot", "snapshot")
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        indexes = list(pool.map(lambda i: step(f"index-{i}", "--shard", f"{i}/{shards}", "--snapshot",
                                               str(run_dir / "snapshot"), "--read-only", index=i), range(shards)))
    merged = step("merge", "merge")
    seconds = time.perf_counter() - t0
    requests = twin.api.requests[first:]
    report = run_dir / "fleet" / "report.html"
    return {"seconds": seconds, "shards": shards, "parallelism": parallelism,
            "snapshot_s": round(snap.seconds, 3), "merge_s": round(merged.seconds, 3),
            "index_s": [round(i.seconds, 3) for i in indexes],
            "peak_rss_mb": round(max(f.peak_rss_mb for f in (snap, *indexes, merged)), 1),
            "api_lists": sum(r.verb == "list" for r in requests),
            "api_by_verb": dict(Counter(f"{r.verb} {r.resource}" for r in requests if r.verb)),
            "report_mb": round(report.stat().st_size / MB, 3), "report_render_s": render_seconds(report, work),
            "out": run_dir / "fleet"}


def render_seconds(report: Path, work: Path) -> float | None:
    """Headless Chromium loading ``report`` and printing its DOM after scripts (None without chromium)."""
    browser = chromium.binary()
    if browser is None:
        return None
    cmd = [browser, *chromium.OFFLINE_FLAGS, f"--user-data-dir={work}/chrome", "--dump-dom", report.as_uri()]
    return round(run_child(cmd, stdout=work / "render.log").seconds, 3)


# ---------------------------------------------------------------------------------------------- floor

def floor_script(inventory: inventory_mod.Inventory) -> tuple[str, str]:
    """The suite's node script for the first node (every node of the twin has the same devices)."""
    boundary = nodescript.new_boundary()
    node = inventory.nodes[0]
    return nodescript.build(node, boundary, inventory.model.collect.mstconfig_timeout), boundary


def clush_path() -> str:
    beside = Path(sys.executable).with_name("clush")
    found = str(beside) if beside.exists() else shutil.which("clush")
    if not found:
        raise SystemExit("fleet: clush not found (pip install ClusterShell)")
    return found


def measure_clush(twin: Twin, logs: SshdLogs, work: Path, names: list[str], fanout: int, script: str,
                  boundary: str) -> dict:
    script_path = work / "node-script.sh"
    script_path.write_text(script)
    options = (f"-o KexAlgorithms=curve25519-sha256 -F {twin.ssh_config_path} "
               f"-o UserKnownHostsFile={twin.known_hosts_path} -o StrictHostKeyChecking=yes")
    cmd = [clush_path(), "-w", str(NodeSet.fromlist(names)), "-f", str(fanout), "-o", options, "sh -s"]
    mark = logs.mark()
    finished = run_child(cmd, stdin=script_path, stdout=work / "clush.out")
    text = (work / "clush.out").read_text(errors="replace")
    done = set(re.findall(rf"^(\S+): {re.escape(boundary)} done -$", text, re.M))
    missing = sorted(set(names) - done)
    if missing:
        raise SystemExit(f"fleet: clush did not finish the node script on {len(missing)} nodes "
                         f"({NodeSet.fromlist(missing)}), exit {finished.code}:\n" + _tail(work / "clush.out"))
    return {"seconds": finished.seconds, "exit_code": finished.code,
            "ssh": SshdLogs.summary(logs.since(mark), names)}


def _paramiko_one(target, known_hosts: paramiko.HostKeys, script: bytes) -> bytes | str:
    """Connect and run the node script: its output, or why not (a ``str``)."""
    client = paramiko.SSHClient()
    add_known_keys(client, known_hosts, target.hostname, target.port)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(target.hostname, port=target.port, username=target.user,
                       key_filename=list(target.identity_files) or None, look_for_keys=False, allow_agent=False,
                       timeout=10)
        stdin, stdout, stderr = client.exec_command("sh -s")
        stdin.write(script)
        stdin.channel.shutdown_write()
        out = stdout.read()
        stderr.read()
        stdout.channel.recv_exit_status()
        return out
    except (paramiko.SSHException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def _unfinished(out: bytes, boundary: str) -> str | None:
    """Why the node script's output is cut short, or None."""
    try:
        nodescript.split(out.decode(errors="replace"), boundary)
    except ParseError as exc:
        return f"ParseError: {exc}"
    return None


def measure_paramiko(twin: Twin, logs: SshdLogs, inventory: inventory_mod.Inventory, fanout: int, script: str,
                     boundary: str) -> dict:
    targets = [resolve_target(node.name, inventory) for node in inventory.nodes]
    # known_hosts parsed once, as the suite does (paramiko's per-client loading is quadratic in its hosts)
    known_hosts, payload = paramiko.HostKeys(str(twin.known_hosts_path)), script.encode()
    mark = logs.mark()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=fanout) as pool:
        outputs = list(pool.map(lambda t: _paramiko_one(t, known_hosts, payload), targets))
    seconds = time.perf_counter() - t0      # the floor: connect and run; checking the outputs is not timed
    failed = {}
    for node, out in zip(inventory.nodes, outputs, strict=True):
        error = out if isinstance(out, str) else _unfinished(out, boundary)
        if error:
            failed[node.name] = error
    if failed:
        first = next(iter(failed))
        raise SystemExit(f"fleet: the paramiko pool did not finish the node script on {len(failed)} nodes "
                         f"({NodeSet.fromlist(failed)}); {first}: {failed[first]}")
    return {"seconds": seconds, "ssh": SshdLogs.summary(logs.since(mark), [n.name for n in inventory.nodes])}


# ---------------------------------------------------------------------------------------------- naive

def measure_naive(twin: Twin, logs: SshdLogs, work: Path, inventory: inventory_mod.Inventory, names: list[str],
                  workers: int, backend: str, tag: str, deselect_all: bool = False) -> dict:
    node = inventory.nodes[0]
    devices = {"hcas": [{"iface": h.iface, "pci": h.pci} for h in node.hcas],
               "excluded": [{"pci": d.pci} for d in node.excluded]}
    env = {**os.environ, "NAIVE_DEVICES": json.dumps(devices), "NAIVE_VFS": str(node.expect.vfs_per_hca or 8),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "test_naive.py", "-q", "-p", "no:randomly", "-n", str(workers),
           "--hosts=" + ",".join(f"{backend}://root@{n}" for n in names), f"--ssh-config={twin.ssh_config_path}"]
    if deselect_all:
        cmd += ["-k", "no_such_check"]
    mark = logs.mark()
    finished = run_child(cmd, stdout=work / f"{tag}.log", env=env, cwd=NAIVE)
    text = (work / f"{tag}.log").read_text(errors="replace")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|deselected)", text)}
    ok = finished.code == 5 if deselect_all else finished.code == 0
    if not ok:
        raise SystemExit(f"fleet: naive run ({tag}) exit {finished.code}:\n" + _tail(work / f"{tag}.log"))
    return {"seconds": finished.seconds, "exit_code": finished.code, "outcomes": counts,
            "ssh": SshdLogs.summary(logs.since(mark), names)}


# ---------------------------------------------------------------------------------------------- driver

def machine() -> dict:
    cpu = None
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    return {"cores": os.cpu_count(), "python": platform.python_version(), "cpu": cpu, "openssh": ssh,
            "paramiko": paramiko.__version__, "kernel": platform.release()}


def startup_seconds(work: Path) -> float:
    """``ibconform --version``: the interpreter and the CLI's imports, part of every suite run."""
    return run_child([sys.executable, "-m", "ibconform.cli", "--version"], stdout=work / "version.log",
                     cwd=REPO).seconds


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def bench(twin: Twin, args: argparse.Namespace, work: Path) -> dict:
    inventory = inventory_mod.load(twin.inventory_path)
    names = [n.name for n in inventory.nodes]
    fanout = max(1, min(inventory.model.collect.parallel, len(names)))
    script, boundary = floor_script(inventory)
    logs = SshdLogs(twin)
    logs.settle()
    naive_names = names[:args.naive_max_nodes] if args.naive_max_nodes else names
    naive_extrapolated = len(naive_names) < len(names)
    runs: list[dict] = []
    loadavg_start = os.getloadavg()
    others = Others()

    def measure(label: str, fn, *fn_args, **fn_kwargs) -> dict:
        """One measurement; with --quiet, after waiting for a quiet machine, and again (twice at most)
        when others used more than --quiet-threshold cores meanwhile."""
        for attempt in range(3 if args.quiet else 1):
            waited = others.wait_quiet(args.quiet, args.quiet_threshold) if args.quiet else 0.0
            before, t0 = others.snapshot(), time.monotonic()
            result = fn(*fn_args, **fn_kwargs)
            result["others_cores"] = round((others.snapshot() - before) / (time.monotonic() - t0), 2)
            result["quiet_wait_s"], result["attempt"] = waited, attempt + 1
            say(f"  {label:<18}{result['seconds']:.2f} s  (others used {result['others_cores']:.2f} cores)")
            if result["others_cores"] <= args.quiet_threshold:
                break
        return result

    for r in range(args.repeat):
        say(f"repeat {r + 1}/{args.repeat}")
        run: dict = {}
        run["suite_read_only"] = measure("suite --read-only", measure_suite, twin, logs, work, f"suite-ro-{r}",
                                         read_only=True)
        run["clush"] = measure("clush", measure_clush, twin, logs, work, names, fanout, script, boundary)
        # the probing suite and the paramiko pool (the faster floor) back to back: a shared host's speed drifts
        # over minutes, and the ratio should compare the two at the same speed
        run["suite"] = measure("suite (probes)", measure_suite, twin, logs, work, f"suite-{r}", read_only=False)
        run["paramiko"] = measure("paramiko pool", measure_paramiko, twin, logs, inventory, fanout, script,
                                  boundary)
        if not args.skip_naive:
            run["naive"] = measure("naive", measure_naive, twin, logs, work, inventory, naive_names,
                                   args.naive_workers, args.naive_backend, f"naive-{r}")
            measured = run["naive"]["seconds"]
            if naive_extrapolated:
                fixed = measure("naive start-up", measure_naive, twin, logs, work, inventory, naive_names,
                                args.naive_workers, args.naive_backend, f"naive-fixed-{r}", deselect_all=True)
                per_node = max(0.0, measured - fixed["seconds"]) / len(naive_names)
                run["naive"].update(fixed_seconds=fixed["seconds"], per_node_seconds=per_node,
                                    measured_seconds=measured, seconds=fixed["seconds"] + per_node * len(names))
                say(f"  naive extrapolated to {len(names)} nodes: {run['naive']['seconds']:.2f} s")
        runs.append(run)
        for part in ("suite", "suite_read_only"):
            if run[part]["exit_code"] != 0:
                say(f"  warning: ibconform run ({part}) exit {run[part]['exit_code']} on a healthy twin")

    def med(part: str, key: str = "seconds") -> float | None:
        return _median([run[part][key] for run in runs if part in run])

    suite_s, floor_clush, floor_paramiko = med("suite"), med("clush"), med("paramiko")
    floor_s = min(floor_clush, floor_paramiko)
    naive_s = None if args.skip_naive else med("naive")
    last = runs[-1]
    report = last["suite"]["out"] / "report.html"
    say("suite --read-only through the config-daemon pods (pods/exec, no SSH) ...")
    exec_run = measure_suite(twin, logs, work, "suite-exec-ro", read_only=True, inventory=exec_inventory(twin, work))
    ssh_verdicts, exec_verdicts = verdicts(last["suite_read_only"]["out"]), verdicts(exec_run["out"])
    differing = sorted(i for i in ssh_verdicts.keys() | exec_verdicts.keys()
                       if ssh_verdicts.get(i) != exec_verdicts.get(i))
    fleet_job = None
    if args.shards:
        say(f"the fleet as an Indexed Job of {args.shards} read-only shards, {args.shard_parallelism} at a time ...")
        fleet_job = measure_fleet_job(twin, work, "fleet-job", args.shards, args.shard_parallelism)
        job_verdicts = verdicts(fleet_job["out"])
        fleet_job["differing_items"] = sorted(i for i in ssh_verdicts.keys() | job_verdicts.keys()
                                              if ssh_verdicts.get(i) != job_verdicts.get(i))
        fleet_job["out"] = str(fleet_job["out"].relative_to(work))
        say(f"  fleet Job {fleet_job['seconds']:.2f} s, {fleet_job['api_lists']} LISTs, "
            f"{len(fleet_job['differing_items'])} items differ from the single run")
    say("evaluation alone (the last probing run's bundle) ...")
    bundle, items = judged_bundle(last["suite"]["out"], last["suite"]["items"])
    alone = {**measure_evaluation(work, bundle, items), "items": items}
    if args.cprofile:
        profile_evaluation(bundle, work, Path(args.cprofile))
    for run in runs:
        for part in ("suite", "suite_read_only"):
            run[part]["out"] = str(run[part]["out"].relative_to(work))
    return {
        "nodes": len(names),
        "suite_s": round(suite_s, 3),
        "suite_read_only_s": round(med("suite_read_only"), 3),
        "floor_s": round(floor_s, 3),
        "floor_clush_s": round(floor_clush, 3),
        "floor_paramiko_s": round(floor_paramiko, 3),
        "naive_s": round(naive_s, 3) if naive_s is not None else None,
        "suite_over_floor": round(suite_s / floor_s, 3),
        "suite_over_floor_each": [round(run["suite"]["seconds"] / min(run["clush"]["seconds"],
                                                                      run["paramiko"]["seconds"]), 3) for run in runs],
        "naive_over_suite": round(naive_s / suite_s, 3) if naive_s is not None else None,
        "ssh_sessions_per_node": max(run["suite"]["ssh"]["sessions"]["max"] for run in runs),
        "api_lists": int(med("suite", "api_lists")),
        "peak_rss_mb": round(med("suite", "peak_rss_mb"), 1),
        "report_mb": round(med("suite", "report_mb"), 3),
        "transports_identical": not differing,
        "fleet_job": fleet_job,
        "mst_latency_s": args.mst_latency,
        "machine": machine(),
        "notes": {
            "suite_s": "ibconform run with probe pods (suite_read_only_s: with --read-only), as a subprocess, "
                       "end to end: interpreter start-up, cluster LISTs, node collection, probes, evaluation, "
                       "reports",
            "suite_over_floor_each": "each repeat's suite_s over its own floor (each repeat measures the suite "
                                     "--read-only, clush, the probing suite and the paramiko pool, in that order)",
            "floor_s": "the faster of floor_clush_s (clush subprocess, incl. its start-up) and floor_paramiko_s "
                       "(thread pool inside the harness: connect + one exec per node, no start-up)",
            "naive_s": (f"extrapolated: measured on {len(naive_names)} nodes, per-node cost scaled linearly to "
                        f"{len(names)}, fixed start-up (every test deselected) added once")
                       if naive_extrapolated else ("skipped" if args.skip_naive else "measured on every node"),
            "ssh_sessions_per_node": "max over nodes and repeats of 'Starting session' lines in the node's sshd log "
                                     "(LogLevel VERBOSE) during the probing suite run; details.ssh has "
                                     "connections and logins too, per measurement",
            "api_lists": "requests with verb 'list' in the twin API's request log during the probing suite run "
                         "(every page of a paginated LIST counts; details.api_list_calls counts first pages only)",
            "peak_rss_mb": "peak memory of the probing ibconform run: the summed resident sets of its "
                           "processes (the collector and the evaluation it starts), sampled every 0.1 s, or the "
                           "collector's own maximum resident set (wait4) if larger",
            "report_mb": "size of report.html of the probing run",
            "fleet_job": "the fleet as deploy/fleet-job.yaml runs it through deploy/entrypoint.sh (--shards): the "
                         "snapshot step, --shards read-only shards reading it, --shard-parallelism at a time, the "
                         "merge step; api_lists over all of it; differing_items: items whose outcome or message "
                         "differ from the last single read-only run; report_render_s: headless chromium --dump-dom "
                         "of the fleet report",
            "transports_identical": "every item's outcome and message equal in the last read-only run over SSH and "
                                    "a read-only run through each node's config-daemon pod (details.config_daemon)",
            "units": "seconds; MB = 10**6 bytes; medians over repeats",
        },
        "settings": {
            "repeat": args.repeat, "fanout": fanout, "profile": args.profile,
            "hcas_per_node": len(inventory.nodes[0].hcas), "excluded_per_node": len(inventory.nodes[0].excluded),
            "naive_backend": args.naive_backend, "naive_workers": args.naive_workers,
            "naive_nodes_measured": 0 if args.skip_naive else len(naive_names),
            "naive_extrapolated": naive_extrapolated and not args.skip_naive,
            "quiet": args.quiet, "quiet_threshold": args.quiet_threshold,
            "max_others_cores": max(run[part]["others_cores"] for run in runs for part in run),
            "loadavg_start": [round(v, 2) for v in loadavg_start],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
            "twin_startup_s": round(twin.startup_seconds or 0, 3),
            "ibconform_startup_s": round(startup_seconds(work), 3),
        },
        "details": {
            "ssh": {part: runs[-1][part]["ssh"] for part in ("suite_read_only", "suite", "clush", "paramiko", "naive")
                    if part in runs[-1]},
            "api_list_calls": int(med("suite", "api_list_calls")),
            "api_lists_read_only": int(med("suite_read_only", "api_lists")),
            "api_requests": int(med("suite", "api_requests")),
            "api_by_verb": last["suite"]["api_by_verb"],
            "peak_rss_read_only_mb": round(med("suite_read_only", "peak_rss_mb"), 1),
            "phases": last["suite"]["phases"],
            "phases_read_only": last["suite_read_only"]["phases"],
            "evaluation_alone": alone,
            "config_daemon": {
                "seconds": round(exec_run["seconds"], 3), "exit_code": exec_run["exit_code"],
                "items": len(exec_verdicts), "differing_items": differing,
                "ssh_sessions": exec_run["ssh"]["sessions"], "api_by_verb": exec_run["api_by_verb"]},
            "items": last["suite"]["items"], "outcomes": last["suite"]["outcomes"],
            "not_passed": last["suite"]["not_passed"],
            "report": report_breakdown(report) if report.exists() else None,
            "naive": ({k: v for k, v in last["naive"].items() if k != "ssh"} if "naive" in last else None),
            "runs": [{part: {"seconds": round(run[part]["seconds"], 3), "others_cores": run[part]["others_cores"],
                             "attempt": run[part]["attempt"]} for part in run} for run in runs],
        },
    }


def profile_evaluation(bundle: Path, work: Path, dest: Path) -> None:
    """``ibconform evaluate`` of the last bundle under cProfile; the 40 costliest functions to ``dest``."""
    import pstats

    stats_file = work / "evaluate.prof"
    # cli.main in-process: ``python -m ibconform.cli`` ends in os._exit, before cProfile could write its file
    profiled = "import cProfile, sys; from ibconform import cli; cProfile.run('cli.main(sys.argv[2:])', sys.argv[1])"
    run_child([sys.executable, "-c", profiled, stats_file, "evaluate", bundle, "--out", work / "evaluate-profiled"],
              stdout=work / "evaluate-profiled.log", cwd=REPO)
    with open(dest, "w") as f:
        stats = pstats.Stats(str(stats_file), stream=f)
        stats.strip_dirs().sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    say(f"evaluation profile: {dest}")


def say(text: str) -> None:
    print(f"fleet: {text}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleet.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, required=True, help="twin size N")
    p.add_argument("--mst-latency", type=float, default=0.3, help="seconds per mstconfig query (default 0.3)")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--repeat", type=int, default=1, help="measure R times, report medians (default 1)")
    p.add_argument("--skip-naive", action="store_true", help="do not run the naive testinfra approach")
    p.add_argument("--naive-max-nodes", type=int, help="run naive on at most M nodes; extrapolate to N")
    p.add_argument("--naive-workers", type=int, default=2, help="pytest-xdist workers of naive (default 2)")
    p.add_argument("--naive-backend", default="paramiko", choices=("paramiko", "ssh"),
                   help="testinfra backend of naive (default paramiko)")
    p.add_argument("--parallel", type=int, help="set the inventory's collect.parallel (default: the suite's)")
    p.add_argument("--probe-level", choices=("schedule", "start", "rdma", "nccl"),
                   help="set the inventory's probe.level (default: the suite's, start)")
    p.add_argument("--profile", default=BENCH_PROFILE, choices=(BENCH_PROFILE, *PROFILES),
                   help=f"node device map (default {BENCH_PROFILE}: 8 HCAs, 3 excluded; dgx-b200: 8 HCAs, 6 excluded)")
    p.add_argument("--quiet", type=float, default=0.0, metavar="S",
                   help="before each measurement wait up to S s for other processes to go quiet, and redo "
                        "(twice at most) a measurement they disturbed (default 0: off)")
    p.add_argument("--quiet-threshold", type=float, default=0.2, metavar="CORES",
                   help="'quiet' means other processes use fewer cores than this (default 0.2)")
    p.add_argument("--shards", type=int, default=0, metavar="K",
                   help="also run the fleet as deploy/fleet-job.yaml's Indexed Job of K shards (default 0: off)")
    p.add_argument("--shard-parallelism", type=int, default=2, metavar="P", help="shards at once (default 2)")
    p.add_argument("--child-timeout", type=float, default=CHILD_TIMEOUT_S, metavar="S",
                   help=f"stop and fail when one measured command runs longer (default {CHILD_TIMEOUT_S:g})")
    p.add_argument("--keep", type=Path, help="keep the twin's files and every run's output in this folder")
    p.add_argument("--cprofile", type=Path, help="also profile 'ibconform evaluate' of the last bundle into this file")
    return p


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    global CHILD_TIMEOUT_S
    args = _parser().parse_args(argv)
    CHILD_TIMEOUT_S = args.child_timeout
    if args.child_timeout <= 0:
        _parser().error(f"--child-timeout {args.child_timeout:g}: expected a number of seconds above 0")
    if args.nodes < 1 or args.repeat < 1 or (args.naive_max_nodes is not None and args.naive_max_nodes < 1):
        _parser().error("--nodes, --repeat and --naive-max-nodes must be positive")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # also when started with SIGINT ignored (&)
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = args.keep.absolute()
            if work.exists() and any(work.iterdir()):
                _parser().error(f"--keep {args.keep}: exists and is not empty")
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ibconform-fleet-")))
        scenario_path = work / "scenario.yaml"
        scenario_path.write_text(yaml.safe_dump(
            scenario(args.nodes, args.mst_latency, args.profile, args.parallel, args.probe_level), sort_keys=False))
        try:
            say(f"twin of {args.nodes} nodes up ...")
            with Twin(scenario_path, work / "twin", start_timeout=max(30.0, args.nodes / 4)) as twin:
                say(f"twin up in {twin.startup_seconds:.1f} s")
                result = bench(twin, args, work)
        except KeyboardInterrupt:
            say("interrupted: measurement stopped, twin down")
            return 130
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
