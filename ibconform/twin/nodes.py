"""The twin's nodes as processes: one ``sshd -D`` per node inside its own mount and UTS namespace.

Each node's files live in ``<workdir>/nodes/<node>/`` (host key, sshd_config, sysfs tree, mstconfig
script and its answers). The node process is::

    unshare --mount --propagation private --uts --pid --fork --kill-child --mount-proc -- sh -c '
        hostname dgx030
        mount --bind <node>/sys/class /sys/class                   # class/net, class/infiniband
        mount --bind <node>/sys/bus/pci/devices /sys/bus/pci/devices
        mount --bind <node>/bin /usr/local/bin                     # mstconfig
        mount --bind <workdir>/empty /root/.bashrc                 # no pyenv start-up per command
        exec /usr/sbin/sshd -D -e -f <node>/sshd_config'

(``/sys/class`` as a whole, because ``/sys/class/infiniband`` does not exist on a machine without
RDMA drivers, so there is nothing to mount over.) Children die with the process that started them
(``PR_SET_PDEATHSIG`` on ``unshare``, ``--kill-child`` on the node's first process); teardown kills the
first process of each node's PID namespace, which takes every process and mount of the node with it,
then sweeps for anything left inside the nodes (found by what they see as /usr/local/bin).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from ibconform.twin import render
from ibconform.twin.errors import TwinError
from ibconform.twin.hardware import Hca, Node

SSHD = "/usr/sbin/sshd"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def mstconfig_script(mst_dir: Path) -> str:
    template = (resources.files("ibconform.twin") / "bin" / "mstconfig").read_text()
    return template.replace("MST=@MST@", f"MST={shlex.quote(str(mst_dir))}", 1)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_mst(mst: Path, node: Node) -> None:
    """The answers of the node's mstconfig, one folder per device (aliases: short BDF, mlx5_N)."""
    _write(mst / "columns", render.mstconfig_table_header(verbose=False))
    _write(mst / "columns-e", render.mstconfig_table_header(verbose=True))
    _write(mst / "legend", render.LEGEND + "\n")
    _write(mst / "full", " ".join(render.FULL_QUERY) + "\n")
    for hca in node.devices.values():
        write_mst_device(mst / "devices" / hca.pci, hca)
        aliases = [hca.rdma]
        if hca.pci.startswith("0000:"):
            aliases.append(hca.pci.removeprefix("0000:"))
        for alias in aliases:
            link = mst / "devices" / alias
            if not link.exists():
                link.symlink_to(hca.pci)


def write_mst_device(folder: Path, hca: Hca) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "delay").write_text("infinity\n" if hca.mst_hangs else f"{hca.mst_delay:g}\n")
    if hca.mst_error is not None:
        (folder / "error").write_text(hca.mst_error + "\n")
    (folder / "head").write_text(render.mstconfig_head(hca))
    for sub, verbose in (("e", True), ("n", False)):
        (folder / sub).mkdir(exist_ok=True)
        for name, values in render.mstconfig_values(hca).items():
            (folder / sub / name).write_text(render.mstconfig_row(name, values, verbose))


def write_sysfs(root: Path, node: Node) -> None:
    files, links = render.sysfs_tree(node)
    for rel, text in files.items():
        _write(root / rel, text)
    for rel, target in links.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    for rel in ("class/net", "class/infiniband", "bus/pci/devices"):
        (root / rel).mkdir(parents=True, exist_ok=True)


def write_node(folder: Path, node: Node) -> None:
    """Everything node ``node`` serves, under ``folder`` (replaced if it exists)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_sysfs(folder / "sys", node)
    write_mst(folder / "mst", node)
    script = folder / "bin" / "mstconfig"
    _write(script, mstconfig_script(folder / "mst"))
    script.chmod(0o755)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes, however it goes."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def node_command(name: str, folder: Path, empty: Path) -> list[str]:
    q = shlex.quote
    setup = ["set -e", f"hostname {q(name)}",
             f"mount --bind {q(str(folder / 'sys' / 'class'))} /sys/class",
             f"mount --bind {q(str(folder / 'sys' / 'bus' / 'pci' / 'devices'))} /sys/bus/pci/devices",
             f"mount --bind {q(str(folder / 'bin'))} /usr/local/bin"]
    bashrc = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"
    if bashrc.is_file():
        setup.append(f"mount --bind {q(str(empty))} {q(str(bashrc))}")
    setup.append(f"exec {SSHD} -D -e -f {q(str(folder / 'sshd_config'))}")
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--", "/bin/sh", "-c", "\n".join(setup)]


def start(name: str, folder: Path, empty: Path) -> subprocess.Popen:
    """Start node ``name``'s sshd (not waiting for it); its log goes to ``folder/sshd.log``."""
    with open(folder / "sshd.log", "wb") as log:
        return subprocess.Popen(
            node_command(name, folder, empty), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            close_fds=True, start_new_session=True, preexec_fn=_die_with_parent,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def hold_silent(address: str) -> socket.socket:
    """A listening socket nobody accepts from: TCP connects, no SSH banner ever comes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, 22))
    s.listen(128)
    return s


def _log_tail(folder: Path) -> str:
    try:
        lines = (folder / "sshd.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""


def wait_accepting(procs: dict[str, subprocess.Popen], addresses: dict[str, str], folders: dict[str, Path],
                   timeout: float) -> None:
    """Return once every node in ``procs`` accepts TCP on :22; raise TwinError naming the first that fails."""
    pending = dict.fromkeys(procs)
    deadline = time.monotonic() + timeout
    while pending:
        for name in list(pending):
            rc = procs[name].poll()
            if rc is not None:
                raise TwinError(f"node {name}: sshd exited with status {rc} before accepting on "
                                f"{addresses[name]}:22{_log_tail(folders[name])}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                try:
                    s.connect((addresses[name], 22))
                except OSError:
                    continue
            del pending[name]
        if pending:
            if time.monotonic() > deadline:
                name = next(iter(pending))
                raise TwinError(f"node {name}: sshd not accepting on {addresses[name]}:22 after {timeout:g} s "
                                f"({len(pending)} nodes pending){_log_tail(folders[name])}")
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------- teardown

def identities(folders: list[Path]) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of the nodes' ``bin`` folders: inside a node, that folder is /usr/local/bin."""
    out = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            st = os.stat(folder / "bin")
            out.add((st.st_dev, st.st_ino))
    return out


def processes_in(ids: set[tuple[int, int]]) -> list[int]:
    """Live processes whose /usr/local/bin is one of the nodes' ``bin`` folders: inside a node's namespace.

    Namespace ids alone are not enough once a namespace dies (the kernel reuses the numbers); the
    folder a node's mount namespace shows as /usr/local/bin is this twin's and no one else's.
    """
    if not ids:
        return []
    me = os.getpid()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/root/usr/local/bin")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids:
            pids.append(int(entry.name))
    return pids


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def kill_all(procs: list[subprocess.Popen], ids: set[tuple[int, int]], timeout: float = 10.0) -> None:
    """Kill every node and everything inside it; reap; wait till gone.

    A node is ``unshare`` (our child) waiting for the first process of the node's PID namespace. That
    one gets SIGKILL: the kernel then kills and reaps everything else in the namespace, and
    ``unshare`` reaps it and exits, so no zombie is left even where PID 1 reaps nothing.
    """
    for proc in procs:
        if proc.poll() is None:
            for child in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, min(2.0, deadline - time.monotonic())))
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    while True:
        left = processes_in(ids)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    left = processes_in(ids)
    if left:
        raise TwinError(f"processes of the twin survive SIGKILL: {left}")
