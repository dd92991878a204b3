"""The suite's machinery: collect a bundle, evaluate it with pytest, name the output folders."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from ibconform import __version__
from ibconform import inventory as inventory_mod
from ibconform.bundle import Bundle, BundleWriter, NodeStatus
from ibconform.collect import cluster, probes
from ibconform.collect.nodes import collect_nodes
from ibconform.errors import UsageError

SUITE_ROOT = Path(__file__).resolve().parent.parent


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
            kubeconfig: str | None = None, context: str | None = None) -> Path:
    """Collect the cluster's Lists, probe every node (unless read-only) while the nodes are collected
    over SSH, and write it all to a new evidence bundle; return its path."""
    inventory = inventory_mod.load(inventory_path)
    if bundle_dir.exists() and any(bundle_dir.iterdir()):
        raise UsageError(f"{bundle_dir}: exists and is not empty (a bundle is never overwritten)")
    writer = BundleWriter(bundle_dir, inventory, read_only=read_only)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probes")
    try:  # an interrupt in any phase marks the bundle, after the probes deleted their pods
        _collect_into(writer, inventory, read_only, kubeconfig, context, pool, stop)
    except BaseException:
        stop.set()  # the probe run deletes its pods and returns within a few seconds
        pool.shutdown(wait=True)
        writer.finish(interrupted=True, complete=False)
        raise
    pool.shutdown()
    writer.finish()
    return bundle_dir


def _collect_into(writer: BundleWriter, inventory: inventory_mod.Inventory, read_only: bool,
                  kubeconfig: str | None, context: str | None, pool: ThreadPoolExecutor,
                  stop: threading.Event) -> None:
    try:
        api = cluster.api_client(*cluster.kube_target(inventory, kubeconfig, context),
                                 timeout=inventory.model.kubernetes.timeout, read_only=read_only)
    except UsageError as exc:
        api, lists, errors = None, {}, {"_config": f"no Kubernetes API access: {exc}"}
    else:
        writer.manifest["kubernetes_api"] = api.ibconform_access
        lists, errors = cluster.collect_cluster(api, inventory)
    for plural, document in lists.items():
        writer.cluster(plural, document)
    writer.cluster("errors", errors)
    probing = None
    if api is not None and not read_only and "nodes" in lists:
        probing = pool.submit(probes.ProbeRun(api, inventory, lists, stop=stop).run)
    collect_nodes(inventory, writer, terminal_progress(len(inventory.nodes)), kubeconfig, context)
    if probing is not None:
        writer.cluster("probes", _probe_result(probing))


def _probe_result(probing: Future) -> dict:
    """The probe run's document; a failure of the run itself becomes its error, never a crash of the run."""
    try:
        return probing.result()
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
    }


def evaluate(bundle_dir: Path, out_dir: Path, workers: int = 0, extra: tuple[str, ...] = ()) -> int:
    """Run the checks on ``bundle_dir``; write report.html, junit.xml and results.json to ``out_dir``."""
    Bundle(bundle_dir)  # a UsageError here beats one from inside pytest
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(checks_dir()), "--rootdir", str(SUITE_ROOT), "-p", "no:cacheprovider", "-p", "no:kmock",
        "--bundle", str(bundle_dir), "--report-dir", str(out_dir),
        "--html", str(out_dir / "report.html"), "--self-contained-html",
        "--junitxml", str(out_dir / "junit.xml"), "-o", "junit_family=xunit2",
        "-qq", "--no-header", "--tb=no", "-rN", "--assert=plain",
        "-p", "no:unraisableexception", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        # checks print and log nothing: per-item capture and log handling cost a third of the evaluation time
        "--capture=no", "-p", "no:logging",
        *(["-n", str(workers)] if workers else []), *extra,
    ]
    return int(pytest.main(args))


def _results(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def node_verdicts(out_dir: Path) -> list[dict]:
    """The per-node verdicts of the run written to ``out_dir``."""
    return _results(out_dir).get("nodes", [])


def summary_lines(out_dir: Path) -> list[str]:
    """One line per node: its verdict and, when it fails, the root cause and how many failures follow."""
    document = _results(out_dir)
    lines = []
    for node in document.get("nodes", []):
        root = node.get("root_cause")
        if root is None:
            lines.append(f"{node['name']}: PASS")
            continue
        more = len(node.get("consequences", []))
        scope = f" on {root['affected']}" if root.get("affected") else ""
        lines.append(f"{node['name']}: FAIL [{root['link']}] {root['check']}{scope}: {root['message']}"
                     + (f" (+{more} downstream)" if more else ""))
    lines += [f"cluster: FAIL [{r['link']}] {r['check']}: {r['message']}" for r in document.get("results", [])
              if r.get("node") is None and r.get("outcome") in ("failed", "error")]
    return lines
