"""The probe pod's entry script (ibconform/collect/probescript.py): it runs under a plain POSIX sh with the tools
on PATH, and its log splits back into its records; a log cut short or garbage is refused in one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings

from ibconform.collect import probescript
from ibconform.errors import ParseError
from tests.fuzz import garbage, parsed_or_refused

BOUNDARY = "__ibconform_0123456789abcdef01234567__"


def _tools(tmp: Path) -> dict[str, str]:
    """PATH with stub ibv_devinfo and all_reduce_perf (printing their arguments) and the real sh, coreutils."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("ibv_devinfo", "all_reduce_perf"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $* NCCL_IB_HCA=$NCCL_IB_HCA P2P=$NCCL_P2P_DISABLE"\n')
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("timeout") is None, reason="needs sh and coreutils")
@pytest.mark.parametrize("level", ["rdma", "nccl"])
def test_the_script_runs_under_sh_and_its_log_splits_into_its_records(tmp_path, level):
    script = probescript.build(BOUNDARY, level, 8, 90)
    done = subprocess.run(["sh", "-c", script], env=_tools(tmp_path), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    out = probescript.split(done.stdout, BOUNDARY)
    kinds = [kind for kind, _ in out.records]
    assert kinds[:3] == ["file", "file", "ls"] and kinds[-1] == "done"
    assert "Max locked memory" in out.text("file", "/proc/self/limits")
    assert "CapEff:" in out.text("file", "/proc/self/status")
    assert out.text("ibv_devinfo").startswith("ibv_devinfo ")
    if level == "nccl":
        assert out.text("nccl").startswith("all_reduce_perf -b 512M -e 4G -f 2 -n 20 -w 5 -g 8 ")
        assert "P2P=1" in out.text("nccl")
    else:
        assert out.text("nccl") is None


def test_a_log_cut_short_is_refused_in_one_line():
    log = f"{BOUNDARY} file /proc/self/limits\nMax locked memory 65536 65536 bytes\n\n{BOUNDARY} end 0\n"
    with pytest.raises(ParseError, match="its last record \\(done\\) is missing"):
        probescript.split(log, BOUNDARY)
    with pytest.raises(ParseError, match="cut short inside its ibv_devinfo - record"):
        probescript.split(log + f"{BOUNDARY} ibv_devinfo -\nhca_id: mlx5_4\n", BOUNDARY)
    assert probescript.split(log + f"{BOUNDARY} done -\n\n{BOUNDARY} end 0\n", BOUNDARY).code("file",
                                                                                              "/proc/self/limits") == 0


@settings(max_examples=200, deadline=None)
@given(garbage([f"{BOUNDARY} ", "end ", "done -", "file /x", "\n", "0", "abc"]))
def test_garbage_is_split_or_refused_in_one_line(text):
    parsed_or_refused(lambda t: probescript.split(t, BOUNDARY), text)
