"""The fleet report of a merged, sharded run: one self-contained page whose size grows with the failing nodes,
not with the fleet. The verdict, the failing nodes by link of the chain (passing nodes folded into a NodeSet per shard),
root causes grouped across the fleet, each shard with its nodes, outcome and a link to its full report.
"""

from __future__ import annotations

import os
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from ibconform.report.html import (
    esc,
    fold,
    render_legend,
    render_matrix,
    render_root_causes,
    render_signoff,
    render_verdict,
    stylesheet,
)


def render(document: dict, out_dir: Path) -> str:
    """The page for the merged ``document``, its links to the shards' reports relative to ``out_dir``."""
    failing = {n["name"] for n in document.get("nodes") or [] if n.get("verdict") != "pass"}
    only_failing = {**document,
                    "nodes": [n for n in document.get("nodes") or [] if n["name"] in failing],
                    "results": [r for r in document.get("results") or [] if not r.get("node") or r["node"] in failing]}
    run = document.get("run") or {}
    title = f"ibconform fleet report: {run.get('cluster') or '?'}"
    return "".join([
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>',
        f"<style>{stylesheet()}</style></head><body>",
        f'<div class="ibc" id="acceptance"><h1>{esc(title)}</h1>',
        render_verdict(document),
        '<section id="shards"><h2>Shards</h2>', _shards(document, out_dir), "</section>",
        '<section id="matrix"><h2>Failing nodes × chain</h2>', render_legend(),
        f'<div class="ibc-matrix-wrap">{render_matrix(only_failing) if failing else "<p>No failing node.</p>"}</div>',
        "</section>",
        '<section id="root-causes"><h2>Root causes</h2>', render_root_causes(document), "</section>",
        render_signoff(document),
        "</div></body></html>",
    ])


def _shards(document: dict, out_dir: Path) -> str:
    verdicts = {n["name"]: n.get("verdict") for n in document.get("nodes") or []}
    rows = []
    for shard in (document.get("run") or {}).get("shards") or []:
        names = [n for n in NodeSet(shard.get("nodes") or "") if n not in set(shard.get("superseded") or [])]
        passing = [n for n in names if verdicts.get(n) == "pass"]
        failing = [n for n in names if n in verdicts and verdicts[n] != "pass"]
        link = os.path.relpath(shard.get("report") or "", out_dir)
        state = "complete" if shard.get("complete") and not shard.get("interrupted") else "incomplete"
        superseded = shard.get("superseded") or []
        note = f"; {fold(superseded)} superseded by a later shard" if superseded else ""
        rows.append(f'<tr><td><a href="{esc(link)}">{esc(shard.get("dir"))}</a></td>'
                    f"<td>{esc(state)}, exit {esc(shard.get('exit_status'))}{esc(note)}</td>"
                    f"<td><code>{esc(fold(passing)) or '—'}</code></td><td><code>{esc(fold(failing)) or '—'}</code>"
                    "</td></tr>")
    return ('<table class="ibc-shards"><thead><tr><th>Shard</th><th>State</th><th>Passing nodes</th>'
            f'<th>Failing nodes</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
