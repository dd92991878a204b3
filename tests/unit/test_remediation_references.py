"""Every remediation's `reference` leads somewhere a reader can follow (the rule at the top of
ibconform/data/remediation.yaml), and nothing cites documents that are not in this repository.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = files("ibconform").joinpath("data/remediation.yaml").read_text()
ENTRIES = yaml.safe_load(CATALOGUE)

#: Tools whose command or manual page a reference may name (listed in the catalogue's header too).
TOOLS = ("mstconfig", "mlxconfig", "mlxfwmanager", "mlxfwreset", "ibstat", "lspci", "dmesg", "kubectl",
         "ssh_config")
#: Documents that live outside this repository: no file of it may cite them.
OUTSIDE_DOCUMENTS = ("FORMATS.md", "DESIGN.md")
#: Where the outside documents must not be cited (this file names them to test the rule).
SCANNED = ("ibconform", "checks", "fixtures", "docs", "tests", "scripts", "deploy", "benchmarks", "inventories",
           "README.md", "conftest.py", "pyproject.toml")

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: links reduced to their text, lower case, punctuation
    dropped (letters, digits, '_', '-' and spaces stay), each space a '-'.

    >>> github_anchor("Nodes (SSH and the node's tools)")
    'nodes-ssh-and-the-nodes-tools'
    """
    text = _LINK.sub(r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a markdown text (outside code fences); repeats get -1, -2, ... as on GitHub."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            anchor = github_anchor(heading[1])
            n = counts.get(anchor, 0)
            counts[anchor] = n + 1
            found.add(anchor if n == 0 else f"{anchor}-{n}")
    return found


def upstream_projects() -> dict[str, str]:
    """Project name -> repository URL, from the table in docs/formats.md#sources."""
    text = (REPO / "docs" / "formats.md").read_text()
    section = text.split("\n## Sources\n", 1)[1]
    rows = re.findall(r"^\| `([\w.-]+)` \| (https://github\.com/[\w.-]+/[\w.-]+) \|$", section, flags=re.M)
    return dict(rows)


UPSTREAMS = upstream_projects()


def problem(part: str) -> str | None:
    """Why one part of a reference does not resolve, or None when it does."""
    if part.startswith("http://"):
        return "plain http: link the https page"
    if part.startswith("https://"):
        return None if re.fullmatch(r"https://[\w.-]+\.[a-z]{2,}(/\S*)?", part) else "not a well-formed https URL"
    if " " not in part and ("/" in part or "." in part or "#" in part):
        path, _, anchor = part.partition("#")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
            return f"{path!r} is not a path from the repository root"
        target = REPO / path
        if not target.is_file():
            return f"{path} is not a file of this repository"
        if "#" in part:
            if target.suffix != ".md":
                return f"an anchor needs a markdown file, not {path}"
            if anchor not in anchors(target.read_text()):
                return f"{path} has no heading with the anchor #{anchor}"
        return None
    first, _, rest = part.partition(" ")
    if first in UPSTREAMS:
        if re.fullmatch(r"(issue|PR) [1-9][0-9]*", rest):
            return None
        if re.fullmatch(r"[\w.-]+(/[\w.-]+)*/?", rest) and ("/" in rest or "." in rest):
            return None
        return f"after the project {first}: expected 'issue N', 'PR N' or a path in its repository, got {rest!r}"
    if re.sub(r"\([1-9]\)$", "", first) in TOOLS:
        return None
    return ("not a repository path, an https URL, '<project> issue|PR N|<path>' with a project of "
            "docs/formats.md#sources, or a command of a known tool")


def problems(reference: object) -> list[str]:
    if not isinstance(reference, str) or not reference.strip():
        return ["empty or not a string"]
    parts = reference.split("; ")
    found = [f"{part!r}: {why}" for part in parts if (why := problem(part)) is not None]
    if any(not part or part != part.strip() or ";" in part for part in parts):
        found.append(f"parts must be separated by '; ' exactly: {reference!r}")
    return found


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_reference_resolves(entry: dict):
    assert problems(entry.get("reference")) == []


@pytest.mark.parametrize("reference, why", [
    ("FORMATS.md section 2", "not a repository path"),
    ("FORMATS.md", "not a file of this repository"),
    ("DESIGN.md chain: kernel VFs", "not a repository path"),
    ("docs/formats.md#no-such-section", "no heading with the anchor"),
    ("docs/formats.md#Pending-Change", "no heading with the anchor"),
    ("README.md#what-it-checks-and-why-in-this-order; docs/nothing.md", "not a file of this repository"),
    ("pyproject.toml#anchor", "needs a markdown file"),
    ("/etc/hosts", "not a path from the repository root"),
    ("../outside/DESIGN.md", "not a path from the repository root"),
    ("sriov-network-operator issue three-one-seven", "expected 'issue N'"),
    ("some-private-project issue 12", "not a repository path"),
    ("mstflint: Current != Next Boot means NVRAM written but not yet active", "not a repository path"),
    ("http://example.com/page", "plain http"),
    ("docs/formats.md#pending-change;mstflint issue 1191", "separated by '; '"),
    ("", "empty"),
])
def test_rule_refuses(reference: str, why: str):
    found = problems(reference)
    assert found and why in " ".join(found), found


@pytest.mark.parametrize("reference", [
    "docs/formats.md#pending-change",
    "docs/formats.md",
    "docs/reliability.md#nodes-ssh-and-the-nodes-tools",
    "README.md#what-it-checks-and-why-in-this-order",
    "https://github.com/Mellanox/mstflint/issues/1191",
    "sriov-network-operator issue 317",
    "openshift-docs PR 85440",
    "kubernetes pkg/scheduler/framework/types.go",
    "sriov-network-device-plugin README.md",
    "mstconfig -d <pci> -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1",
    "ssh_config(5) HostName",
])
def test_rule_accepts(reference: str):
    assert problems(reference) == []


def test_catalogue_states_the_rule():
    header = CATALOGUE.split("\n- id:", 1)[0]
    assert "docs/formats.md#sources" in header and "test_remediation_references.py" in header
    assert [tool for tool in TOOLS if tool not in header] == []


def test_sources_table_names_public_repositories():
    assert {"mstflint", "linux", "kubernetes", "sriov-network-operator", "network-operator"} <= set(UPSTREAMS)
    assert all(url.startswith("https://github.com/") for url in UPSTREAMS.values())


def test_github_anchors():
    text = "# Title\n## `mstconfig` query\n```\n# not a heading\n```\n## Port state\n## Port state\n"
    assert anchors(text) == {"title", "mstconfig-query", "port-state", "port-state-1"}
    assert github_anchor("SR-IOV VF counts") == "sr-iov-vf-counts"
    assert github_anchor("See [formats](formats.md): rows") == "see-formats-rows"


def _scanned_files() -> list[Path]:
    here = Path(__file__).resolve()
    found = []
    for name in SCANNED:
        root = REPO / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        found += [p for p in candidates if p.is_file() and p != here and "__pycache__" not in p.parts]
    return found


def test_no_file_cites_documents_outside_the_repository():
    files_ = _scanned_files()
    assert any(p.name == "formats.md" for p in files_)
    cited = [f"{p.relative_to(REPO)}: {doc}" for p in files_ for doc in OUTSIDE_DOCUMENTS
             if doc.encode() in p.read_bytes()]
    assert cited == [], "cite docs/ of this repository instead (docs/formats.md, docs/architecture.md)"


@pytest.mark.parametrize("markdown", ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))])
def test_markdown_links_resolve(markdown: str):
    """Relative links of README.md and docs/*.md lead to a file of the repository, and to a heading of it
    when they name an anchor (what the remediation references point into)."""
    page = REPO / markdown if markdown == "README.md" else REPO / "docs" / markdown
    text = page.read_text()
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or REPO not in target.parents:
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
            broken.append(f"{link}: no heading with that anchor")
    assert broken == []
