"""``ibconform`` command line. Exit codes follow pytest: 0 passed, 1 failed, 2 interrupted,
3 internal error, 4 usage error (one line on stderr, no traceback)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from ibconform import __version__, gate, suite
from ibconform import inventory as inventory_mod
from ibconform.bundle import Bundle
from ibconform.errors import IbconformError, UsageError

EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_USAGE = 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2; the contract says 4
        self.print_usage(sys.stderr)
        print(f"ibconform: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ibconform", description="Prove a GPU cluster's InfiniBand SR-IOV stack end to end.")
    p.add_argument("--version", action="version", version=f"ibconform {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="collect evidence from the cluster and evaluate it")
    run.add_argument("-i", "--inventory", required=True, help="inventory file (format ibconform/v1)")
    run.add_argument("--read-only", action="store_true", help="never write to the cluster (no probe pods)")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: the inventory's, $KUBECONFIG, in-cluster)")
    run.add_argument("--context", help="kubeconfig context (default: the inventory's, else the current one)")
    run.add_argument("--gate-label", metavar="KEY",
                     help="print the kubectl commands that label/uncordon passing nodes and taint failing ones")
    run.add_argument("--apply", action="store_true", help="with --gate-label: make those changes (writes Nodes)")
    run.add_argument("--publish-conditions", action="store_true",
                     help="write each judged node's verdict as its Node condition InfiniBandSRIOVReady (nodes/status)")
    shard = run.add_mutually_exclusive_group()
    shard.add_argument("--nodes", metavar="NODESET",
                       help="only these inventory nodes, e.g. 'dgx[0001-0500]': one shard of a large fleet")
    shard.add_argument("--shard", metavar="INDEX/COUNT", type=_shard,
                       help="shard INDEX (from 0) of COUNT equal runs of the inventory's nodes, e.g. an Indexed "
                            "Job's $JOB_COMPLETION_INDEX/$COMPLETIONS")
    run.add_argument("--part-nodes", metavar="N", type=_positive, default=suite.PART_NODES,
                     help="a run over more than N nodes reads the cluster once (snapshot/), then collects and judges "
                          "them in parts of at most N nodes (parts/), merged into one fleet report; bounds memory "
                          f"(default: {suite.PART_NODES})")
    run.add_argument("--snapshot", type=Path, metavar="DIR",
                     help="read the cluster's Lists from this snapshot (ibconform snapshot) instead of LISTing: "
                          "every shard of a fleet run reads the same one")
    run.add_argument("--snapshot-max-age", type=_seconds, metavar="SECONDS", default=None,
                     help="refuse a snapshot taken longer ago than this (default: 3600)")
    _out_args(run)

    snap = sub.add_parser("snapshot", help="read the cluster's Lists once, for every shard of a fleet run (run "
                                           "--snapshot)")
    snap.add_argument("-i", "--inventory", required=True, help="inventory file (its cluster, namespaces, kubeconfig)")
    snap.add_argument("--kubeconfig", help="kubeconfig file (default: the inventory's, $KUBECONFIG, in-cluster)")
    snap.add_argument("--context", help="kubeconfig context (default: the inventory's, else the current one)")
    snap.add_argument("--out", type=Path, required=True, help="a new folder for the snapshot")

    ev = sub.add_parser("evaluate", help="re-run the checks on an evidence bundle, offline")
    ev.add_argument("bundle", type=Path, help="evidence bundle directory")
    ev.add_argument("--follow", action="store_true",
                    help="the bundle is still being collected: judge each node as its evidence lands")
    ev.add_argument("--quiet", action="store_true", help="print no summary (the exit code and files tell)")
    ev.add_argument("--nodes", metavar="NODESET", help="judge only these nodes of the bundle (and the cluster-wide "
                                                       "checks), e.g. 'dgx[0001-0256]'")
    _out_args(ev)

    disc = sub.add_parser("discover", help="write an inventory from a live cluster's policies and node states")
    disc.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    disc.add_argument("--context", help="kubeconfig context")
    disc.add_argument("--namespace", default="network-operator", help="the operator namespace")
    disc.add_argument("--resource-prefix", default="nvidia.com", help="SR-IOV resource prefix")
    disc.add_argument("--cluster", default="discovered", help="cluster name for the inventory")
    disc.add_argument("-o", "--output", type=Path, required=True, help="inventory file to write")

    clean = sub.add_parser("cleanup", help="delete probe pods left by crashed runs (by label, with an age guard)")
    clean.add_argument("-i", "--inventory", required=True, help="inventory file (its kubernetes and probe settings)")
    clean.add_argument("--kubeconfig", help="kubeconfig file (default: the inventory's, $KUBECONFIG, in-cluster)")
    clean.add_argument("--context", help="kubeconfig context")
    clean.add_argument("--all", action="store_true",
                       help="also delete probe pods younger than the age guard (a run still going loses its probes)")

    df = sub.add_parser("diff", help="what changed between two evidence bundles (before/after maintenance)")
    df.add_argument("old", type=Path, help="the earlier bundle")
    df.add_argument("new", type=Path, help="the later bundle")
    df.add_argument("--html", type=Path, help="also write the changes as an HTML section to this file")

    merge = sub.add_parser("merge", help="one fleet verdict, results.json, junit.xml and report from shards' outputs")
    merge.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR", help="output folders of the shards")
    merge.add_argument("--out", type=Path, required=True, help="folder for the fleet's results and report")

    demo = sub.add_parser("demo", help="run the suite on a built-in emulated cluster (the twin)")
    demo.add_argument("--scenario", default="demo", help="twin scenario: a built-in name or a file (default: demo)")
    _out_args(demo)

    twin = sub.add_parser("twin", help="start or stop an emulated cluster (the twin)")
    twin_sub = twin.add_subparsers(dest="twin_command", required=True, parser_class=_Parser)
    up = twin_sub.add_parser("up", help="start a twin in the background and print its inventory's path")
    up.add_argument("scenario", help="a built-in scenario name (demo, faults, pooled, vpi ...: README, 'The twin') "
                    "or a scenario file")
    up.add_argument("--dir", type=Path, help="twin working folder (default: under the system temp folder)")
    down = twin_sub.add_parser("down", help="stop a twin started with 'twin up'")
    down.add_argument("--dir", type=Path, help="the twin's working folder (default: the last one started)")
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number (0: serial), got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or int(count) == 0:
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT like 3/8, got {text!r}")
    return int(index), int(count)


def _out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="output folder (default: reports/<cluster>-<UTC time>)")
    p.add_argument("--workers", type=_whole, default=0, help="pytest-xdist workers for evaluation (default: 0, serial)")


def _finish(out: Path, code: int) -> int:
    print("\n".join(suite.summary_lines(out)))
    print(f"report: {out / 'report.html'}\nresults: {out / 'results.json'}\nbundle: {out / 'bundle'}")
    return code


def cmd_run(args: argparse.Namespace) -> int:
    inventory = inventory_mod.load(args.inventory)
    if args.shard:
        args.nodes = inventory.shard(*args.shard)
    if args.nodes:
        inventory = inventory.only(args.nodes)
    if args.apply and (not args.gate_label or args.read_only):
        raise UsageError("--apply needs --gate-label and cannot go with --read-only")
    if args.publish_conditions and args.read_only:
        raise UsageError("--publish-conditions writes Node conditions and cannot go with --read-only")
    if args.gate_label:
        gate.check_key(args.gate_label)
    if args.snapshot_max_age is not None and not args.snapshot:
        raise UsageError("--snapshot-max-age needs --snapshot")
    snapshot = None
    if args.snapshot:
        from ibconform.collect import snapshot as snapshot_mod

        max_age = snapshot_mod.DEFAULT_MAX_AGE_S if args.snapshot_max_age is None else args.snapshot_max_age
        snapshot = snapshot_mod.open_snapshot(args.snapshot, inventory, max_age)
    out = args.out or suite.default_out_dir(inventory.cluster)
    try:
        code = suite.run(args.inventory, out, read_only=args.read_only, kubeconfig=args.kubeconfig,
                         context=args.context, workers=args.workers, nodes=args.nodes,
                         part_nodes=args.part_nodes, snapshot=snapshot)
    except KeyboardInterrupt:
        if not (out / "results.json").is_file():
            raise
        print("ibconform: interrupted: probe pods deleted, SSH sessions closed; judged what was collected",
              file=sys.stderr)
        _finish(out, EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    code = _finish(out, code)
    if args.publish_conditions and code in (0, 1):
        code = _publish_conditions(inventory, args, out, code)
    if args.gate_label and code in (0, 1):
        verdicts = suite.node_verdicts(out)
        print("\n".join(gate.commands(verdicts, args.gate_label)))
        if args.apply:
            from ibconform.collect import cluster

            gate.apply(cluster.api_client(*cluster.kube_target(inventory, args.kubeconfig, args.context)),
                       verdicts, args.gate_label)
            print(f"gate applied to {len(verdicts)} nodes")
    return code


def _publish_conditions(inventory: inventory_mod.Inventory, args: argparse.Namespace, out: Path, code: int) -> int:
    """Each judged node's verdict as its Node condition; a node that could not be patched is said and makes the
    run fail (exit 1)."""
    import json

    from ibconform import conditions
    from ibconform.bundle import now
    from ibconform.collect import cluster

    verdicts = suite.node_verdicts(out)
    try:
        nodes_list = json.loads((out / "bundle" / "cluster" / "nodes.json").read_text())
    except (OSError, ValueError):
        nodes_list = None
    api = cluster.api_client(*cluster.kube_target(inventory, args.kubeconfig, args.context),
                             timeout=inventory.model.kubernetes.timeout)
    failures = conditions.publish(api, verdicts, nodes_list, now())
    print(f"conditions: {conditions.CONDITION_TYPE} written on {len(verdicts) - len(failures)} of {len(verdicts)} "
          "nodes" + "".join(f"\n  not written: {line}" for line in failures))
    return 1 if failures else code


def cmd_snapshot(args: argparse.Namespace) -> int:
    from ibconform.collect import cluster
    from ibconform.collect import snapshot as snapshot_mod

    inventory = inventory_mod.load(args.inventory)
    api = cluster.api_client(*cluster.kube_target(inventory, args.kubeconfig, args.context),
                             timeout=inventory.model.kubernetes.timeout, read_only=True)
    meta = snapshot_mod.take(api, inventory, args.out)
    objects = sum(r["objects"] for r in meta["lists"].values())
    print(f"snapshot {meta['id']}: {len(meta['lists'])} Lists, {objects} objects, {meta['nodes']} nodes indexed, "
          f"taken {meta['taken']}" + "".join(f"\n  not listed: {line}" for line in meta["errors"].values()))
    print(f"snapshot: {args.out}\nrun: ibconform run -i {inventory.path} --snapshot {args.out} --shard INDEX/COUNT")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not (args.bundle / "manifest.json").is_file():
        raise UsageError(f"{args.bundle}: not an evidence bundle (no manifest.json)")
    if args.nodes:
        Bundle(args.bundle).inventory.only(args.nodes)  # an unknown node is one line here, not pytest's
    out = args.out or suite.default_out_dir("evaluate")
    code = suite.evaluate(args.bundle, out, workers=args.workers, follow=args.follow, nodes=args.nodes,
                          quiet=args.quiet)
    if not args.quiet:
        print("\n".join(suite.summary_lines(out)))
        print(f"report: {out / 'report.html'}\nresults: {out / 'results.json'}")
    return code


def cmd_discover(args: argparse.Namespace) -> int:
    import yaml

    from ibconform import discover
    from ibconform.collect import cluster

    if args.output.exists():
        raise UsageError(f"{args.output}: exists (discover never overwrites an inventory)")
    api = cluster.api_client(args.kubeconfig, args.context, read_only=True)
    needed = ("nodes", "sriovnetworknodestates", "sriovnetworknodepolicies")
    wanted = [r for r in cluster.RESOURCES if r.plural in needed]
    lists = {}
    for res in wanted:
        ns = args.namespace if res.namespaced else None
        try:
            lists[res.plural] = cluster.list_all(api, res, ns)
        except cluster.LIST_ERRORS as exc:
            raise IbconformError(cluster.describe_error(exc, "list", res, ns)) from None
    document = discover.inventory_from(lists, args.cluster, args.namespace, args.resource_prefix)
    if not document["nodes"]:
        raise IbconformError("no node is selected by a SriovNetworkNodePolicy with a SriovNetworkNodeState: "
                             "nothing to write")
    text = "# written by ibconform discover; review the excluded devices before use\n" + yaml.safe_dump(
        document, sort_keys=False)
    inventory_mod.parse(text, args.output)  # what we write must load
    args.output.write_text(text)
    written = inventory_mod.load(args.output)
    profiles = len(document["profiles"])
    print(f"inventory: {args.output} ({len(written.nodes)} nodes, {profiles} profile{'s' * (profiles != 1)})")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    import datetime as dt

    from ibconform.collect import cluster, probes

    inventory = inventory_mod.load(args.inventory)
    api = cluster.api_client(*cluster.kube_target(inventory, args.kubeconfig, args.context))
    run = probes.ProbeRun(api, inventory, {})
    gone = run.delete_leftovers(dt.timedelta(0) if args.all else None)
    guard = "" if args.all else f" older than {run.age_guard.total_seconds():g} s"
    print(f"deleted {len(gone)} probe pods{guard} in namespace {run.namespace}" + "".join(f"\n  {n}" for n in gone))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ibconform import diff

    changes = diff.diff(diff.facts_of(args.old), diff.facts_of(args.new))
    for change in changes:
        print(change)
    print(f"{len(changes)} changed facts")
    if args.html:
        args.html.write_text(diff.render_html(changes, args.old, args.new))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from ibconform import merge

    shards = [merge.load(path) for path in args.shards]
    document = merge.merge(shards)
    merge.write(document, shards, args.out)
    print("\n".join(suite.summary_lines(args.out)))
    print(f"report: {args.out / 'report.html'}\nresults: {args.out / 'results.json'}")
    return int(document["run"]["exit_status"])


def cmd_demo(args: argparse.Namespace) -> int:
    from ibconform.twin import Twin

    out = args.out or suite.default_out_dir("demo")
    with tempfile.TemporaryDirectory(prefix="ibconform-demo-") as tmp, Twin(args.scenario, Path(tmp)) as twin:
        print(f"twin up: {len(twin.addresses)} nodes from scenario {args.scenario!r}", file=sys.stderr)
        code = suite.run(twin.inventory_path, out, read_only=False, workers=args.workers)
    _finish(out, code)
    if code in (0, 1):
        print("demo complete: the findings above are the scenario's staged faults")
        return 0
    return code


def cmd_twin(args: argparse.Namespace) -> int:
    from ibconform.twin import commands

    if args.twin_command == "up":
        workdir = commands.up(args.scenario, args.dir)
        print(f"twin up in {workdir}")
        print(f"inventory: {workdir / 'inventory.yaml'}\nssh_config: {workdir / 'ssh_config'}\n"
              f"known_hosts: {workdir / 'known_hosts'}\nkubeconfig: {workdir / 'kubeconfig'}")
        print(f"run: ibconform run -i {workdir / 'inventory.yaml'}")
        print(f"kubectl: kubectl --kubeconfig {workdir / 'kubeconfig'} get nodes")
    else:
        commands.down(args.dir)
        print("twin down")
    return 0


COMMANDS = {"run": cmd_run, "snapshot": cmd_snapshot, "evaluate": cmd_evaluate, "discover": cmd_discover,
            "cleanup": cmd_cleanup, "diff": cmd_diff, "merge": cmd_merge, "demo": cmd_demo, "twin": cmd_twin}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: probe pods deleted, channels closed


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"ibconform: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ibconform: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except IbconformError as exc:
        print(f"ibconform: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("IBCONFORM_DEBUG"):
            traceback.print_exc()
        print(f"ibconform: internal error: {type(exc).__name__}: {exc} "
              "(set IBCONFORM_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The console script: ``main``, then an immediate exit. Everything is written and closed by then;
    skipping the interpreter's teardown of a large run's objects saves about a second."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
