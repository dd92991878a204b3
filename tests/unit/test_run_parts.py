"""The parts of a large run: their evaluations run one at a time, in order, while the next part is collected."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibconform import suite
from ibconform.errors import IbconformError

# an evaluation stand-in: notes when it ran, writes results.json unless told to fail, exits with its code
FAKE = """
import os, pathlib, sys, time
out, code, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start = time.time()
time.sleep(seconds)
if code in (0, 1, 2):
    (out / "results.json").write_text("{}")
print(f"{start} {time.time()} {os.getpriority(os.PRIO_PROCESS, 0)}", file=open(out / "ran", "w"))
print("evaluation: the last line of its log")
sys.exit(code)
"""


@pytest.fixture
def fake(monkeypatch):
    """``suite._start_evaluation`` replaced: each part's evaluation is FAKE with the part's code and duration."""
    plan: dict[Path, tuple[int, float]] = {}

    def start(bundle_dir: Path, out_dir: Path, workers: int) -> subprocess.Popen:
        code, seconds = plan[out_dir]
        with open(out_dir / "evaluation.log", "wb") as log:
            return subprocess.Popen([sys.executable, "-c", FAKE, str(out_dir), str(code), str(seconds)],
                                    stdout=log, stderr=subprocess.STDOUT)

    monkeypatch.setattr(suite, "_start_evaluation", start)
    return plan


def _parts(tmp_path: Path, plan: dict, *codes: int) -> list[Path]:
    parts = []
    for i, code in enumerate(codes):
        part = tmp_path / f"part-{i}"
        part.mkdir()
        plan[part] = (code, 0.3)
        parts.append(part)
    return parts


def test_one_evaluation_at_a_time_in_the_order_the_parts_began(tmp_path, fake):
    parts = _parts(tmp_path, fake, 0, 1, 0)
    evaluations = suite._Evaluations(workers=0)
    began = time.time()
    for part in parts:
        evaluations.add(part / "bundle", part)       # as collect() calls begun: at once, one part after the other
    assert evaluations.finish() == [0, 1, 0]
    spans = [tuple(map(float, (part / "ran").read_text().split()[:2])) for part in parts]
    assert spans[0][0] >= began and all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


def test_the_evaluation_of_a_part_collected_yields_the_cpu(tmp_path, fake):
    """Collected while its evaluation runs, or before it starts: either way it then runs at lower priority."""
    parts = _parts(tmp_path, fake, 0, 0, 0)
    evaluations = suite._Evaluations(workers=0)
    for part in parts:
        evaluations.add(part / "bundle", part)
    time.sleep(0.1)
    evaluations.done(parts[0])          # while it runs
    evaluations.done(parts[1])          # before it starts
    assert evaluations.finish() == [0, 0, 0]
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    nice = [int((part / "ran").read_text().split()[2]) for part in parts]
    assert nice == [min(19, mine + suite.YIELD_NICE)] * 2 + [mine]


def test_an_evaluation_that_failed_is_one_line_and_no_later_one_starts(tmp_path, fake):
    parts = _parts(tmp_path, fake, 0, 4, 0)
    evaluations = suite._Evaluations(workers=0)
    for part in parts:
        evaluations.add(part / "bundle", part)
    assert evaluations.finish() == [0]
    with pytest.raises(IbconformError, match=rf"^evaluation failed \(exit 4\): evaluation: the last line of its log "
                                             rf"\(see {parts[1]}/evaluation.log\)$"):
        evaluations.check()
    assert (parts[0] / "ran").exists() and not (parts[2] / "ran").exists()
