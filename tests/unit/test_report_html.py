"""The acceptance report's rendering (ibconform.report.html): matrix, root causes, metadata, sign-off,
escaping of untrusted text, a 500-node fleet, and the pytest-html hooks on a real pytest-html run."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import pytest

from ibconform.report import html as report
from ibconform.report.rootcause import node_verdicts

HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
PENDING = ("NUM_OF_VFS on {h} (0000:18:00.0) Current 16 vs Next Boot 8: firmware change pending — power-cycle "
           "the node (cold reboot); a warm reboot does not apply NVRAM changes")
REMEDY_PENDING = {"id": "firmware-change-pending", "action": "Power-cycle the node (full cold reboot).",
                  "reference": "mstflint: Current != Next Boot means NVRAM written but not yet active"}
REMEDY_VFS = {"id": "vfs-not-created", "action": "Check the SriovNetworkNodeState.",
              "reference": "docs/architecture.md#the-chain"}


def result(check: str, node: str | None, link: str, outcome: str = "passed", hca: str | None = None,
           message: str | None = None, evidence: list[str] | None = None, remediation: dict | None = None) -> dict:
    suffix = f"{node}-{hca}" if hca else (node or "pod1")
    return {"id": f"test_{check}[{suffix}]", "check": check, "node": node, "hca": hca, "link": link,
            "outcome": outcome, "message": message, "evidence": evidence or [], "remediation": remediation}


def node_results(node: str, pending: bool = False) -> list[dict]:
    """One DGX node's results; with ``pending`` the seed's fault: firmware change pending on 8/8 HCAs."""
    rows = [result("node_identity", node, "node", evidence=[f"uname -n: {node}"])]
    for h in HCAS:
        rows.append(result("firmware_vfs_committed", node, "firmware", "failed" if pending else "passed", h,
                           PENDING.format(h=h) if pending else None, [f"mstconfig -d X -e q ({h})"],
                           REMEDY_PENDING if pending else None))
        rows.append(result("sriov_numvfs", node, "kernel", "failed" if pending else "passed", h,
                           f"sriov_numvfs on {h} expected 8 vs 0: VFs not created" if pending else None,
                           [f"/sys/class/net/{h}/device/sriov_numvfs: '0'"], REMEDY_VFS if pending else None))
        rows.append(result("ib_port_active", node, "ports", hca=h))
    rows.append(result("node_state_synced", node, "operator", "failed" if pending else "passed",
                       message="SriovNetworkNodeState syncStatus expected Succeeded vs InProgress" if pending else None))
    rows.append(result("probe_scheduled", node, "workload", "skipped", message="read-only run: no probe pods"))
    return rows


def document(results: list[dict], **run) -> dict:
    return {"format": "ibconform-results/v1", "run": {"cluster": "dgx-b200-pod1", **run},
            "nodes": node_verdicts(results), "results": results}


DEMO = document(node_results("dgx030") + node_results("dgx031", pending=True))


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML fragment."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def matrix_rows(fragment: str) -> dict[str, list[str]]:
    """node -> the css classes of its link cells, in column order."""
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr class=\"v-\w+\">(.*?)</tr>", fragment):
        name = html.unescape(re.search(r"<th scope=\"row\">(.*?)</th>", row).group(1))
        rows[name] = re.findall(r"<td class=\"(c-\w)\"", row)
    return rows


# -- the matrix ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("outcomes", "is_root", "state"), [
    (["passed", "passed"], False, "passed"),
    (["passed", "failed", "error"], False, "failed"),
    (["passed", "error"], False, "error"),
    (["skipped", "skipped"], False, "skipped"),
    (["skipped", "passed"], False, "passed"),
    ([], False, "none"),
    (["failed"], True, "root"),
])
def test_cell_state(outcomes, is_root, state):
    assert report.cell_state(outcomes, is_root) == state


def test_matrix_marks_the_root_cause_and_its_consequences():
    rows = matrix_rows(report.render_matrix(DEMO))
    # columns: the links with results (node, firmware, kernel, ports, operator, workload)
    assert rows == {
        "dgx030": ["c-p", "c-p", "c-p", "c-p", "c-p", "c-s"],
        "dgx031": ["c-p", "c-r", "c-f", "c-p", "c-f", "c-s"],
    }


def test_matrix_cells_differ_without_colour():
    """Each state has its own glyph and a tooltip naming it: readable in black and white."""
    glyphs = [glyph for _, glyph, _ in report.CELL.values() if glyph]
    assert len(set(glyphs)) == len(glyphs) == 5
    fragment = report.render_matrix(DEMO)
    root_cell = re.search(r'<td class="c-r" title="([^"]*)">◆</td>', fragment)
    assert root_cell, fragment
    assert html.unescape(root_cell.group(1)) == "ROOT CAUSE, firmware: 8 failed — firmware_vfs_committed"
    assert '<td class="c-f" title="kernel VFs: 8 failed">✗</td>' in fragment
    assert '<a href="#rc-dgx031"' in fragment and "firmware change pending</a>" in fragment


def test_matrix_has_a_cluster_row_when_cluster_wide_checks_ran():
    results = [*node_results("dgx030"), result("ipam_controller", None, "ipam", "failed",
                                               message="nv-ipam-controller expected Ready vs ImagePullBackOff")]
    fragment = report.render_matrix(document(results))
    rows = matrix_rows(fragment)
    assert list(rows) == [report.CLUSTER_ROW, "dgx030"]
    assert rows[report.CLUSTER_ROW][5] == "c-f"     # the ipam column, after operator
    assert '<a href="#rc-cluster">' in fragment


# -- verdict, root causes, run, sign-off ------------------------------------------------------------------

def test_verdict():
    assert report.verdict_of(document(node_results("dgx030"))).text == "ACCEPTED"
    verdict = report.verdict_of(DEMO)
    assert (verdict.text, verdict.passing, verdict.failing) == ("NOT ACCEPTED", ["dgx030"], ["dgx031"])
    cluster_fail = [*node_results("dgx030"), result("ipam_controller", None, "ipam", "error", message="403")]
    assert report.verdict_of(document(cluster_fail)).text == "NOT ACCEPTED"
    assert report.verdict_of(document([])).text == "NOT ACCEPTED"  # nothing judged, nothing accepted
    interrupted = document(node_results("dgx030"), interrupted=True, complete=False)
    assert report.verdict_of(interrupted).text == "NOT ACCEPTED"
    assert "evidence incomplete (run interrupted)" in report.render_verdict(interrupted)
    banner = report.render_verdict(DEMO)
    assert "NOT ACCEPTED" in banner and "1 of 2 nodes pass" in banner and "dgx031" in banner


def test_root_cause_names_the_remediation_and_folds_the_downstream_failures():
    fragment = report.render_root_causes(DEMO)
    text = " ".join(Tags(fragment).text)
    assert "Firmware change pending" in text
    root = next(n for n in DEMO["nodes"] if n["name"] == "dgx031")["root_cause"]
    assert root["message"] in text and root["message"].startswith("NUM_OF_VFS on ibp")
    assert "firmware_vfs_committed failed on 8/8 HCAs of the node" in text
    assert "Power-cycle the node (full cold reboot)." in text and "NVRAM written but not yet active" in text
    assert 'id="rc-dgx031"' in fragment and "rc-dgx030" not in fragment
    downstream = re.search(r"<details class=\"ds\">(.*?)</details>", fragment).group(1)
    assert "9 downstream failures explained by this root cause (kernel VFs 8, operator sync 1)" in downstream
    assert "sriov_numvfs</b> <span class=\"o-failed\">failed</span> on 8: ibp24s0, ibp64s0" in downstream
    assert "<details class=\"ds\" open" not in fragment  # collapsed


@pytest.mark.parametrize(("remedy_id", "capital", "text"), [
    ("firmware-change-pending", True, "Firmware change pending"),
    ("firmware-change-pending", False, "firmware change pending"),
    ("vfs-not-created", True, "VFs not created"),
    ("firmware-sriov-settings", False, "firmware SR-IOV settings"),
    ("mstconfig-nv-access", True, "Mstconfig NV access"),
    ("ib-port-down", False, "IB port down"),
])
def test_humanize(remedy_id, capital, text):
    assert report.humanize(remedy_id, capital) == text


def test_no_failure_says_so():
    assert "No failure" in report.render_root_causes(document(node_results("dgx030")))


def test_run_metadata_and_versions_seen(tmp_path: Path):
    bundle = tmp_path / "bundle"
    (bundle / "cluster").mkdir(parents=True)
    pods = [
        {"metadata": {"name": "nv-ipam-node-x", "labels": {"component": "nv-ipam-node"}},
         "spec": {"containers": [{"image": "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0"}]}},
        {"metadata": {"name": "nv-ipam-node-y", "labels": {"component": "nv-ipam-node"}},
         "spec": {"containers": [{"image": "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0"}]}},
        {"metadata": {"name": "sriov-device-plugin-z", "labels": {"app": "sriov-device-plugin"}},
         "spec": {"containers": [{"image": "nvcr.io/nvidia/mellanox/sriov-network-device-plugin:v25.10.0"}]}},
        "not a pod",
    ]
    (bundle / "cluster" / "pods.json").write_text(json.dumps({"kind": "PodList", "items": pods}))
    ncp = {"items": [{"metadata": {"name": "nic-cluster-policy"}, "spec": {"nvIpam": {
        "repository": "nvcr.io/nvidia/mellanox", "image": "nvidia-k8s-ipam", "version": "network-operator-v25.10.0"}}}]}
    (bundle / "cluster" / "nicclusterpolicies.json").write_text(json.dumps(ncp))
    for node, fw in (("dgx030", "28.41.1000"), ("dgx031", "28.41.1000"), ("dgx032", "28.39.2048")):
        path = bundle / "nodes" / node / "sysfs/class/net/ibp24s0/device/infiniband/mlx5_4/fw_ver"
        path.parent.mkdir(parents=True)
        path.write_text(f"{fw}\n")

    seen = report.versions_seen(bundle)
    assert seen.ipam_images == [("nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0", "nv-ipam-node", 2)]
    assert seen.operator_images == [("nvcr.io/nvidia/mellanox/sriov-network-device-plugin:v25.10.0",
                                     "sriov-device-plugin", 1)]
    assert seen.declared == [("nvIpam", "nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0")]
    assert seen.firmware == [("28.39.2048", 1, "dgx032"), ("28.41.1000", 2, "dgx[030-031]")]

    run = {"cluster": "pod1", "inventory": "inventories/pod1.yaml", "inventory_sha256": "ab" * 32,
           "started": "2026-01-02T03:04:05+00:00", "finished": "2026-01-02T03:04:09+00:00", "user": "ops",
           "read_only": True, "tool": "0.1.0", "counts": {"passed": 3}}
    text = " ".join(Tags(report.render_metadata(run, seen, "cd" * 32)).text)
    for expected in ("inventories/pod1.yaml", "ab" * 32, "cd" * 32, "2026-01-02T03:04:05+00:00",
                     "2026-01-02T03:04:09+00:00", "ops", "yes (no probe pods", "0.1.0", "28.39.2048",
                     "nvidia-k8s-ipam:network-operator-v25.10.0", "sriov-network-device-plugin:v25.10.0"):
        assert expected in text, expected


def test_versions_seen_without_cluster_evidence(tmp_path: Path):
    seen = report.versions_seen(tmp_path)
    assert (seen.ipam_images, seen.firmware, seen.notes) == ([], [], ["pods not collected"])


def test_signoff_block():
    fragment = report.render_signoff(DEMO, "ef" * 32)
    text = " ".join(Tags(fragment).text)
    for expected in ("Sign-off", "Accepted by (name, role)", "Date", "Signature", "NOT ACCEPTED", "ef" * 32):
        assert expected in text, expected
    assert 'id="sign-off"' in fragment


def test_print_css_keeps_matrix_and_signoff_and_drops_the_chrome():
    css = report.stylesheet()
    paper = css.partition("@media print")[2]
    hidden = re.search(r"\}\s*([^{}]*)\{ display: none !important; \}", paper).group(1)
    for chrome in ("#results-table", ".controls", ".ibc-toggle", "#environment", "footer"):
        assert chrome in hidden, chrome
    for kept in ("ibc-matrix", "ibc-signoff", "ibc-verdict", "ibc-rc", "ibc-meta"):
        assert kept not in hidden, kept
    assert ".ibc-matrix tr.v-pass { display: table-row !important; }" in paper  # all nodes on paper
    assert ".ibc-matrix-wrap { max-height: none; overflow: visible" in paper
    assert re.search(r"\.ibc-signoff \{[^}]*break-inside: avoid", css)
    assert "url(" not in css and "@import" not in css  # nothing fetched


# -- untrusted text --------------------------------------------------------------------------------------

EVIL = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def evil_document() -> dict:
    rows = [result("firmware_vfs_committed", "dgx031", "firmware", "failed", "ibp24s0", f"NUM_OF_VFS {EVIL}",
                   [f"mstconfig output\n</pre>{EVIL}\nEnd"],
                   {"id": "x<script>", "action": f"do {EVIL}", "reference": f"see {EVIL}"}),
            result("sriov_numvfs", "dgx031", "kernel", "error", "ibp24s0", EVIL)]
    return document(rows, cluster=EVIL, inventory=EVIL, user=EVIL)


def test_untrusted_text_is_rendered_inert():
    fragment = report.render_acceptance(evil_document(), report.VersionsSeen(), "00")
    fragment += report.render_evidence([f"a\n</pre>{EVIL}"], {"action": EVIL, "reference": EVIL})
    tags = Tags(fragment).tags
    assert not [t for t, _ in tags if t in ("script", "img", "iframe", "object")]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert EVIL in " ".join(Tags(fragment).text)  # shown, as text
    assert "&lt;script&gt;" in fragment


def js_lines(text: str) -> list[str]:
    """``text`` cut into lines the way pytest-html's log regex (``/^E.*$/gm``) sees them."""
    return re.split(r"\r\n|[\n\r\u2028\u2029]", text)


def test_escaped_text_gives_the_log_regex_no_line_to_split():
    """pytest-html's script wraps each log line starting with E in a span; our markup must offer it none."""
    assert report.esc("a\nEvil</pre>\r\n") == "a&#10;Evil&lt;/pre&gt;&#13;&#10;"
    assert "\n" not in report.render_acceptance(DEMO).split("</style>", 1)[1]
    # row markup keeps its line breaks (2 bytes in the blob, not 9) except where a line would start with E
    assert report.text("a\nEvil</pre>\r\nEnd\u2028Ex\u2029E 'q\"") == (
        "a&#10;Evil&lt;/pre&gt;&#13;&#10;End&#8232;Ex&#8233;E 'q\"")
    extra = report.render_evidence(["line 1\nEND of it\n", "\rE\r\nE\u2028E\u2029E"], REMEDY_PENDING)
    assert [line for line in js_lines(extra) if line.startswith("E")] == []
    assert "line 1\nEND" not in extra and "line 1&#10;END of it\n</pre>" in extra


# -- a 500-node fleet ------------------------------------------------------------------------------------

def fleet(size: int, failing: set[int]) -> dict:
    results = []
    for i in range(size):
        results += node_results(f"dgx{i:03d}", pending=i in failing)
    return document(results)


@pytest.mark.parametrize("failing", [set(range(0, 500, 50)), set(range(500))], ids=["10-failing", "all-failing"])
def test_500_nodes_render_small_and_fast(failing):
    doc = fleet(500, failing)
    start = time.perf_counter()
    page = report.render_acceptance(doc, report.VersionsSeen(), "00")
    seconds = time.perf_counter() - start
    rows = matrix_rows(page)
    assert len(rows) == 500
    assert seconds < 2.0, f"{seconds:.2f} s to render 500 nodes"
    assert len(page.encode()) < 1_000_000, f"{len(page.encode())} bytes for 500 nodes"
    per_row = len(report.render_matrix(doc).encode()) / 500
    # 800 bytes for the 8 links of ibconform 0.2, and one empty cell more for each link added since
    assert per_row < 800 + 45 * (len(report.LINKS) - 8), f"{per_row:.0f} bytes per matrix row"
    # same fault everywhere: one entry naming the folded node set, each node still reachable by anchor
    anchors = re.findall(r'id="rc-(dgx\d+)"', page)
    assert sorted(anchors) == sorted(f"dgx{i:03d}" for i in failing)
    if len(failing) == 500:
        assert "dgx[000-499] (500 nodes, same finding)" in page
        assert page.count('<article class="rc-node">') == 1


# -- the plugin on a real pytest-html run ----------------------------------------------------------------

CONFTEST = '''
from pathlib import Path
from ibconform.report.html import AcceptanceReport
from ibconform.report.results import ResultsRecorder

def pytest_configure(config):
    out = Path(config.rootpath) / "out"
    config.pluginmanager.register(ResultsRecorder(out, lambda: {"cluster": "lab", "user": "ci"}), "ibconform-results")
    config.pluginmanager.register(AcceptanceReport(out / "results.json", None, "lab"), "ibconform-html")
'''

CHECKS = '''
import pytest
EVIL = {evil!r}

def props(record, check, node, hca, link, message=None):
    record("check", check); record("node", node); record("hca", hca); record("link", link)
    record("evidence", "sysfs value: '0'\\n" + EVIL)
    if message:
        record("message", message)

def test_passes(record_property):
    props(record_property, "sriov_numvfs", "dgx030", "ibp24s0", "kernel")

def test_skipped(record_property):
    props(record_property, "probe_scheduled", "dgx030", None, "workload")
    pytest.skip("read-only run: no probe pods")

def test_fails(record_property):
    props(record_property, "firmware_vfs_committed", "dgx031", "ibp24s0", "firmware",
          "NUM_OF_VFS on ibp24s0 Current 16 vs Next Boot 8 " + EVIL)
    pytest.fail("NUM_OF_VFS on ibp24s0 Current 16 vs Next Boot 8 " + EVIL, pytrace=False)  # a verdict, as the suite's
'''


def run_pytest_html(tmp_path: Path, checks: str, *args: str) -> tuple[subprocess.CompletedProcess, str, dict]:
    """Run ``checks`` under pytest-html with the plugin; return the process, the page and its data blob."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_lab.py").write_text(checks)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:kmock", *args,
                           "--html", str(tmp_path / "report.html"), "--self-contained-html", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    page = (tmp_path / "report.html").read_text() if (tmp_path / "report.html").exists() else ""
    found = re.search(r'data-jsonblob="([^"]*)"', page)
    return proc, page, json.loads(html.unescape(found.group(1))) if found else {}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_plugin_fills_pytest_html_hooks(tmp_path: Path, workers: list[str]):
    proc, page, blob = run_pytest_html(tmp_path, textwrap.dedent(CHECKS.format(evil=EVIL)), *workers)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "<title id=\"head-title\">ibconform acceptance report — lab</title>" in page
    assert 'id="acceptance"' in page and "NOT ACCEPTED" in page and 'id="sign-off"' in page
    # the table: Result, Test (both sortable), Finding; no Duration, no Links
    head = re.search(r'<thead id="results-table-head">(.*?)</thead>', page, re.S).group(1)
    assert re.findall(r"<th[^>]*>(\w+)</th>", head) == ["Result", "Test", "Finding"]
    assert "results.json" in page.split('id="checks"', 1)[1].split("</p>", 1)[0]  # says where all evidence is
    # the rows live in a JSON blob the page's script turns into table rows with innerHTML
    assert blob["title"] == "ibconform acceptance report — lab"
    tests = {t["testId"]: t for ts in blob["tests"].values() for t in ts}
    assert sorted(tests) == ["test_fails", "test_passes", "test_skipped"]
    failed, passed = tests["test_fails"], tests["test_passes"]
    finding = f"NUM_OF_VFS on ibp24s0 Current 16 vs Next Boot 8 {html.escape(EVIL, quote=False)}"
    assert failed["resultsTableRow"] == ["<td class=col-result>Failed</td>", "<td class=col-testId>test_fails</td>",
                                         f"<td class=col-finding>{finding}</td>"]
    assert ("<details class=ibc-evidence><summary>Evidence (1)<span class=pv>sysfs value: '0'</span>"
            "</summary><pre>sysfs value: '0'\n&lt;script&gt;") in failed["log"]
    assert "Power-cycle the node" in failed["log"]  # remediation from the catalogue
    assert "[gw" not in failed["log"] and "Python" not in failed["log"]  # no xdist worker line, no repeated finding
    assert "NUM_OF_VFS on ibp24s0" not in failed["log"]  # the Finding says it, once
    # a passing check: its verdict and id, nothing else (no "No log output captured.", no evidence)
    assert passed["resultsTableRow"] == ["<td class=col-result>Passed</td>", "<td class=col-testId>test_passes</td>"]
    assert (passed["result"], passed["log"], passed["extras"]) == ("Passed", "", [])
    # a skipped check: the reason as its finding, not pytest's (path, line, reason) tuple; like a passing check's,
    # its evidence is in results.json only (thousands of rows at a probe level below rdma)
    skipped = tests["test_skipped"]
    assert skipped["resultsTableRow"][2] == "<td class=col-finding>read-only run: no probe pods</td>"
    assert skipped["log"] == ""
    fragments = "".join(failed["resultsTableRow"]) + failed["log"] + page.split('data-jsonblob=')[0]
    tags = Tags(fragments).tags  # (pytest-html's own media template holds an empty <img src="">)
    assert not [(t, a) for t, a in tags if t == "script" or a.get("src") == "x" or "onerror" in a]
    assert len(blob["tests"]) == 3


# -- the table's size and cost at fleet scale -------------------------------------------------------------

FLEET = '''
import pytest

NODES = [f"dgx{{n:03d}}" for n in range({nodes})]
HCAS = ["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0", "ibp154s0", "ibp192s0", "ibp206s0", "ibp220s0"]
PER_HCA = [(n, h) for n in NODES for h in HCAS]
FAILING = set(NODES[::{every}])
MST = ("mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1 (exit 0): Configurations: Default  Current  "
       "Next Boot\\n*       NUM_OF_VFS                                  0                    {{}}                    8")


def record(record_property, check, node, hca, link, *evidence):
    for key, value in (("check", check), ("node", node), ("hca", hca), ("link", link)):
        record_property(key, value)
    for line in evidence:
        record_property("evidence", line)


@pytest.mark.parametrize(("node", "hca"), PER_HCA, ids=[f"{{n}}-{{h}}" for n, h in PER_HCA])
def test_firmware_vfs_committed(record_property, node, hca):
    current = 16 if node in FAILING else 8
    record(record_property, "firmware_vfs_committed", node, hca, "firmware", MST.format(current))
    if current != 8:
        message = (f"NUM_OF_VFS on {{hca}} (0000:18:00.0) Current {{current}} vs Next Boot 8: firmware change pending "
                   "— power-cycle the node (cold reboot); a warm reboot does not apply NVRAM changes")
        record_property("message", message)
        pytest.fail(message, pytrace=False)  # the suite reports a verdict as its message, without traceback


@pytest.mark.parametrize("check", ["sriov_numvfs", "sriov_totalvfs_allows_expected", "ib_port_active",
                                   "resource_allocatable"])
@pytest.mark.parametrize(("node", "hca"), PER_HCA, ids=[f"{{n}}-{{h}}" for n, h in PER_HCA])
def test_per_hca(record_property, node, hca, check):
    record(record_property, check, node, hca, "kernel", f"/sys/class/net/{{hca}}/device/sriov_numvfs: '8'",
           f"expected VFs on {{hca}} (0000:18:00.0): 8 (inventory expect.vfsPerHca)")


@pytest.mark.parametrize("node", NODES)
def test_node_identity(record_property, node):
    record(record_property, "node_identity", node, None, "node", f"uname -n: {{node}}")
'''

# bytes of report.html per check. The pytest-html 4.2 page carries each row as JSON in an escaped attribute:
# ~265 bytes of a passing row are its own (node id, field names, hydrated copies); the row markup adds the rest.
# The format before these budgets took ~1,400 bytes per check (34 MB at 256 nodes); this test's fleet: 1,413 per
# check, 1,439 per passing row. Now: ~483 and ~404.
PAGE_BYTES_PER_CHECK = 500
PASSING_ROW_BYTES = 420


def test_report_stays_small_per_check(tmp_path: Path):
    """A fleet's worth of checks (every eighth node failing): every check has its row, evidence is kept for
    what did not pass, and the page stays within a per-check byte budget."""
    nodes, every = 40, 8
    proc, page, blob = run_pytest_html(tmp_path, FLEET.format(nodes=nodes, every=every))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    items = nodes * 8 * 5 + nodes
    rows = [t for ts in blob["tests"].values() for t in ts]
    assert len(rows) == items  # every check has its row
    failed = [t for t in rows if t["result"] == "Failed"]
    assert len(failed) == len(range(0, nodes, every)) * 8
    assert all("<details class=ibc-evidence>" in t["log"] and "Power-cycle" in t["log"] for t in failed)
    assert all(t["log"] == "" and len(t["resultsTableRow"]) == 2 for t in rows if t["result"] == "Passed")

    per_check = len(page.encode()) / items
    assert per_check < PAGE_BYTES_PER_CHECK, f"{per_check:.0f} bytes of report.html per check"
    # one passing row as the page holds it: its key (the item's node id) and its JSON, attribute-escaped
    node_id, entry = next((k, ts[0]) for k, ts in blob["tests"].items() if ts[0]["result"] == "Passed")
    escaped = str(markupsafe.escape(json.dumps({node_id: [entry]})))  # as pytest-html's template escapes it
    assert len(escaped.encode()) < PASSING_ROW_BYTES, escaped


def test_row_hooks_cost_microseconds():
    """The hooks run for every phase of every check (~72,000 calls at 256 nodes): a passing check costs
    a few microseconds of CPU, and a row of a failed one stays cheap too (its remediation is cached)."""
    plugin = report.AcceptanceReport(Path("results.json"))
    props = [("check", "sriov_numvfs"), ("node", "dgx030"), ("hca", "ibp24s0"), ("link", "kernel"),
             ("evidence", "/sys/class/net/ibp24s0/device/sriov_numvfs: '8'")]
    node_id = "checks/test_kernel.py::test_sriov_numvfs[dgx030-ibp24s0]"

    def phases(outcome: str, message: str | None = None) -> list[pytest.TestReport]:
        extra = [("message", message)] if message else []
        return [pytest.TestReport(node_id, ("checks/test_kernel.py", 1, "x"), {}, o, message if o == "failed" else None,
                                  when, [], 0.0, user_properties=props + extra)
                for when, o in (("setup", "passed"), ("call", outcome), ("teardown", "passed"))]

    def cpu_per_check(reports: list[pytest.TestReport], rounds: int = 2000) -> float:
        start = time.thread_time()
        for _ in range(rounds):
            for r in reports:
                cells = ['<td class="col-result">X</td>', "<td>id</td>", "<td>0 ms</td>", "<td></td>"]
                plugin.pytest_html_duration_format(duration=0.0)
                plugin.pytest_html_results_table_row(report=r, cells=cells)
                if cells:
                    plugin.pytest_html_results_table_html(report=r, data=["No log output captured."])
        return (time.thread_time() - start) / rounds

    passing = min(cpu_per_check(phases("passed")) for _ in range(3))
    failing = min(cpu_per_check(phases("failed", "sriov_numvfs on ibp24s0 expected 8 vs 0: VFs not created"))
                  for _ in range(3))
    # measured: ~2 µs and ~5 µs (the format before: ~19 µs and ~23 µs)
    assert passing < 10e-6, f"{passing * 1e6:.1f} µs of CPU per passing check in the row hooks"
    assert failing < 40e-6, f"{failing * 1e6:.1f} µs of CPU per failed check in the row hooks"
