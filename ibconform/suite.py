"""The suite's machinery: collect a bundle, evaluate it with pytest, name the output folders."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from ibconform import __version__, components, merge, operator_state
from ibconform import inventory as inventory_mod
from ibconform.bundle import Bundle, BundleWriter, NodeStatus
from ibconform.collect import cluster, probes
from ibconform.collect import snapshot as snapshot_mod
from ibconform.collect.nodes import collect_nodes
from ibconform.errors import IbconformError, UsageError
from ibconform.untrusted import d, lst

SUITE_ROOT = Path(__file__).resolve().parent.parent

#: A cluster snapshot to read the Lists from, or the Future of one being taken (None: it could not be taken).
SnapshotSource = snapshot_mod.Snapshot | Future


def checks_dir() -> Path:
    """The checks/ folder beside the package (ibconform is installed from its source tree)."""
    path = SUITE_ROOT / "checks"
    if not (path.is_dir() and (SUITE_ROOT / "conftest.py").is_file()):
        raise UsageError(f"checks not found at {path}: install ibconform from its source tree (pip install -e .)")
    return path


def default_out_dir(cluster: str = "ibconform") -> Path:
    """``reports/<cluster>-<UTC timestamp>``, never an existing folder."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path("reports") / f"{cluster}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def terminal_progress(total: int) -> Callable[[str, NodeStatus], None]:
    """A one-line progress report on a terminal (stderr); silent in CI and pipes."""
    state = {"done": 0, "failed": 0}
    live = sys.stderr.isatty() and not os.environ.get("CI")

    def report(name: str, status: NodeStatus) -> None:
        state["done"] += 1
        state["failed"] += not status.reachable
        if live:
            end = "\n" if state["done"] == total else ""
            print(f"\rcollecting nodes {state['done']}/{total}, unreachable so far {state['failed']}",
                  end=end, file=sys.stderr, flush=True)

    return report


def collect(inventory_path: str | Path, bundle_dir: Path, read_only: bool,
            kubeconfig: str | None = None, context: str | None = None,
            begun: Callable[[Path], None] | None = None, nodes: str | None = None,
            snapshot: SnapshotSource | None = None) -> Path:
    """Collect the nodes (one script each, through their transport) while, beside them, the cluster's Lists
    are read and (unless read-only) every node is probed; write it all to a new evidence bundle and return
    its path. ``begun`` is called once the bundle exists (its manifest and inventory written), before
    anything is collected. ``nodes``: only the inventory's nodes in this NodeSet (a shard of a large fleet).
    ``snapshot``: read the Lists from this cluster snapshot instead of LISTing (the probes still watch their pods); a
    Future of it (still being taken): the nodes are collected meanwhile, the cluster side waits for it."""
    inventory = inventory_mod.load(inventory_path)
    if nodes:
        inventory = inventory.only(nodes)
    if bundle_dir.exists() and any(bundle_dir.iterdir()):
        raise UsageError(f"{bundle_dir}: exists and is not empty (a bundle is never overwritten)")
    writer = BundleWriter(bundle_dir, inventory, read_only=read_only, nodes=nodes)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster")
    try:  # an interrupt in any phase marks the bundle, after the probes deleted their pods
        if begun is not None:
            begun(bundle_dir)
        cluster_side = pool.submit(_collect_cluster, writer, inventory, read_only, kubeconfig, context, stop,
                                   snapshot)
        collect_nodes(inventory, writer, terminal_progress(len(inventory.nodes)), kubeconfig, context)
        cluster_side.result()
    except BaseException:
        stop.set()  # the probe run deletes its pods and returns within a few seconds
        pool.shutdown(wait=True)
        writer.finish(interrupted=True, complete=False)
        raise
    pool.shutdown()
    writer.finish()
    return bundle_dir


def _collect_cluster(writer: BundleWriter, inventory: inventory_mod.Inventory, read_only: bool,
                     kubeconfig: str | None, context: str | None, stop: threading.Event,
                     snapshot: SnapshotSource | None = None) -> None:
    """The cluster side of a collection: its Lists (or the snapshot's), then the probe pods (which need the Lists)."""
    api = None
    if isinstance(snapshot, Future):
        snapshot = snapshot.result()
    if snapshot is not None:
        writer.manifest["snapshot"] = snapshot.record()
        lists, errors = snapshot_mod.read_lists(snapshot, inventory)
        access = snapshot.meta.get("kubernetes_api")
        writer.manifest["kubernetes_api"] = f"snapshot {snapshot.id} (taken through {access})" if access else (
            f"snapshot {snapshot.id}")
    if snapshot is None or not read_only:
        try:
            api = cluster.api_client(*cluster.kube_target(inventory, kubeconfig, context),
                                     timeout=inventory.model.kubernetes.timeout, read_only=read_only)
        except UsageError as exc:
            if snapshot is None:
                lists, errors = {}, {"_config": f"no Kubernetes API access: {exc}"}
            else:
                writer.cluster("probes", {"error": f"no Kubernetes API access for the probes: {exc}", "probes": []})
        else:
            if snapshot is None:
                writer.manifest["kubernetes_api"] = api.ibconform_access
                lists, errors = cluster.collect_cluster(api, inventory)
            else:
                writer.manifest["kubernetes_api"] += f"; probes through {api.ibconform_access}"
    for plural, document in lists.items():
        writer.cluster(plural, document)
    writer.cluster("errors", errors)
    if api is not None and not read_only and "nodes" in lists and not stop.is_set():
        run_id, earlier = None, []
        if snapshot is not None:   # a Job's retried index: the pods of its killed attempt go first
            run_id, prefix = snapshot_mod.probe_run_id(snapshot, writer.manifest.get("nodes") or "")
            earlier = snapshot_mod.delete_earlier_attempts(api, inventory.model.probe.namespace, prefix, run_id,
                                                           inventory.model.kubernetes.timeout)
        document = _probe_run(probes.ProbeRun(api, inventory, lists, run_id=run_id, stop=stop))
        writer.cluster("probes", {**document, **({"earlier_attempts_deleted": earlier} if earlier else {})})


def _probe_run(run: probes.ProbeRun) -> dict:
    """The probe run's document; a failure of the run itself becomes its error, never a crash of the run."""
    try:
        return run.run()
    except Exception as exc:  # judged per node as an error naming the cause
        return {"error": f"probe run failed: {type(exc).__name__}: {exc}", "probes": []}


def run_metadata(bundle: Bundle) -> dict:
    inv_text = (bundle.root / "inventory.yaml").read_bytes()
    return {
        "tool": __version__, "cluster": bundle.manifest.get("cluster"), "bundle": str(bundle.root),
        "inventory": bundle.manifest.get("inventory_path"),
        "inventory_sha256": hashlib.sha256(inv_text).hexdigest(), "collected": bundle.manifest.get("created"),
        "read_only": bundle.manifest.get("read_only"), "user": bundle.manifest.get("user"),
        "complete": bundle.manifest.get("complete", False), "interrupted": bundle.manifest.get("interrupted", False),
        "nodes": len(bundle.inventory.nodes),
        "kubernetes_api": api if isinstance(api := bundle.manifest.get("kubernetes_api"), str) else None,
        **({"snapshot": snap} if isinstance(snap := bundle.manifest.get("snapshot"), dict) else {}),
        **_operators(bundle),
    }


def _operators(bundle: Bundle) -> dict:
    """The operator versions seen (each component's images, found by its pods' labels) and how its SR-IOV
    operator reports node state; nothing when the pods were not listed."""
    pods = lst(d(bundle.cluster("pods")).get("items"))
    if not pods:
        return {}
    states = lst(d(bundle.cluster("sriovnetworknodestates")).get("items"))
    generation = operator_state.generation(states, pods)
    return {"operators": components.images(pods), "operator_state_reporting": generation.name}


# pytest's built-in plugins the checks never use: checks print, log and warn nothing, and use no skip marks,
# temporary folders, monkeypatch, unittest or doctest. Most wrap every phase of every item (capture, log and
# warning handling alone cost ~40% of the time); without the rest judging costs ~17% less again. junit.xml is
# written from the results (report/junit.py), not by pytest's junitxml, which holds every item's properties
UNUSED_PLUGINS = ("capture", "logging", "warnings", "unraisableexception", "threadexception", "faulthandler",
                  "skipping", "tmpdir", "legacypath", "monkeypatch", "recwarn", "unittest", "doctest", "setuponly",
                  "setupplan", "stepwise", "pastebin", "subtests", "junitxml")


def evaluate(bundle_dir: Path, out_dir: Path, workers: int = 0, extra: tuple[str, ...] = (),
             follow: bool = False, nodes: str | None = None, quiet: bool = False) -> int:
    """Run the checks on ``bundle_dir``; write report.html, junit.xml and results.json to ``out_dir``.

    ``follow``: the bundle is still being written; each node is judged as its evidence lands. ``nodes``: only
    these nodes of the bundle (a NodeSet), and the cluster-wide checks. ``quiet``: without pytest's terminal
    output (a progress character per item: ~7% of judging's CPU), as in ``ibconform run``'s evaluation.
    """
    terminal = ["-qq", "--no-header", "--tb=no", "-rN"] if workers or not quiet else ["-p", "no:terminal"]
    Bundle(bundle_dir)  # a UsageError here beats one from inside pytest
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(checks_dir()), "--rootdir", str(SUITE_ROOT),
        # only the plugins the suite uses: whatever else is installed never changes (or slows) a verdict
        "--disable-plugin-autoload", "-p", "pytest_metadata.plugin", "-p", "pytest_html.plugin",
        *(["-p", "xdist.plugin", "-n", str(workers)] if workers else []),
        "-p", "no:cacheprovider", "--bundle", str(bundle_dir), "--report-dir", str(out_dir),
        *(["--follow"] if follow else []), *(["--only-nodes", nodes] if nodes else []),
        "--html", str(out_dir / "report.html"), "--self-contained-html", *terminal, "--assert=plain",
        *(arg for name in UNUSED_PLUGINS for arg in ("-p", f"no:{name}")),
        *extra,
    ]
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # thousands of long-lived items and reports: fewer young-gen sweeps
    try:
        return int(pytest.main(args))
    finally:
        gc.set_threshold(*thresholds)


#: Nodes per part of a run: a run over more nodes reads the cluster once into a snapshot (``out/snapshot``, while
#: the first part's nodes are collected), collects, probes and judges one part after the other as shards of it
#: (``out/parts/part-<i>``, each with its bundle and full report) and merges them into one fleet result: memory is
#: bounded by a part, not the fleet.
PART_NODES = 256


def run(inventory_path: str | Path, out_dir: Path, read_only: bool, kubeconfig: str | None = None,
        context: str | None = None, workers: int = 0, nodes: str | None = None,
        part_nodes: int = PART_NODES, snapshot: snapshot_mod.Snapshot | None = None) -> int:
    """Collect into ``out_dir/bundle`` while a second process evaluates the bundle as each node lands
    (``ibconform evaluate --follow``, its output in ``evaluation.log``); return the evaluation's exit code.

    Over more than ``part_nodes`` nodes, in parts (PART_NODES) merged as ``ibconform merge`` does.
    KeyboardInterrupt while collecting: the bundle is marked interrupted, the evaluation judges what was
    collected, and the interrupt propagates; a second one stops the evaluation too.
    """
    inventory = inventory_mod.load(inventory_path)
    if nodes:
        inventory = inventory.only(nodes)
    count = -(-len(inventory.nodes) // part_nodes)
    if count <= 1:
        return _run_parts(inventory_path, [(out_dir, nodes)], read_only, kubeconfig, context, workers, snapshot)[0]
    parts = [(out_dir / "parts" / f"part-{i}", inventory.shard(i, count)) for i in range(count)]
    taking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
    try:   # the snapshot is taken while the first part's nodes are collected: its cluster side waits for it
        _run_parts(inventory_path, parts, read_only, kubeconfig, context, workers, snapshot or taking.submit(
            _snapshot, inventory, out_dir / "snapshot", kubeconfig, context))
    finally:  # also when interrupted: the parts judged so far, as one (incomplete) fleet result
        taking.shutdown()
        shards = [merge.load(part) for part, _ in parts if (part / "results.json").is_file()]
        if shards:
            document = merge.merge(shards)
            merge.write(document, shards, out_dir)
    return int(document["run"]["exit_status"])


def _snapshot(inventory: inventory_mod.Inventory, out: Path, kubeconfig: str | None,
              context: str | None) -> snapshot_mod.Snapshot | None:
    """The cluster's Lists read once for every part of a run; None without API access (each part then says so)."""
    try:
        api = cluster.api_client(*cluster.kube_target(inventory, kubeconfig, context),
                                 timeout=inventory.model.kubernetes.timeout, read_only=True)
    except UsageError:
        return None
    snapshot_mod.take(api, inventory, out)
    return snapshot_mod.open_snapshot(out, inventory)


def _run_parts(inventory_path: str | Path, parts: list[tuple[Path, str | None]], read_only: bool,
               kubeconfig: str | None, context: str | None, workers: int,
               snapshot: SnapshotSource | None) -> list[int]:
    """Collect each part (output folder, NodeSet) into its ``bundle``, one after the other, each judged by an
    evaluation process following it; their exit codes. The evaluations run one at a time, in order: a part's
    collection overlaps the end of the previous part's evaluation, and memory holds one evaluation."""
    evaluations = _Evaluations(workers)
    try:
        for i, (out_dir, nodes) in enumerate(parts):
            evaluations.check()   # an evaluation that failed stops the run before the next part
            collect(inventory_path, out_dir / "bundle", read_only, kubeconfig, context,
                    begun=lambda bundle_dir, out=out_dir: evaluations.add(bundle_dir, out), nodes=nodes,
                    snapshot=snapshot)
            if i + 1 < len(parts):   # the last part's evaluation has no collection to yield to
                evaluations.done(out_dir)
    except BaseException:
        evaluations.finish()
        raise
    codes = evaluations.finish()
    evaluations.check()
    return codes


class _Evaluations:
    """The parts' evaluations (``ibconform evaluate --follow``), started one at a time in the order their bundles
    began, each once the one before has exited. The evaluation of a part already collected yields the CPU
    (``YIELD_NICE``) to the next part's collection, whose SSH sessions count wall time against their timeouts."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.waiting: queue.Queue[tuple[Path, Path] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.current: tuple[Path, subprocess.Popen] | None = None
        self.collected: set[Path] = set()
        self.codes: list[int] = []
        self.error: IbconformError | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="evaluations", daemon=True)
        self.thread.start()

    def add(self, bundle_dir: Path, out_dir: Path) -> None:
        self.waiting.put((bundle_dir, out_dir))

    def done(self, out_dir: Path) -> None:
        """The part of ``out_dir`` is collected: its evaluation, from now on catching up, yields."""
        with self.lock:
            self.collected.add(out_dir)
            if self.current is not None and self.current[0] == out_dir:
                _lower_priority(self.current[1])

    def _loop(self) -> None:
        while (item := self.waiting.get()) is not None:
            if self.error is not None or self.stopped.is_set():
                continue
            bundle_dir, out_dir = item
            try:
                with self.lock:
                    proc = _start_evaluation(bundle_dir, out_dir, self.workers)
                    self.current = out_dir, proc
                    if out_dir in self.collected:
                        _lower_priority(proc)
                self.codes.append(_evaluation_code(proc.wait(), out_dir))
            except (OSError, IbconformError) as exc:
                self.error = exc if isinstance(exc, IbconformError) else IbconformError(
                    f"evaluation of {bundle_dir} could not start: {exc}")

    def check(self) -> None:
        """Raise the error of an evaluation that failed."""
        if self.error is not None:
            raise self.error

    def finish(self) -> list[int]:
        """Wait for the evaluations of every bundle begun; their exit codes. An interrupt while waiting interrupts
        the running one (it still writes its reports) and starts no other."""
        self.waiting.put(None)
        try:
            while self.thread.is_alive():
                self.thread.join(0.2)
        except KeyboardInterrupt:
            self.stopped.set()
            if self.current is not None:
                self.current[1].send_signal(signal.SIGINT)
            self.thread.join()
            raise
        return self.codes


#: How much less CPU priority (nice) an evaluation catching up gets than the collector.
YIELD_NICE = 19


def _lower_priority(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):   # gone already, or not permitted: it keeps its priority
        os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + YIELD_NICE))


def _start_evaluation(bundle_dir: Path, out_dir: Path, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ibconform.cli", "evaluate", str(bundle_dir), "--out", str(out_dir), "--follow",
           "--quiet", *(["--workers", str(workers)] if workers else [])]
    with open(out_dir / "evaluation.log", "wb") as log:
        # its own session: a Ctrl-C on the terminal reaches only this process, which decides
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _evaluation_code(code: int, out_dir: Path) -> int:
    """An evaluation's exit code; IbconformError naming its log if it failed to judge."""
    if code not in (0, 1, 2) or not (out_dir / "results.json").is_file():
        log = (out_dir / "evaluation.log").read_text(errors="replace").strip().splitlines()
        raise IbconformError(f"evaluation failed (exit {code}): {log[-1] if log else 'no output'} "
                             f"(see {out_dir / 'evaluation.log'})")
    return code


def _results(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def node_verdicts(out_dir: Path) -> list[dict]:
    """The per-node verdicts of the run written to ``out_dir``."""
    return _results(out_dir).get("nodes", [])


def summary_lines(out_dir: Path) -> list[str]:
    """One line per node: its verdict, the probe level proven (and the NCCL bus bandwidth measured) and, when it
    fails, the root cause and how many failures follow."""
    document = _results(out_dir)
    lines = []
    for node in document.get("nodes", []):
        root = node.get("root_cause")
        busbw = node.get("nccl_bus_bandwidth")
        proven = (f" (level {node['level']} proven" + (f", NCCL bus bandwidth {busbw:g} GB/s)" if busbw is not None
                                                        else ")")) if node.get("level") else ""
        if root is None:
            lines.append(f"{node['name']}: PASS{proven}")
            continue
        more = len(node.get("consequences", []))
        scope = f" on {root['affected']}" if root.get("affected") else ""
        lines.append(f"{node['name']}: FAIL [{root['link']}] {root['check']}{scope}: {root['message']}"
                     + (f" (+{more} downstream)" if more else ""))
    lines += [f"cluster: FAIL [{r['link']}] {r['check']}: {r['message']}" for r in document.get("results", [])
              if r.get("node") is None and r.get("outcome") in ("failed", "error")]
    return lines
