"""Bundles of an older format keep evaluating: a bundle ibconform 0.1.0 wrote (tests/data/bundle-0.1.0) gets
item by item the verdict 0.1.0 gave it, except where a check needs a fact that bundle lacks: those end in
**error** naming the fact, never in a failure that blames the hardware. A bundle cut short (a node's
links.json gone) errs the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bundle_schema import validate_bundle

DATA = Path(__file__).resolve().parents[1] / "data"
OLD = DATA / "bundle-0.1.0"
MISSING = "is not in the bundle: ibconform 0.1.0 (format ibconform-evidence/v1) did not collect it"


def _evaluate(bundle: Path, out: Path) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-m", "ibconform.cli", "evaluate", str(bundle), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode in (0, 1), f"evaluation exit {proc.returncode}: {proc.stderr[-2000:]}"
    return {r["id"]: r for r in json.loads((out / "results.json").read_text())["results"]}


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return _evaluate(OLD, tmp_path_factory.mktemp("old") / "out")


def renamed(item: str) -> str:
    """The item's id now: resource_allocatable judges each resource, no longer each HCA (res<iface> here)."""
    check, _, param = item.partition("[")
    if check == "test_resource_allocatable":
        node, _, iface = param.rstrip("]").partition("-")
        return f"{check}[{node}-res{iface}]"
    return item


def test_every_item_0_1_0_judged_is_judged_alike_or_errs_naming_the_missing_fact(judged):
    before = json.loads((DATA / "bundle-0.1.0.verdicts.json").read_text())
    for item, old in before.items():
        new = judged.get(renamed(item))
        assert new is not None, f"{item}: judged by 0.1.0, absent now"
        if new["outcome"] == "error":
            assert "not in the bundle" in new["message"], f"{item}: {new['message']}"
        else:   # the same verdict (messages may have learned to say more)
            assert new["outcome"] == old["outcome"], f"{item}: {old['outcome']} then, {new['outcome']} now: {new}"


def test_checks_added_since_0_1_0_are_judged_or_err_naming_the_missing_fact(judged):
    before = {renamed(item) for item in json.loads((DATA / "bundle-0.1.0.verdicts.json").read_text())}
    for item, new in judged.items():
        if item in before:
            continue
        if new["outcome"] == "skipped" and new["message"].startswith("probe.level schedule: "):
            continue     # 0.1.0 probed to level schedule only: the in-pod checks have nothing to judge
        assert new["outcome"] in ("passed", "error"), f"{item}: {new['outcome']}: {new['message']}"
        if new["outcome"] == "error":
            assert MISSING in new["message"] or "not in the bundle" in new["message"], f"{item}: {new['message']}"


def test_a_bundle_cut_short_errs_instead_of_blaming_the_interface(tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(OLD, cut)
    (cut / "nodes" / "dgx030" / "links.json").unlink()
    judged = _evaluate(cut, tmp_path / "out")
    item = judged["test_iface_is_expected_pci[dgx030-ibp24s0]"]
    assert item["outcome"] == "error"
    assert item["message"].startswith("nodes/dgx030/links.json (where each interface's PCI function was seen) is "
                                      "absent in the bundle: it was cut short or damaged")
    assert judged["test_iface_is_expected_pci[dgx031-ibp24s0]"]["outcome"] == "passed"


def test_the_0_1_0_bundle_matches_the_documented_schema_and_broken_files_do_not(tmp_path):
    assert validate_bundle(OLD) == 1 + 1 + 2 * 2
    new = tmp_path / "new"
    shutil.copytree(OLD, new)
    manifest = json.loads((new / "manifest.json").read_text())
    (new / "manifest.json").write_text(json.dumps({**manifest, "format": "ibconform-evidence/v9"}))
    with pytest.raises(AssertionError, match=r"manifest.json does not match \$defs/manifest: 'ibconform-evidence/v9'"):
        validate_bundle(new)
    (new / "manifest.json").write_text(json.dumps(manifest))
    (new / "nodes" / "dgx030" / "status.json").write_text(json.dumps({"reachable": "yes"}))
    with pytest.raises(AssertionError, match=r"nodes/dgx030/status.json does not match \$defs/status"):
        validate_bundle(new)
