"""The acceptance report: pytest-html's page turned into what an operator and a signer need.

On top the verdict and a matrix of nodes x links of the chain, then one root cause per failing node
with its remediation and the failures it explains, the run's metadata and a sign-off block; below,
pytest-html's table of every check with its evidence folded under it. The page stays one
self-contained file (``--self-contained-html``): no script, style or image is fetched.

The summary is a view of ``results.json`` (written by ``ResultsRecorder`` just before pytest-html
renders), so the page and the machine output never disagree. Everything from evidence, node names and
cluster objects is untrusted text: it only reaches the page through ``esc``.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

import pytest

from ibconform.cluster_facts import Image, pod_images
from ibconform.report import remediation
from ibconform.report.rootcause import BAD, LINKS, link_rank
from ibconform.untrusted import d, lst

LINK_LABELS = {
    "node": "node reached", "firmware": "firmware", "kernel": "kernel VFs", "ports": "IB ports",
    "operator": "operator sync", "device-plugin": "device plugin", "ipam": "IPAM", "workload": "workload",
    "vfs": "VFs", "attach": "networks attached", "rdma": "RDMA in pod", "nccl": "NCCL",
}

# matrix cell states: css class, glyph (tells the states apart without colour), label
CELL = {
    "root": ("c-r", "◆", "ROOT CAUSE"),
    "failed": ("c-f", "✗", "failed"),
    "error": ("c-e", "!", "error"),
    "skipped": ("c-s", "–", "skipped"),
    "passed": ("c-p", "✓", "passed"),
    "none": ("c-n", "", "no check"),
}
CLUSTER_ROW = "(cluster-wide)"
IPAM_IMAGE = "nvidia-k8s-ipam"


def esc(value: object) -> str:
    """``value`` as inert HTML text (also inside a quoted attribute); newlines become ``&#10;``.

    No raw newline is left, so pytest-html's log colouring (a per-line regex) cannot split our markup.
    """
    text = "" if value is None else str(value)
    return html.escape(text, quote=True).replace("\r", "&#13;").replace("\n", "&#10;")


def link_label(link: str | None) -> str:
    return LINK_LABELS.get(link or "", link or "other")


WORDS = {"sriov": "SR-IOV", "vfs": "VFs", "ib": "IB", "nv": "NV", "ipam": "IPAM", "hca": "HCA", "pci": "PCI",
         "dpu": "DPU"}


def humanize(remedy_id: str, capital: bool = True) -> str:
    """``firmware-change-pending`` -> ``Firmware change pending``, ``vfs-not-created`` -> ``VFs not created``."""
    words = [WORDS.get(w, w) for w in remedy_id.replace("_", "-").split("-") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if capital else text


def fold(names: Iterable[str]) -> str:
    """Node names folded as a NodeSet (``dgx[030-031,040]``); plain commas if they do not fold."""
    names = sorted(set(names))
    if not names:
        return "none"
    try:
        from ClusterShell.NodeSet import NodeSet

        return str(NodeSet.fromlist(names))
    except Exception:  # a name NodeSet cannot parse: the list is still the truth
        return ", ".join(names)


# ---------------------------------------------------------------------------------------------
# what the page says: pure functions of the results.json document


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    passing: list[str]
    failing: list[str]
    cluster_failures: int
    skipped: int
    incomplete: bool = False

    @property
    def text(self) -> str:
        return "ACCEPTED" if self.accepted else "NOT ACCEPTED"


def verdict_of(document: dict) -> Verdict:
    """Accepted when at least one node was judged, every node passes, no cluster-wide check failed and
    the evidence is complete (the run was not interrupted)."""
    nodes = document.get("nodes") or []
    results = document.get("results") or []
    run = document.get("run") or {}
    incomplete = run.get("interrupted") is True or run.get("complete") is False
    passing = [n["name"] for n in nodes if n.get("verdict") == "pass"]
    failing = [n["name"] for n in nodes if n.get("verdict") != "pass"]
    cluster_bad = sum(1 for r in results if not r.get("node") and r.get("outcome") in BAD)
    skipped = sum(1 for r in results if r.get("outcome") == "skipped")
    accepted = bool(nodes) and not failing and not cluster_bad and not incomplete
    return Verdict(accepted, passing, failing, cluster_bad, skipped, incomplete)


def matrix_links(results: list[dict]) -> list[str]:
    """The chain's links that some result names (a run at probe level start has no rdma column), in chain order,
    plus any other link a result names (after them)."""
    named = {r.get("link") or "other" for r in results}
    return [link for link in LINKS if link in named] + sorted(named - set(LINKS))


def cell_state(outcomes: list[str], is_root: bool) -> str:
    """One cell of the matrix from the outcomes of its checks: root > failed > error > skipped > passed."""
    if is_root:
        return "root"
    for state in ("failed", "error"):
        if state in outcomes:
            return state
    if outcomes and all(o == "skipped" for o in outcomes):
        return "skipped"
    return "passed" if outcomes else "none"


def _counts_text(outcomes: list[str]) -> str:
    counts = Counter(outcomes)
    return ", ".join(f"{counts[o]} {o}" for o in ("failed", "error", "skipped", "passed") if counts[o]) or "no check"


def render_matrix(document: dict) -> str:
    """Nodes x links of the chain, one compact row per node (a cluster-wide row first if any)."""
    results = document.get("results") or []
    links = matrix_links(results)
    roots = {n["name"]: n.get("root_cause") or {} for n in document.get("nodes") or []}
    verdicts = {n["name"]: n.get("verdict") for n in document.get("nodes") or []}
    outcomes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in results:
        outcomes[(r.get("node") or CLUSTER_ROW, r.get("link") or "other")].append(r.get("outcome") or "")
    rows = [CLUSTER_ROW] if any(not r.get("node") for r in results) else []
    rows += list(verdicts)

    levels = {n["name"]: n.get("level") for n in document.get("nodes") or []}
    shown = any(levels.values())
    head = "".join(f'<th scope="col" class="lk">{esc(link_label(link))}</th>' for link in links)
    out = ['<table class="ibc-matrix"><thead><tr><th scope="col">Node</th><th scope="col">Verdict</th>',
           '<th scope="col" title="the highest probe level proven">Level</th>' if shown else "",
           head, '<th scope="col" class="rcc">Root cause</th></tr></thead><tbody>']
    for name in rows:
        root = roots.get(name) or {}
        if name == CLUSTER_ROW:
            bad = any(o in BAD for (n, _), os in outcomes.items() if n == CLUSTER_ROW for o in os)
            verdict = "fail" if bad else "pass"
        else:
            verdict = "pass" if verdicts[name] == "pass" else "fail"
        cells = []
        for link in links:
            os = outcomes.get((name, link), [])
            is_root = bool(root) and (root.get("link") or "other") == link
            cls, glyph, _ = CELL[cell_state(os, is_root)]
            title = f"{link_label(link)}: {_counts_text(os)}"
            if is_root:
                title = f"ROOT CAUSE, {title} — {root.get('check')}"
            cells.append(f'<td class="{cls}" title="{esc(title)}">{glyph}</td>')
        if root:
            summary = (humanize(root["remediation"], capital=False) if root.get("remediation")
                       else f"{root.get('check')} {root.get('outcome')}")
            rc = f'<a href="#rc-{esc(name)}" title="{esc(root.get("message") or "")}">{esc(summary)}</a>'

        elif name == CLUSTER_ROW and verdict == "fail":
            rc = '<a href="#rc-cluster">cluster-wide failures</a>'
        else:
            rc = ""
        vglyph = "✓ pass" if verdict == "pass" else "✗ FAIL"
        level = f"<td>{esc(levels.get(name) or '—')}</td>" if shown else ""
        out.append(f'<tr class="v-{verdict}"><th scope="row">{esc(name)}</th><td class="vd">{vglyph}</td>{level}'
                   f'{"".join(cells)}<td class="rcc">{rc}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def render_bandwidth(document: dict) -> str:
    """The NCCL bus bandwidth measured per node (probe level nccl) as a small inline SVG bar chart (no image file,
    no plotting library: the report stays one self-contained page), and its values; "" when none was measured."""
    measured = [(n["name"], n["nccl_bus_bandwidth"]) for n in document.get("nodes") or []
                if isinstance(n.get("nccl_bus_bandwidth"), int | float)]
    if not measured:
        return ""
    top = max(v for _, v in measured) * 1.15 or 1.0
    bar, gap, height, left = 14, 4, 120, 40
    width = left + len(measured) * (bar + gap) + gap
    parts = [f'<svg class="ibc-bw" role="img" width="{width}" height="{height + 70}" '
             f'aria-label="NCCL bus bandwidth per node, GB/s">',
             f'<text x="0" y="12" font-size="10">{top:.0f}</text><text x="0" y="{height}" font-size="10">0</text>',
             f'<line x1="{left - 2}" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>']
    for i, (name, value) in enumerate(measured):
        x, h = left + gap + i * (bar + gap), value / top * (height - 10)
        parts.append(f'<rect x="{x}" y="{height - h:.1f}" width="{bar}" height="{h:.1f}" fill="#4a7ebb">'
                     f'<title>{esc(name)}: {value:g} GB/s</title></rect>'
                     f'<text x="{x + bar / 2}" y="{height + 6}" font-size="9" writing-mode="tb">{esc(name)}</text>')
    parts.append("</svg>")
    rows = "".join(f"<tr><th scope=\"row\">{esc(name)}</th><td>{value:g}</td></tr>" for name, value in measured)
    return ('<section id="nccl-bandwidth"><h2>NCCL bus bandwidth</h2><p class="ibc-hint">all_reduce_perf\'s '
            "# Avg bus bandwidth (GB/s) in each node's probe pod, its GPUs talking over its VFs only.</p>"
            + "".join(parts) + f'<details><summary>values</summary><table>{rows}</table></details></section>')


def render_legend() -> str:
    items = "".join(f'<span class="lg"><span class="{cls} sw">{glyph or "&nbsp;"}</span> {esc(label)}</span>'
                    for cls, glyph, label in CELL.values())
    return f'<p class="ibc-legend">{items}</p>'


def render_verdict(document: dict) -> str:
    v = verdict_of(document)
    run = document.get("run") or {}
    total = len(v.passing) + len(v.failing)
    cls = "ok" if v.accepted else "ko"
    glyph = "✓" if v.accepted else "✗"
    facts = [f"{len(v.passing)} of {total} nodes pass", f"{len(v.failing)} fail"]
    if v.cluster_failures:
        facts.append(f"{v.cluster_failures} cluster-wide check(s) failed")
    if v.skipped:
        facts.append(f"{v.skipped} check(s) skipped")
    if v.incomplete:
        facts.append("evidence incomplete (run interrupted)")
    counts = run.get("counts") or {}
    checks = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k))
    return (f'<div class="ibc-verdict {cls}"><div class="big"><span class="vg">{glyph}</span> {v.text}</div>'
            f'<div class="facts"><b>{esc(" · ".join(facts))}</b>'
            f'<span>cluster {esc(run.get("cluster") or "?")}'
            f'{" · checks: " + esc(checks) if checks else ""}</span>'
            f'<span>passing: <code>{esc(fold(v.passing))}</code></span>'
            f'<span>failing: <code>{esc(fold(v.failing))}</code></span></div></div>')


def _group_lines(items: list[dict]) -> list[str]:
    """Failures grouped by (link, check, outcome): one line each, with the HCAs and the first message."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in items:
        groups[(link_rank(r.get("link")), r.get("link"), r.get("check") or r.get("id"), r.get("outcome"))].append(r)
    lines = []
    for (_, link, check, outcome), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][2]))):
        where = [r.get("hca") for r in rs if r.get("hca")]
        scope = f" on {len(rs)}: {', '.join(where)}" if where else (f" ×{len(rs)}" if len(rs) > 1 else "")
        lines.append(f'<li><span class="lk">{esc(link_label(link))}</span> <b>{esc(check)}</b> '
                     f'<span class="o-{esc(outcome)}">{esc(outcome)}</span>{esc(scope)} — '
                     f'<span class="msg">{esc(rs[0].get("message") or "")}</span></li>')
    return lines


def render_root_causes(document: dict) -> str:
    """Root causes grouped by remediation: what to do once, then each node's finding and the failures it
    explains. Nodes with the very same finding and downstream failures share one entry (a fleet-wide
    fault on 500 nodes reads as one paragraph naming ``dgx[001-500]``, each node still anchored)."""
    results = document.get("results") or []
    by_node: dict[str | None, list[dict]] = defaultdict(list)
    for r in results:
        by_node[r.get("node")].append(r)
    failing = [n for n in document.get("nodes") or [] if n.get("verdict") != "pass" and n.get("root_cause")]
    cluster_bad = [r for r in by_node.get(None, []) if r.get("outcome") in BAD]
    if not failing and not cluster_bad:
        return '<p class="ibc-none">No failure: every check of every node passed.</p>'

    out = []
    if cluster_bad:
        out.append('<section class="ibc-rc" id="rc-cluster"><h3><span class="vg">◆</span> Cluster-wide failures'
                   f' <span class="n">{len(cluster_bad)} check(s)</span></h3>')
        remedies = {r["remediation"].get("id"): r["remediation"] for r in cluster_bad if r.get("remediation")}
        out.extend(_remedy_html(remedy) for remedy in remedies.values() or [None])
        out.append(f'<ul class="ds">{"".join(_group_lines(cluster_bad))}</ul></section>')

    groups: dict[str, list[dict]] = defaultdict(list)
    for node in failing:
        root = node["root_cause"]
        groups[root.get("remediation") or f"check:{root.get('check')}"].append(node)
    order = sorted(groups.items(), key=lambda kv: (link_rank(kv[1][0]["root_cause"].get("link")), -len(kv[1]), kv[0]))
    for key, nodes in order:
        first = nodes[0]["root_cause"]
        entry = next((r for r in by_node[nodes[0]["name"]] if r.get("id") == first.get("id")), {})
        title = humanize(key) if not key.startswith("check:") else f"{first.get('check')} {first.get('outcome')}"
        out.append(f'<section class="ibc-rc"><h3><span class="vg">◆</span> {esc(title)} '
                   f'<span class="n">{len(nodes)} node{"s" if len(nodes) != 1 else ""}: '
                   f'<code>{esc(fold(n["name"] for n in nodes))}</code> · '
                   f'link: {esc(link_label(first.get("link")))}</span></h3>')
        out.append(_remedy_html(entry.get("remediation")))
        same: dict[str, list[str]] = {}
        for node in nodes:
            same.setdefault(_node_finding(node, by_node[node["name"]]), []).append(node["name"])
        for body, names in same.items():
            anchors = "".join(f'<span id="rc-{esc(n)}"></span>' for n in names)
            label = fold(names) + (f" ({len(names)} nodes, same finding)" if len(names) > 1 else "")
            out.append(f'<article class="rc-node">{anchors}<h4>{esc(label)}</h4>{body}</article>')
        out.append("</section>")
    return "".join(out)


def _remedy_html(remedy: dict | None) -> str:
    if not remedy:
        return ('<p class="fix none"><b>What to do:</b> no catalogue entry matches this finding; '
                'the message says what was expected and what was seen.</p>')
    return (f'<p class="fix"><b>What to do:</b> {esc(remedy.get("action"))}'
            f'<span class="ref"><b>Reference:</b> {esc(remedy.get("reference"))}</span></p>')


def _node_finding(node: dict, results: list[dict]) -> str:
    """One node's root-cause message, how far it reaches on the node, and the failures it explains."""
    root = node["root_cause"]
    affected = root.get("affected")  # "8/8 HCAs", from rootcause
    if not affected:
        same = [r for r in results if r.get("check") == root.get("check")]
        unit = "HCAs" if same and all(r.get("hca") for r in same) else "items"
        affected = f"{sum(1 for r in same if r.get('outcome') in BAD)}/{len(same)} {unit}"
    scope = f"{root.get('check')} {root.get('outcome')} on {affected} of the node"
    ids = set(node.get("consequences") or [])
    later = [r for r in results if r.get("id") in ids and r.get("check") != root.get("check")]
    parts = [f'<p class="finding">{esc(root.get("message") or "")}</p>', f'<p class="scope">{esc(scope)}</p>']
    if later:
        per_link = Counter(r.get("link") for r in later)
        what = ", ".join(f"{link_label(k)} {v}" for k, v in sorted(per_link.items(), key=lambda kv: link_rank(kv[0])))
        parts.append(f'<details class="ds"><summary>{len(later)} downstream failure{"s" if len(later) != 1 else ""}'
                     f' explained by this root cause ({esc(what)})</summary>'
                     f'<ul>{"".join(_group_lines(later))}</ul></details>')
    else:
        parts.append('<p class="scope">no downstream failure</p>')
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# versions seen in the evidence bundle


@dataclass
class VersionsSeen:
    ipam_images: list[tuple[str, str, int]] = field(default_factory=list)      # image, components, pods
    operator_images: list[tuple[str, str, int]] = field(default_factory=list)
    declared: list[tuple[str, str]] = field(default_factory=list)              # NicClusterPolicy component, image
    firmware: list[tuple[str, int, str]] = field(default_factory=list)         # fw_ver, devices, nodes
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def versions_seen(bundle_root: Path | None) -> VersionsSeen:
    """Images of the operator-namespace pods, NicClusterPolicy's images, firmware versions (sysfs fw_ver)."""
    seen = VersionsSeen()
    if bundle_root is None:
        seen.notes.append("no evidence bundle")
        return seen
    root = Path(bundle_root)
    images: dict[str, tuple[set, list]] = {}
    pods = _read_json(root / "cluster" / "pods.json")
    if not pods:
        seen.notes.append("pods not collected")
    for pod in lst(pods.get("items")):
        if not isinstance(pod, dict):
            continue
        meta = d(pod.get("metadata"))
        labels = d(meta.get("labels"))
        component = str(labels.get("component") or labels.get("app") or labels.get("name") or meta.get("name", "?"))
        for image in pod_images(pod):
            comps, count = images.setdefault(image, (set(), [0]))
            comps.add(component)
            count[0] += 1
    for image, (comps, count) in sorted(images.items()):
        row = (image, ", ".join(sorted(comps)), count[0])
        ipam = Image.parse(image).name == IPAM_IMAGE or any(c.startswith("nv-ipam") for c in comps)
        (seen.ipam_images if ipam else seen.operator_images).append(row)
    for policy in lst(_read_json(root / "cluster" / "nicclusterpolicies.json").get("items")):
        for component, spec in sorted(d(d(policy).get("spec")).items()):
            spec = d(spec)
            if spec.get("image"):
                ref = f"{spec.get('repository', '')}/{spec['image']}:{spec.get('version', '')}".lstrip("/")
                seen.declared.append((str(component), ref))
    versions: dict[str, set] = defaultdict(set)
    patterns = ("nodes/*/sysfs/class/net/*/device/infiniband/*/fw_ver", "nodes/*/sysfs/class/infiniband/*/fw_ver")
    for pattern in patterns:
        for path in root.glob(pattern):
            node, device = path.relative_to(root).parts[1], path.parent.name
            try:
                versions[path.read_text().strip()].add((node, device))
            except OSError:
                continue
    for version, devices in sorted(versions.items()):
        seen.firmware.append((version, len(devices), fold(n for n, _ in devices)))
    return seen


# ---------------------------------------------------------------------------------------------
# run metadata and sign-off

RUN_FIELDS = (
    ("cluster", "Cluster"), ("nodes", "Nodes in inventory"), ("inventory", "Inventory"),
    ("inventory_sha256", "Inventory sha256"), ("bundle", "Evidence bundle"), ("collected", "Evidence collected"),
    ("started", "Evaluation started"), ("finished", "Evaluation finished"), ("read_only", "Read-only run"),
    ("complete", "Evidence complete"), ("interrupted", "Interrupted"), ("user", "Run by"),
    ("tool", "ibconform version"), ("exit_status", "Exit status"), ("snapshot", "Cluster snapshot read"),
)


def _value(key: str, value: object) -> str:
    if key == "read_only":
        return "yes (no probe pods, no writes to the cluster)" if value else "no (probe pods were created)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "snapshot" and isinstance(value, dict):
        return (f"{value.get('id')} in {value.get('dir')}, taken {value.get('taken')} "
                f"({value.get('age_s')} s before the run)")
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return "—" if value is None else str(value)


def _image_rows(rows: list[tuple[str, str, int]]) -> str:
    if not rows:
        return "none seen"
    return "<br>".join(f"<code>{esc(img)}</code> <span class=\"mut\">({esc(c)}; {n} pod{'s' if n != 1 else ''})</span>"
                       for img, c, n in rows)


def render_metadata(run: dict, versions: VersionsSeen, results_sha256: str | None = None) -> str:
    rows = []
    known = {k for k, _ in RUN_FIELDS}
    for key, label in RUN_FIELDS:
        if key in run:
            value = _value(key, run[key])
            cell = f"<code>{esc(value)}</code>" if key in ("inventory", "inventory_sha256", "bundle") else esc(value)
            rows.append(f"<tr><th>{esc(label)}</th><td>{cell}</td></tr>")
    rows.append(f"<tr><th>nv-ipam images running</th><td>{_image_rows(versions.ipam_images)}</td></tr>")
    rows.append(f"<tr><th>Network Operator images running</th><td>{_image_rows(versions.operator_images)}</td></tr>")
    if versions.declared:
        declared = "<br>".join(f"{esc(c)}: <code>{esc(ref)}</code>" for c, ref in versions.declared)
        rows.append(f"<tr><th>NicClusterPolicy images</th><td>{declared}</td></tr>")
    firmware = "<br>".join(f"<code>{esc(v)}</code> <span class=\"mut\">({n} device{'s' if n != 1 else ''} on "
                           f"{esc(nodes)})</span>" for v, n, nodes in versions.firmware) or "none seen"
    rows.append(f"<tr><th>Firmware versions seen</th><td>{firmware}</td></tr>")
    if versions.notes:
        rows.append(f"<tr><th>Not collected</th><td>{esc('; '.join(versions.notes))}</td></tr>")
    for key in sorted(set(run) - known - {"counts"}):
        if not isinstance(run[key], dict | list):
            rows.append(f"<tr><th>{esc(key)}</th><td>{esc(_value(key, run[key]))}</td></tr>")
    if results_sha256:
        rows.append(f"<tr><th>results.json sha256</th><td><code>{esc(results_sha256)}</code></td></tr>")
    return f'<table class="ibc-meta">{"".join(rows)}</table>'


def render_signoff(document: dict, results_sha256: str | None = None) -> str:
    v = verdict_of(document)
    run = document.get("run") or {}
    record = f"results.json sha256 {results_sha256}" if results_sha256 else "results.json of this run"
    return (
        '<section class="ibc-signoff" id="sign-off"><h2>Sign-off</h2>'
        f'<p>Cluster <b>{esc(run.get("cluster") or "?")}</b>, verdict <b>{esc(v.text)}</b> '
        f'({len(v.passing)} node(s) passing, {len(v.failing)} failing), evaluated {esc(run.get("finished") or "?")}. '
        f'This record: <code>{esc(record)}</code>, inventory sha256 <code>{esc(run.get("inventory_sha256") or "?")}'
        '</code>.</p>'
        '<p class="decision"><span>☐ Accepted</span><span>☐ Accepted with the exceptions below</span>'
        '<span>☐ Not accepted</span></p>'
        '<table class="sig"><tr><th>Accepted by (name, role)</th><td></td></tr>'
        '<tr><th>Date</th><td></td></tr><tr><th>Signature</th><td class="tall"></td></tr>'
        '<tr><th>Exceptions, comments</th><td class="tall"></td></tr></table></section>'
    )


@cache
def stylesheet() -> str:
    return files("ibconform.report").joinpath("assets/report.css").read_text()


def render_acceptance(document: dict, versions: VersionsSeen | None = None, results_sha256: str | None = None) -> str:
    """The acceptance part of the page: verdict, matrix, root causes, run metadata, sign-off."""
    versions = versions or VersionsSeen(notes=["no evidence bundle"])
    return "".join([
        f"<style>{stylesheet()}</style>",
        '<div class="ibc" id="acceptance">',
        render_verdict(document),
        '<section id="matrix"><h2>Nodes × chain</h2>', render_legend(),
        '<input type="checkbox" id="ibc-only-failing" class="ibc-toggle">'
        '<label for="ibc-only-failing" class="ibc-toggle-label">show failing nodes only</label>',
        f'<div class="ibc-matrix-wrap">{render_matrix(document)}</div></section>',
        '<section id="root-causes"><h2>Root causes</h2>', render_root_causes(document), "</section>",
        render_bandwidth(document),
        '<section id="run-metadata"><h2>Run</h2>',
        render_metadata(document.get("run") or {}, versions, results_sha256), "</section>",
        render_signoff(document, results_sha256),
        "</div>",
    ])


# ---------------------------------------------------------------------------------------------
# pytest-html's table of every check
#
# pytest-html keeps each row as HTML strings in one JSON document, which its page carries escaped in an
# HTML attribute: a byte of row markup costs up to six in the file (``"`` -> ``\&#34;``, ``<`` -> ``&lt;``).
# With ~24,000 rows at 256 nodes, a row carries what an auditor needs to find a check and read its
# verdict, and no more: a passing check is two cells (outcome, id) and no log; a check that did not pass
# adds its finding, the remediation and its evidence. Row markup has no quoted attributes and text keeps
# its quotes (an escaped quote costs ten bytes in the blob). The evidence of every check stays in
# results.json and in the bundle.

PREVIEW = 110  # characters of the first evidence line shown on the folded <details>
PASSED_CELL = "<td class=col-result>Passed</td>"
HEADER = ['<th class="sortable" data-column-type="result">Result</th>',
          '<th class="sortable" data-column-type="testId">Test</th>', "<th>Finding</th>"]
CHECKS_HINT = (
    '<h2 class="ibc-checks-title" id="checks">Every check</h2>'
    '<p class="ibc-hint">One row per check of every node: find a node or a check with the browser\'s search '
    "(Ctrl+F), filter by outcome with the boxes, sort by a column's title. A check that did not pass shows its "
    "finding, what to do and its evidence (click the row to fold it); a passing check shows its verdict only. "
    "The evidence of every check, passing or not, is in this run's results.json and in the evidence bundle "
    "(Run, above).</p>")


def text(value: object) -> str:
    """``value`` as inert HTML text content, for element content only (never an attribute value: quotes are
    kept as they are, an escaped one costs ten bytes in pytest-html's data blob).

    pytest-html's script wraps each log line starting with ``E`` in a span (a per-line regex, where CR,
    U+2028 and U+2029 also end a line): a line break before ``E`` and those three are written as
    character references, so that regex never splits our markup.
    """
    s = "" if value is None else str(value)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if "\n" in s:
        s = s.replace("\nE", "&#10;E")
    if "\r" in s:
        s = s.replace("\r", "&#13;")
    if "\u2028" in s or "\u2029" in s:
        s = s.replace("\u2028", "&#8232;").replace("\u2029", "&#8233;")
    return s


@cache
def _fix(action: str, reference: str) -> str:
    """A row's remediation (the same few texts on thousands of rows: made once each)."""
    return (f"<p class=fix><b>What to do:</b> {text(action)}"
            f"<span class=ref><b>Reference:</b> {text(reference)}</span></p>")


@lru_cache(maxsize=4096)
def _row_fix(check: str, message: str) -> str:
    """The catalogue's remediation for a failed check as row markup ('' when none matches)."""
    found = remediation.lookup(check, message)
    return "" if found is None else _fix(found.action, found.reference)


def _extra(evidence: list[str], fix: str) -> str:
    if not evidence and not fix:
        return ""
    parts = ["<div class=ibc-extra>", fix]
    if evidence:
        lines = evidence[0].strip().splitlines()
        first = lines[0] if lines else ""
        preview = first if len(first) <= PREVIEW else first[:PREVIEW - 1] + "…"
        items = "".join(f"<pre>{text(e)}</pre>" for e in evidence)
        parts.append(f"<details class=ibc-evidence><summary>Evidence ({len(evidence)})<span class=pv>{text(preview)}"
                     f"</span></summary>{items}</details>")
    parts.append("</div>")
    return "".join(parts)


def render_evidence(evidence: list[str], remedy: dict | None = None) -> str:
    """A result row's extra: the remediation (when failed) and the raw evidence folded in <details>."""
    fix = _fix(str(remedy.get("action")), str(remedy.get("reference"))) if remedy else ""
    return _extra(evidence, fix)


# ---------------------------------------------------------------------------------------------
# the pytest plugin


def _props(report: object) -> dict:
    """A report's user properties as a dict (evidence as a list); collect reports have none."""
    props: dict = {"evidence": []}
    for key, value in getattr(report, "user_properties", None) or []:
        if key == "evidence":
            props["evidence"].append(str(value))
        else:
            props.setdefault(key, value)
    return props


def _passed(report) -> bool:
    """A passed phase (not an unexpected pass): its row needs none of the report's properties."""
    return report.passed and not hasattr(report, "wasxfail")


def _says_only(report, data: list[str], message: str | None) -> bool:
    """Whether pytest's log of ``report`` is its verdict alone (the one-line message of a check, or a skip's
    (path, line, reason)): nothing the Finding column does not say."""
    if report.skipped:
        return isinstance(report.longrepr, tuple) and not report.sections
    log = html.unescape("".join(data)).strip()
    if hasattr(report, "node"):  # under xdist pytest's log starts with a line naming the worker and its python
        log = log.partition("\n")[2].strip()
    return log == (message or "").strip()


class AcceptanceReport:
    """Pytest plugin driving pytest-html's hooks; registered on the controller beside ResultsRecorder."""

    def __init__(self, results_path: Path, bundle_root: Path | None = None, cluster: str | None = None) -> None:
        self.results_path = Path(results_path)
        self.bundle_root = bundle_root
        self.cluster = cluster
        self._row: tuple[object, dict] | None = None  # the report whose row was just built, and its properties

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report) -> None:
        title = "ibconform acceptance report"
        report.title = f"{title} — {self.cluster}" if self.cluster else title

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        try:
            raw = self.results_path.read_bytes()
            document = json.loads(raw)
        except (OSError, ValueError) as exc:
            prefix.append(f'<style>{stylesheet()}</style><div class="ibc"><div class="ibc-verdict ko">'
                          f'<div class="big">NO VERDICT</div><div class="facts">results.json unreadable: '
                          f'{esc(exc)}</div></div></div>')
            return
        sha = hashlib.sha256(raw).hexdigest()
        prefix.append(render_acceptance(document, versions_seen(self.bundle_root), sha))
        summary.append(CHECKS_HINT)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list) -> None:
        # no Duration (a check of the bundle takes microseconds) and no Links (no extras): Result, Test, Finding
        cells[:] = HEADER

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_duration_format(self, duration: float) -> str:
        return ""  # no Duration column: spare pytest-html formatting three durations per check nobody sees

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report, cells: list) -> None:
        when = report.when
        if _passed(report):
            if when == "call":
                cells[:] = [PASSED_CELL, f"<td class=col-testId>{text(report.nodeid.rpartition('::')[2])}</td>"]
            elif not report.sections:  # (a teardown's captured output goes to the call's row)
                cells.clear()  # pytest-html does not show a passed setup/teardown: spare it the row's work
            return
        props = _props(report)
        self._row = (report, props)
        if when == "call":
            short = report.nodeid.rpartition("::")[2]
        elif when == "collect":
            short = report.nodeid
        else:
            short = f"{report.nodeid.split('::', 1)[-1]}::{when}"
        message = props.get("message")
        if message is None and report.skipped and isinstance(report.longrepr, tuple):
            message = props["message"] = str(report.longrepr[2]).removeprefix("Skipped: ")
        cells[:] = [cells[0].replace('class="col-result"', "class=col-result", 1),
                    f"<td class=col-testId>{text(short)}</td>", f"<td class=col-finding>{text(message)}</td>"]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report, data: list) -> None:
        if _passed(report) or report.skipped:
            if not report.sections:
                data.clear()  # no "No log output captured." on every passing row; a skip's Finding says why
            return
        row, self._row = self._row, None
        props = row[1] if row is not None and row[0] is report else _props(report)
        if not props.get("check"):
            return
        fix = _row_fix(props["check"], props.get("message") or "") if report.failed else ""
        extra = _extra(props["evidence"], fix)
        if data == ["No log output captured."] or _says_only(report, data, props.get("message")):
            data[:] = [extra] if extra else []  # nothing the Finding column does not already say
        elif extra:
            data.insert(0, extra)
