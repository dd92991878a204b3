"""benchmarks/fleet.py: a measured command that hangs is stopped at --child-timeout, with its whole process
group, and the benchmark ends naming it and the end of its output; one that finishes in time is timed."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks import fleet

HANGS = ["sh", "-c", "echo started; sleep 60 & wait"]     # the sleep is a grandchild, in the same group


def test_a_hung_command_is_stopped_with_its_group_and_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet, "CHILD_TIMEOUT_S", 0.5)
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        fleet.run_child(HANGS, stdout=tmp_path / "hang.log", stop_grace=1.0)
    assert time.monotonic() - t0 < 10
    message = str(stopped.value)
    assert message.startswith("fleet: sh -c echo started; sleep 60 & wait ... ran over --child-timeout 0.5 s")
    assert message.endswith("(hang.log):\nstarted")
    time.sleep(1.5)                                       # the group's SIGKILL comes after stop_grace
    sleeping = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline(pid) == "sleep\x0060\x00"]
    assert sleeping == []


def test_a_command_in_time_is_timed(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet, "CHILD_TIMEOUT_S", 5.0)
    done = fleet.run_child(["sh", "-c", "sleep 0.2; exit 3"], stdout=tmp_path / "ok.log")
    assert done.code == 3 and 0.2 <= done.seconds < 5


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""
