"""The acceptance report in a real browser: Debian's chromium, headless, offline.

A real report comes from `ibconform demo` (the seed's incident on the twin: dgx031's firmware change is
pending). Chromium renders it with every host name resolving nowhere; the test takes a screenshot,
reads the DOM after pytest-html's script has built the table, checks the console stayed silent and the
network log holds no request made by the page, and prints it to PDF the way a signer would.

Chromium is required, not optional: scripts/bootstrap installs it (apt-get install -y chromium); when it
is missing these tests fail and say so. docs/report-demo.png is this module's screenshot of the demo
report (copy it from the test's temporary folder after a run to refresh it).
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.chromium import OFFLINE_FLAGS
from benchmarks.chromium import binary as installed_chromium
from ibconform.report import html as report
from tests.e2e.conftest import ibconform
from tests.unit.test_report_html import CONFTEST, fleet

WINDOW = (1400, 2000)


def chromium_binary() -> str:
    path = installed_chromium()
    if path:
        return path
    pytest.fail("chromium not found on PATH: the report's browser test needs Debian's chromium "
                "(apt-get install -y chromium; scripts/bootstrap installs it)", pytrace=False)


@dataclass
class Page:
    """What chromium made of one HTML file: the DOM after scripts, its console, the page's requests."""

    dom: str
    console: list[str]
    requests: list[str]
    seconds: float


def chromium(tmp: Path, url: str, *mode: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run chromium once on ``url`` with a fresh profile; return the process and the page's own requests."""
    profile = tmp / f"profile-{time.monotonic_ns()}"
    profile.mkdir()
    netlog = profile.with_suffix(".netlog.json")
    cmd = [chromium_binary(), *OFFLINE_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}", *mode, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-3000:]}"
    return proc, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    """URLs the page asked the network stack for (the browser's own update/account pings excluded:
    they carry no origin, and the host resolver sends them nowhere anyway)."""
    if not netlog.exists():
        return []
    log = json.loads(netlog.read_text() or "{}")
    start = log.get("constants", {}).get("logEventTypes", {}).get("URL_REQUEST_START_JOB")
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start and "url" in params and params.get("initiator") != "not an origin":
            urls.append(params["url"])
    return urls


def load(tmp: Path, path: Path, query: str = "") -> Page:
    """``path`` after its scripts ran; ``query`` is the page's URL query (pytest-html keeps its filter and
    sort there: ``?visible=failed``, ``?sort=testId``)."""
    start = time.monotonic()
    proc, requests = chromium(tmp, path.as_uri() + query, f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom")
    seconds = time.monotonic() - start
    console = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[(:]", line)]
    return Page(proc.stdout, console, requests, seconds)


class Dom(HTMLParser):
    """Start tags with their attributes, and the text inside elements carrying an id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.open_ids: list[tuple[str, int]] = []
        self.text_by_id: dict[str, list[str]] = {}
        self.depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("br", "img", "input", "meta", "source", "link", "hr", "wbr"):
            return
        self.depth += 1
        if attrs.get("id"):
            self.open_ids.append((attrs["id"], self.depth))
            self.text_by_id.setdefault(attrs["id"], [])

    def handle_endtag(self, tag):
        while self.open_ids and self.open_ids[-1][1] >= self.depth:
            self.open_ids.pop()
        self.depth -= 1

    def handle_data(self, data):
        for element_id, _ in self.open_ids:
            self.text_by_id[element_id].append(data)

    def text(self, element_id: str) -> str:
        return " ".join(" ".join(self.text_by_id.get(element_id, [])).split())

    def having(self, tag: str, **attrs: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


# -- the demo report ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_binary()  # fail first, and clearly, when the browser is missing
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = ibconform("demo", "--out", str(out))
    assert proc.returncode == 0, f"ibconform demo exited {proc.returncode}: {proc.stderr[-3000:]}"
    assert (out / "report.html").is_file(), proc.stdout
    return out


@pytest.fixture(scope="module")
def demo_page(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Page:
    return load(tmp_path_factory.mktemp("chromium"), demo / "report.html")


def test_demo_report_renders_offline_and_silently(demo_page: Page):
    assert demo_page.console == [], "console messages while rendering the report:\n" + "\n".join(demo_page.console)
    assert demo_page.requests == [], f"the report made network requests: {demo_page.requests}"
    assert '<table class="ibc-matrix">' in demo_page.dom


def test_demo_report_references_nothing_online(demo: Path):
    page = (demo / "report.html").read_text()
    fetched = re.findall(r"<(?:script|img|link|iframe|source|video|audio|embed|object)\b[^>]*?"
                         r"(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//", page, flags=re.I)
    assert fetched == []
    assert not re.search(r"url\(\s*[\"']?\s*(?:https?:)?//|@import", page, flags=re.I)


def test_demo_report_shows_matrix_root_cause_and_signoff(demo: Path, demo_page: Page):
    dom = Dom(demo_page.dom)
    results = json.loads((demo / "results.json").read_text())

    # the verdict and one matrix row per node, dgx031's firmware cell the root cause
    assert "NOT ACCEPTED" in dom.text("acceptance")
    rows = re.findall(r'<tr class="v-(\w+)"><th scope="row">(dgx\d+)</th>(.*?)</tr>', demo_page.dom)
    assert {name: verdict for verdict, name, _ in rows} == {"dgx030": dom_verdict(results, "dgx030"), "dgx031": "fail"}
    dgx031 = next(cells for _, name, cells in rows if name == "dgx031")
    assert re.findall(r'<td class="(c-\w)"', dgx031)[1] == "c-r"  # columns: node reached, firmware, ...
    assert re.search(r'<td class="c-r" title="ROOT CAUSE, firmware: 8 failed, \d+ passed — firmware_vfs_committed">'
                     r"◆</td>", dgx031), dgx031

    # the root cause of dgx031, its remediation, and the downstream failures folded under it
    assert "rc-dgx031" in dom.text_by_id
    root = dom.text("root-causes")
    assert "Firmware change pending" in root
    assert re.search(r"dgx031 NUM_OF_VFS on ibp\w+ \(0000:..:00\.0\) Current 16 vs Next Boot 8: firmware change pending",
                     root), root
    assert "firmware_vfs_committed failed on 8/8 HCAs of the node" in root
    assert "Power-cycle the node (full cold reboot" in root and "a warm reboot" in root.lower()
    assert re.search(r"\d+ downstream failures explained by this root cause \(kernel VFs 8", root), root
    assert not dom.having("details", class_="ds", open="")  # collapsed

    # run metadata and the sign-off block
    run = dom.text("run-metadata")
    for expected in ("twin-demo", results["run"]["inventory_sha256"], "Read-only run no", "Run by",
                     "Firmware versions seen 28.41.1000", "Evaluation started", "Evaluation finished"):
        assert expected in run, expected
    signoff = dom.text("sign-off")
    for expected in ("Sign-off", "Accepted by (name, role)", "Date", "Signature", "NOT ACCEPTED"):
        assert expected in signoff, expected

    # pytest-html's table, built by its script, one row per check; evidence under each that failed or could not
    # judge (a skipped check's row is its reason)
    bodies = re.findall(r'<tbody class="results-table-row (\w+)"', demo_page.dom)
    assert len(bodies) == len(results["results"])
    not_passed = sum(1 for r in results["results"] if r["outcome"] in ("failed", "error") and r["evidence"])
    assert demo_page.dom.count('<details class="ibc-evidence">') == not_passed
    assert "mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1 (exit 0):" in demo_page.dom


def table_rows(dom: str) -> list[tuple[str, str, str]]:
    """(outcome class, id, the row's HTML) of each row of pytest-html's table, in page order."""
    return re.findall(r'<tbody class="results-table-row (\w+)" id="([^"]*)">(.*?)</tbody>', dom, flags=re.S)


def test_demo_report_table_shows_failures_with_evidence_and_every_passing_check(demo: Path, demo_page: Page):
    results = json.loads((demo / "results.json").read_text())
    rows = {test_id: (outcome, body) for outcome, test_id, body in table_rows(demo_page.dom)}
    assert set(rows) == {r["id"] for r in results["results"]}  # every check is in the table, by its id
    failed = next(r for r in results["results"] if r["outcome"] == "failed" and r["node"] == "dgx031"
                  and r["check"] == "firmware_vfs_committed")
    outcome, body = rows[failed["id"]]
    assert outcome == "failed"
    assert '<tr class="extras-row">' in body  # unfolded: its evidence shows
    assert f'<td class="col-finding">{html.escape(failed["message"], quote=False)}</td>' in body
    assert "What to do:" in body and '<details class="ibc-evidence">' in body
    assert html.escape(failed["evidence"][0].splitlines()[0], quote=False) in body
    passed = next(r for r in results["results"] if r["outcome"] == "passed" and r["node"] == "dgx030")
    outcome, body = rows[passed["id"]]
    assert outcome == "passed"
    assert f'<td class="col-testId">{html.escape(passed["id"], quote=False)}</td>' in body  # found by its id
    assert "ibc-evidence" not in body and "No log output captured" not in body  # its verdict only
    assert "No log output captured" not in demo_page.dom


def test_demo_report_table_filters_and_sorts(demo: Path, demo_page: Page, tmp_path: Path):
    results = json.loads((demo / "results.json").read_text())
    first = [test_id for _, test_id, _ in table_rows(demo_page.dom)]
    assert first != sorted(first)  # unsorted by id: failures first
    failing = load(tmp_path, demo / "report.html", "?visible=failed,error")
    assert failing.console == [], failing.console
    expected = sorted(r["id"] for r in results["results"] if r["outcome"] in ("failed", "error"))
    assert expected and sorted(test_id for _, test_id, _ in table_rows(failing.dom)) == expected
    assert {outcome for outcome, _, _ in table_rows(failing.dom)} <= {"failed", "error"}

    by_id = load(tmp_path, demo / "report.html", "?sort=testId")
    assert by_id.console == [], by_id.console
    ids = [test_id for _, test_id, _ in table_rows(by_id.dom)]
    assert len(ids) == len(results["results"]) and ids == sorted(ids)


def dom_verdict(results: dict, node: str) -> str:
    return next(n["verdict"] for n in results["nodes"] if n["name"] == node)


def test_demo_report_screenshot(demo: Path, tmp_path: Path):
    shot = tmp_path / "report-demo.png"
    chromium(tmp_path, (demo / "report.html").as_uri(), f"--window-size={WINDOW[0]},{WINDOW[1]}",
             f"--screenshot={shot}", "--hide-scrollbars")
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == WINDOW
    assert colours > 50, "the screenshot looks blank"


def test_demo_report_prints_the_acceptance_part_only(demo: Path, tmp_path: Path):
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, (demo / "report.html").as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert 1 <= pages <= 4, f"{pages} printed pages: the checks table should not print, the acceptance part should"


# -- untrusted text in the browser -------------------------------------------------------------------------

EVIL_TITLE = "pwned"
EVIL = f'<img src=x onerror="document.title=\'{EVIL_TITLE}\'"><script>document.title="{EVIL_TITLE}"</script>'
CHECK = '''
EVIL = {evil!r}

def test_fails(record_property):
    for key, value in (("check", "firmware_vfs_committed"), ("node", "dgx031" + EVIL), ("hca", "ibp24s0"),
                       ("link", "firmware"), ("evidence", "mstconfig\\n</pre>" + EVIL), ("message", "bad " + EVIL)):
        record_property(key, value)
    assert False, "bad " + EVIL
'''


def test_untrusted_text_stays_inert_in_the_browser(tmp_path: Path):
    chromium_binary()
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_lab.py").write_text(textwrap.dedent(CHECK.format(evil=EVIL)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:kmock",
                           "--html", str(tmp_path / "report.html"), "--self-contained-html", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    page = load(tmp_path, tmp_path / "report.html")
    title = re.search(r'<title id="head-title">(.*?)</title>', page.dom).group(1)
    assert title == "ibconform acceptance report — lab"  # the payload did not run
    assert not Dom(page.dom).having("img", src="x")
    assert page.dom.count("<script") == 1  # pytest-html's own, nothing of ours
    assert "&lt;img src=x onerror=" in page.dom  # shown as text
    assert page.console == [] and page.requests == []


# -- a 500-node fleet --------------------------------------------------------------------------------------

def test_500_node_matrix_renders_quickly(tmp_path: Path):
    chromium_binary()
    doc = fleet(500, set(range(0, 500, 7)))
    path = tmp_path / "fleet.html"
    path.write_text(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fleet</title></head><body>"
                    f"{report.render_acceptance(doc, report.VersionsSeen(), '00')}</body></html>")
    assert path.stat().st_size < 1_000_000
    page = load(tmp_path, path)
    assert len(re.findall(r'<tr class="v-(?:pass|fail)"><th scope="row">dgx\d{3}</th>', page.dom)) == 500
    assert page.seconds < 30, f"chromium took {page.seconds:.1f} s for the 500-node page"
    assert page.console == [] and page.requests == []
