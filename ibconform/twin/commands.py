"""``ibconform twin up`` / ``twin down``: a twin kept up by a detached supervisor process.

``up`` returns once the supervisor reports every node accepting (``<workdir>/inventory.yaml`` is then
ready to use); ``down`` stops it and waits until every process the twin made is gone, also when the
supervisor was killed with SIGKILL. Both are idempotent about leftovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ibconform
from ibconform.twin import STATE, sweep
from ibconform.twin.errors import TwinError
from ibconform.twin.machines.nodes import process_start_time
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.supervisor import LOG_FILE, PID_FILE

UP_TIMEOUT = 120.0
DOWN_TIMEOUT = 30.0


def default_workdir(cluster: str) -> Path:
    return Path(tempfile.gettempdir()) / "ibconform-twin" / cluster


def _last_file() -> Path:
    return Path(tempfile.gettempdir()) / "ibconform-twin" / "last"


def last_workdir() -> Path | None:
    """The workdir of the twin ``up`` started last (what ``down`` stops when given none)."""
    try:
        return Path(_last_file().read_text().strip())
    except OSError:
        return None


def supervisor_pid(workdir: Path) -> int | None:
    """The pid of the live supervisor of ``workdir`` (checked against its start time), else None."""
    try:
        pid_text, start = (workdir / PID_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if process_start_time(pid) == start else None


def status(workdir: Path) -> dict | None:
    """The running twin's state (addresses, block, inventory path), None when none is up there."""
    if supervisor_pid(workdir) is None:
        return None
    try:
        return json.loads((workdir / STATE).read_text())
    except (OSError, ValueError):
        return None


def _log_tail(workdir: Path, lines: int = 5) -> str:
    try:
        text = (workdir / LOG_FILE).read_text(errors="replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-lines:])


def up(scenario: str | Path, workdir: Path | None = None, timeout: float = UP_TIMEOUT) -> Path:
    """Start a twin of ``scenario`` in a detached supervisor; return its workdir once it is ready."""
    loaded = load_scenario(scenario)     # a bad scenario fails here, in one line, not in the supervisor
    workdir = Path(workdir or default_workdir(loaded.cluster)).absolute()
    if supervisor_pid(workdir) is not None:
        raise TwinError(f"a twin is already up in {workdir}: run 'ibconform twin down' first")
    _sweep(workdir)                      # leftovers of a supervisor killed with SIGKILL
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_arg = str(Path(scenario).absolute()) if Path(scenario).is_file() else str(scenario)
    package_parent = str(Path(ibconform.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    read_fd, write_fd = os.pipe()
    try:
        with open(workdir / LOG_FILE, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ibconform.twin.supervisor", scenario_arg, str(workdir),
                 "--ready-fd", str(write_fd)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), cwd="/",
                env=env, start_new_session=True)
        os.close(write_fd)
        write_fd = -1
        message = _read_line(read_fd, timeout)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if message.startswith("ready"):
        _last_file().parent.mkdir(parents=True, exist_ok=True)
        _last_file().write_text(f"{workdir}\n")
        return workdir
    if not message:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        down(workdir)
        raise TwinError(f"twin supervisor in {workdir} did not come up within {timeout:g} s "
                        f"(exit {proc.returncode}): {_log_tail(workdir)}")
    proc.wait()
    raise TwinError(message.removeprefix("error "))


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)      # reap it if it is our own child
        if process_start_time(pid) is None:
            return True
        time.sleep(0.02)
    return process_start_time(pid) is None


def down(workdir: Path | None = None, timeout: float = DOWN_TIMEOUT) -> None:
    """Stop the twin in ``workdir`` (default: the last one ``up`` started) and wait until everything it
    made is gone. Idempotent."""
    if workdir is None:
        workdir = last_workdir()
        if workdir is None:
            return
    workdir = Path(workdir).absolute()
    pid = supervisor_pid(workdir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _gone(pid, 5.0):
                raise TwinError(f"twin supervisor {pid} of {workdir} survives SIGKILL")
    _sweep(workdir)


def _sweep(workdir: Path) -> None:
    """Kill what a dead supervisor left inside its nodes (their connection processes), drop its files."""
    sweep(workdir)
    (workdir / PID_FILE).unlink(missing_ok=True)
