#!/usr/bin/env python3
"""Plot the fleet benchmark: seconds against nodes for the suite, the parallel-SSH floor and the naive
approach, from the JSON files ``benchmarks/fleet.py --json`` wrote.

    python benchmarks/plot.py docs/benchmarks/fleet-*.json --out docs/benchmarks/fleet.png

Needs matplotlib (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SERIES = (  # key, label, style, values written beside the points
    ("naive_s", "naive (testinfra, one command per check per HCA)", "s:", True),
    ("suite_s", "ibconform run (with probe pods)", "o-", True),
    ("suite_read_only_s", "ibconform run --read-only", "o--", False),
    ("floor_s", "floor: parallel SSH alone (faster of clush, paramiko pool)", "^-", True),
)


def load(paths: list[Path]) -> list[dict]:
    """The benchmark results, by node count; one line naming the file if one is not a result."""
    results = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
            int(data["nodes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"plot: {path}: not a fleet benchmark result ({exc})") from None
        results.append(data)
    return sorted(results, key=lambda d: d["nodes"])


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = [d["nodes"] for d in results]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for key, label, style, annotate in SERIES:
        points = [(d["nodes"], d[key]) for d in results if d.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, style, label=label)
            for x, y in points if annotate else ():
                ax.annotate(f"{y:.1f} s", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(nodes, [str(n) for n in nodes])
    ax.set_xlabel("nodes (8 HCAs and 3 excluded devices each; mstconfig 0.3 s per query)")
    ax.set_ylabel("seconds (median)")
    machine = results[-1].get("machine", {})
    ax.set_title(f"ibconform fleet benchmark on the twin ({machine.get('cores', '?')} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="fleet benchmark JSON files")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    args = parser.parse_args(argv)
    plot(load(args.results), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
