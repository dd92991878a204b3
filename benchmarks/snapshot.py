#!/usr/bin/env python3
"""Cluster snapshot benchmark: what one fleet run's Lists cost, LISTed by every shard or read once.

    python benchmarks/snapshot.py --nodes 256 [--shards 4] [--json out.json]

Brings up a twin of N DGX nodes (benchmarks/fleet.py's scenario) and measures, each in its own process, its time,
the peak of its Python allocations from its first LIST or read on (``tracemalloc``: what grows with the cluster,
without the ~90 MB of imported modules every process has) and its peak resident set:

- ``lists``: the cluster's Lists as one run LISTs them (``cluster.collect_cluster``): seconds, the JSON the
  bundle keeps (bytes) and the LIST requests the API server saw;
- ``snapshot``: ``ibconform snapshot``: bytes on disk, LIST requests;
- ``shard``: each of ``--shards`` shards reading its Lists from the snapshot (``snapshot.read_lists``): the JSON
  its bundle keeps, LIST requests (none);
- ``all_nodes``: one reader of the whole snapshot, for comparison.

MB means 10**6 bytes. Needs root (the twin).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.fleet import BENCH_PROFILE, scenario  # noqa: E402
from ibconform.twin import Twin  # noqa: E402

CHILD = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
from ibconform import inventory as inventory_mod
from ibconform.collect import cluster, snapshot
what, inv_path, snap, shard, count = sys.argv[1:6]
inventory = inventory_mod.load(inv_path)
if what == "lists":
    api = cluster.api_client(*cluster.kube_target(inventory, None, None), read_only=True)
tracemalloc.start()
started = time.perf_counter()
if what == "lists":
    lists, errors = cluster.collect_cluster(api, inventory)
else:
    if int(count):
        inventory = inventory.only(inventory.shard(int(shard), int(count)))
    lists, errors = snapshot.read_lists(snapshot.open_snapshot(Path(snap), inventory), inventory)
seconds = time.perf_counter() - started
size = sum(len(json.dumps(doc, sort_keys=True, separators=(",", ":"))) for doc in lists.values())
print(json.dumps({"seconds": round(seconds, 3), "json_bytes": size, "errors": len(errors),
                  "python_peak_mb": round(tracemalloc.get_traced_memory()[1] / 1e6, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)}))
"""

# `ibconform snapshot`, its Python allocations traced from its first API call on (imports excluded, as above)
SNAPSHOT = """
import resource, sys, tracemalloc
from ibconform.cli import main
from ibconform.collect import cluster, snapshot
tracemalloc.start()
code = main(sys.argv[1:])
print(tracemalloc.get_traced_memory()[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True,
                          cwd=REPO)
    return json.loads(proc.stdout)


def lists_sent(twin: Twin, mark: int) -> int:
    return sum(r.verb == "list" for r in twin.api.requests[mark:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=256)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ibconform-snapbench-") as tmp:
        work = Path(tmp)
        scenario_path = work / "scenario.yaml"
        scenario_path.write_text(yaml.safe_dump(scenario(args.nodes, 0.0, BENCH_PROFILE, None)))
        with Twin(scenario_path, work / "twin", start_timeout=max(30.0, args.nodes / 4)) as twin:
            inv = str(twin.inventory_path)
            mark = len(twin.api.requests)
            result: dict = {"nodes": args.nodes, "shards": args.shards}
            result["lists"] = {**child("lists", inv, "", "0", "0"), "list_requests": lists_sent(twin, mark)}
            mark = len(twin.api.requests)
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", SNAPSHOT, "snapshot", "-i", inv, "--out", str(work / "snap")],
                                  capture_output=True, text=True, check=True, cwd=REPO)
            disk = sum(f.stat().st_size for f in (work / "snap").rglob("*") if f.is_file())
            python_peak, rss = proc.stdout.split()[-2:]
            result["snapshot"] = {"seconds": round(time.perf_counter() - started, 3), "disk_bytes": disk,
                                  "python_peak_mb": round(int(python_peak) / 1e6, 1),
                                  "peak_rss_mb": round(int(rss) * 1024 / 1e6, 1),
                                  "list_requests": lists_sent(twin, mark)}
            mark = len(twin.api.requests)
            result["shard"] = [child("read", inv, str(work / "snap"), str(i), str(args.shards))
                               for i in range(args.shards)]
            result["all_nodes"] = child("read", inv, str(work / "snap"), "0", "0")
            result["shard_list_requests"] = lists_sent(twin, mark)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
