"""The detached process that keeps a twin up: ``python -m ibconform.twin.supervisor SCENARIO WORKDIR``.

It brings the twin up, reports ``ready`` (or the error) on ``--ready-fd``, and holds it until SIGTERM
or SIGINT, then takes it down. Its node processes die with it even on SIGKILL (PR_SET_PDEATHSIG);
``commands.down`` sweeps whatever connection processes outlive it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ibconform.errors import IbconformError
from ibconform.twin import Twin
from ibconform.twin.machines.nodes import process_start_time

PID_FILE = "supervisor.pid"
LOG_FILE = "supervisor.log"


def _report(fd: int | None, line: str) -> None:
    if fd is None:
        print(line, flush=True)
        return
    try:
        os.write(fd, (line + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ibconform.twin.supervisor")
    parser.add_argument("scenario")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)

    stop = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    workdir: Path = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    pid_file = workdir / PID_FILE
    pid_file.write_text(f"{os.getpid()} {process_start_time(os.getpid())}\n")
    twin = Twin(args.scenario, workdir)
    try:
        try:
            twin.up()
        except IbconformError as exc:
            _report(args.ready_fd, f"error {exc}")
            return 3
        except Exception as exc:
            traceback.print_exc()
            _report(args.ready_fd, f"error {type(exc).__name__}: {exc}")
            return 3
        print(f"twin {twin.scenario.cluster} up in {twin.startup_seconds:.2f} s on block {twin.block}", flush=True)
        _report(args.ready_fd, f"ready {twin.block}")
        while not stop:
            time.sleep(0.2)
        return 0
    finally:
        twin.down()
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
