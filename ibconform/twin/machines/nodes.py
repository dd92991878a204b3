"""The twin's nodes as processes: one ``sshd -D`` per node inside its own mount and UTS namespace.

Each node's own files live in ``<workdir>/nodes/<node>/`` (host key, sshd_config, log, and in ``host/`` its
kernel's files and machine-id); what its hardware serves (sysfs tree, mstconfig script and its answers) in
``<hardware root>/<key>/`` (on tmpfs: /dev/shm/ibconform-twin/block-<b>/, linked as ``<workdir>/hardware``),
shared by the nodes whose hardware state is the same (``sys/``, ``bin/``, ``mst/``, ``ibstat/``, ``ip/``); what
differs from node to node though the hardware is alike, its VF GUIDs, is a read-only overlay layer of its own over
the shared PCI devices (``host/pci/``). The node process is::

    unshare --mount --propagation private --uts --pid --fork --kill-child --mount-proc -- sh -c '
        hostname dgx030
        mount --all --fstab <node>/fstab           # one process for every mount, in this order:
        exec /usr/sbin/sshd -D -e -f <node>/sshd_config'

    <hardware>/sys/class            /sys/class            none bind   # class/net, class/infiniband
    overlay                         /sys/bus/pci/devices  overlay ro,lowerdir=<node>/host/pci:<hardware>/sys/...
                                                                      # (bus/pci/devices) the node's VF GUIDs on top
    <hardware>/bin                  /usr/local/bin        none bind   # mstconfig, ibstat, ip, sudo
    <node>/host/proc/cmdline        /proc/cmdline         none bind   # over the node's own /proc
    <node>/host/sys/kernel/security /sys/kernel/security  none bind   # lockdown
    <node>/host/sys/module          /sys/module           none bind   # ib_core/parameters/netns_mode only
    <node>/host/etc/machine-id      /etc/machine-id       none bind   # (an overlay of /etc if there is none)
    <workdir>/empty                 /root/.bashrc         none bind   # no pyenv start-up per command

(``/sys/class`` as a whole, because ``/sys/class/infiniband`` does not exist on a machine without
RDMA drivers, so there is nothing to mount over.) Children die with the process that started them
(``PR_SET_PDEATHSIG`` on ``unshare``, ``--kill-child`` on the node's first process); teardown kills the
first process of each node's PID namespace, which takes every process and mount of the node with it,
then sweeps for anything left inside the nodes (found by what they see as /usr/local/bin).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
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

from ibconform.twin.errors import TwinError
from ibconform.twin.machines import cpu, render
from ibconform.twin.machines.hardware import Node

SSHD = "/usr/sbin/sshd"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def tool_script(tool: str, data: Path) -> str:
    """A node's copy of ``bin/<tool>`` (package data), pointed at the folder of its pre-rendered answers."""
    template = (resources.files("ibconform.twin.machines") / "bin" / tool).read_text()
    return template.replace("DATA=@DATA@", f"DATA={shlex.quote(str(data))}", 1)


class _Writer:
    """Writes many small files fast: each folder is made once."""

    def __init__(self, root: Path):
        self.root = str(root)
        self.made: set[str] = set()

    def _folder(self, path: str) -> None:
        folder = os.path.dirname(path)
        if folder not in self.made:
            os.makedirs(folder, exist_ok=True)
            self.made.add(folder)

    def file(self, rel: str, text: str) -> None:
        path = os.path.join(self.root, rel)
        self._folder(path)
        with open(path, "w") as f:
            f.write(text)

    def link(self, rel: str, target: str) -> None:
        path = os.path.join(self.root, rel)
        self._folder(path)
        os.symlink(target, path)

    def folder(self, rel: str) -> None:
        self._folder(os.path.join(self.root, rel, ""))


def write_mst(out: _Writer, node: Node) -> None:
    """The answers of the node's mstconfig, one folder per device (aliases: short BDF, mlx5_N)."""
    out.file("mst/columns", render.mstconfig_table_header(verbose=False))
    out.file("mst/columns-e", render.mstconfig_table_header(verbose=True))
    out.file("mst/legend", render.LEGEND + "\n")
    aliases: dict[str, str] = {}
    for hca in node.devices.values():
        d = f"mst/devices/{hca.pci}"
        link_types = node.link_types(hca)
        out.file(f"{d}/delay", "infinity\n" if hca.mst_hangs else f"{hca.mst_delay:g}\n")
        if hca.mst_error is not None:
            out.file(f"{d}/error", hca.mst_error + "\n")
        if hca.mst_output is not None:
            out.file(f"{d}/output", hca.mst_output)
        elif hca.mst_cut is not None:
            text, _ = render.mstconfig_query(hca, link_types, device_arg=hca.pci,
                                             params=render.query_params(hca.port))
            out.file(f"{d}/output", text[:hca.mst_cut])
        out.file(f"{d}/head", render.mstconfig_head(hca))
        rows = render.mstconfig_values(hca, link_types)
        out.file(f"{d}/full", " ".join(rows) + "\n")
        for name, values in rows.items():
            out.file(f"{d}/e/{name}", render.mstconfig_row(name, values, verbose=True))
            out.file(f"{d}/n/{name}", render.mstconfig_row(name, values, verbose=False))
        aliases.setdefault(hca.rdma, hca.pci)
        if hca.pci.startswith("0000:"):
            aliases.setdefault(hca.pci.removeprefix("0000:"), hca.pci)
    pcis = {h.pci for h in node.devices.values()}
    for alias, pci in aliases.items():
        if alias not in pcis:
            out.link(f"mst/devices/{alias}", pci)
    if node.host.dies is not None:
        out.file("mst/dies", f"{node.host.dies} {node.host.dies_after:g}\n")


def write_ibstat(out: _Writer, node: Node) -> None:
    by_rdma = {h.rdma: h for h in node.devices.values()}
    out.file("ibstat/list", " ".join(render.ibstat_order(node)) + "\n")
    for rdma, hca in by_rdma.items():
        out.file(f"ibstat/ca/{rdma}", render.ibstat_ca(hca))
        out.file(f"ibstat/port/{rdma}", f"CA: '{rdma}'\nPort 1:\n" + render.ibstat_port(hca, indent=""))


def write_ip(out: _Writer, node: Node) -> None:
    """The answers of the node's ``ip link show <pf>``: per PF its two header lines and its VF lines up to their
    GUIDs (``ip/<iface>/head``, ``vfs``: ``<index> <line>``; ``ib``: its VF lines carry GUIDs), which the script
    reads from the node's own ``sriov/<N>/node|port`` files."""
    for hca in node.devices.values():
        out.file(f"ip/{hca.iface}/head", render.ip_link_head(node, hca))
        out.file(f"ip/{hca.iface}/vfs", "".join(f"{vf.index} {render.ip_link_vf_head(hca, vf.index)}\n"
                                                for vf in node.vfs(hca.iface)))
        if hca.link_type.current == "IB":
            out.file(f"ip/{hca.iface}/ib", "")
    out.file("ip/order", " ".join(h.iface for h in sorted(node.devices.values(), key=lambda h: h.pci)) + "\n")
    out.file("ip/tail", render.VF_LINE_TAIL + "\n")


def write_sysfs(out: _Writer, node: Node) -> None:
    files, links = render.sysfs_tree(node)
    for rel, text in files.items():
        out.file(f"sys/{rel}", text)
    for rel, target in links.items():
        out.link(f"sys/{rel}", target)
    for rel in ("class/net", "class/infiniband", "bus/pci/devices"):
        out.folder(f"sys/{rel}")


def hardware_key(node: Node) -> str:
    """Nodes with the same hardware state share one rendered tree (a 64-node healthy cluster: one)."""
    vf_ports = [vf.port_state for vf in node.vfs()]    # a VF's port follows its GUID, which is the node's own
    return hashlib.sha256(repr((list(node.devices.values()), node.host, vf_ports)).encode()).hexdigest()[:16]


def hardware_root_path(block: int, workdir: Path) -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / "ibconform-twin" / f"block-{block}"
    return workdir / "hardware"


def hardware_root(block: int, workdir: Path) -> Path:
    """An empty folder for a twin's hardware trees: on tmpfs per address block, else in the workdir.

    The caller owns ``block``: whatever a dead twin of that block left there (trees, processes still
    inside them) is swept first.
    """
    root = hardware_root_path(block, workdir)
    if root.exists():
        kill_all([], identities([p for p in root.iterdir() if p.is_dir()]))
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


def remove_hardware_root(root: Path | None, workdir: Path) -> None:
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
    link = workdir / "hardware"
    if link.is_symlink():
        link.unlink()


#: What a node's host serves from its own folder (``<node>/host/``), mounted over these paths: its kernel's files
#: and its machine-id differ from node to node, so they stay out of the shared hardware tree.
HOST_FILES = ("proc/cmdline", "etc/machine-id", "sys/kernel/security/lockdown",
              "sys/module/ib_core/parameters/netns_mode")
MACHINE_ID = Path("/etc/machine-id")


def write_host(folder: Path, node: Node) -> None:
    """The node's own kernel files and machine-id (HOST_FILES), and its VF GUIDs (``pci/``, the layer over the
    shared /sys/bus/pci/devices), under ``folder/host``."""
    out = _Writer(folder / "host")
    texts = (render.kernel_cmdline(node.name, node.kernel.args), render.machine_id(node.name) + "\n",
             render.lockdown(node.kernel.lockdown), render.netns_mode(node.kernel.rdma_netns))
    for rel, text in zip(HOST_FILES, texts, strict=True):
        out.file(rel, text)
    out.folder("pci")
    for rel, text in render.guid_files(node).items():
        out.file(f"pci/{rel}", text)
    out.folder("etc-work")


#: One fstab line: what to mount, where, its filesystem type and options.
Mount = tuple[str, str, str, str]


def machine_id_mount(host: Path, bind: bool) -> Mount:
    """How ``host/etc/machine-id`` becomes /etc/machine-id: bound over the machine's own file (``bind``), else,
    with no file there to bind over, an overlay of /etc whose upper layer holds it (the machine's /etc is never
    written either way)."""
    if bind:
        return str(host / "etc" / "machine-id"), str(MACHINE_ID), "none", "bind"
    return "overlay", "/etc", "overlay", f"lowerdir=/etc,upperdir={host / 'etc'},workdir={host / 'etc-work'}"


def node_mounts(folder: Path, hardware: Path, empty: Path) -> list[Mount]:
    """What a node mounts over the machine's files, in order: its hardware tree's, its host files, and an empty
    file over root's .bashrc (when there is one)."""
    host = folder / "host"
    layers = ":".join(str(p).replace("\\", "\\\\").replace(":", "\\:")
                      for p in (host / "pci", hardware / "sys" / "bus" / "pci" / "devices"))
    mounts: list[Mount] = [(str(hardware / "sys" / "class"), "/sys/class", "none", "bind"),
                           ("overlay", "/sys/bus/pci/devices", "overlay", f"ro,lowerdir={layers}")]
    mounts += [(str(source), target, "none", "bind") for source, target in (
        (hardware / "bin", "/usr/local/bin"),
        (host / "proc" / "cmdline", "/proc/cmdline"),          # over the node's own /proc (--mount-proc)
        (host / "sys" / "kernel" / "security", "/sys/kernel/security"),
        (host / "sys" / "module", "/sys/module"))]
    mounts.append(machine_id_mount(host, MACHINE_ID.is_file()))
    bashrc = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"
    if bashrc.is_file():
        mounts.append((str(empty), str(bashrc), "none", "bind"))
    return mounts


def fstab(mounts: list[Mount]) -> str:
    """``mounts`` as an fstab for ``mount --all --fstab`` (one process mounts them all, in order); blanks and
    backslashes in paths octal-escaped as fstab(5) wants."""
    def field(text: str) -> str:
        return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in text)
    return "".join(" ".join(map(field, mount)) + " 0 0\n" for mount in mounts)


def write_hardware(folder: Path, node: Node) -> None:
    """Everything a node with ``node``'s hardware serves (sysfs, mstconfig, ibstat, ip, sudo), under ``folder``."""
    out = _Writer(folder)
    write_sysfs(out, node)
    write_mst(out, node)
    write_ibstat(out, node)
    write_ip(out, node)
    out.folder("sudo")
    if node.host.sudo_password:
        out.file("sudo/password", "")
    for tool, data in (("mstconfig", "mst"), ("ibstat", "ibstat"), ("ip", "ip"), ("sudo", "sudo")):
        out.file(f"bin/{tool}", tool_script(tool, folder / data))
        os.chmod(folder / "bin" / tool, 0o755)


def _node_process(cpu_group: bytes | None) -> None:
    """In the child before exec: SIGKILL when the parent goes, however it goes; in the twin's CPU group."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    cpu.join(cpu_group)


def node_command(name: str, folder: Path) -> list[str]:
    """The node's process: its namespaces, its host name, its mounts (``folder/fstab``), then its sshd."""
    q = shlex.quote
    setup = ["set -e", f"hostname {q(name)}", f"mount --all --fstab {q(str(folder / 'fstab'))}",
             f"exec {SSHD} -D -e -f {q(str(folder / 'sshd_config'))}"]
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--", "/bin/sh", "-c", "\n".join(setup)]


def start(name: str, folder: Path, hardware: Path, empty: Path, cpu_group: bytes | None = None) -> subprocess.Popen:
    """Start node ``name``'s sshd (not waiting for it); its log goes to ``folder/sshd.log``."""
    (folder / "fstab").write_text(fstab(node_mounts(folder, hardware, empty)))
    with open(folder / "sshd.log", "wb") as log:
        return subprocess.Popen(
            node_command(name, folder), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            close_fds=True, start_new_session=True, preexec_fn=functools.partial(_node_process, cpu_group),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def first_process(proc: subprocess.Popen) -> int | None:
    """The first process of a started node's PID namespace (its sshd), as this machine numbers it; None once
    the node is gone."""
    if proc.poll() is not None:
        return None
    children = _children(proc.pid)
    return children[0] if children else None


def enter_command(pid: int) -> tuple[str, ...]:
    """The argv prefix that runs a command inside the node whose first process is ``pid``: in its mount, UTS
    and PID namespaces, so it sees the node's hostname, sysfs and mstconfig."""
    nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
    return (nsenter, "--target", str(pid), "--mount", "--uts", "--pid", "--")


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

def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def identities(folders: list[Path]) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of the hardware trees' ``bin`` folders: inside a node, that is /usr/local/bin."""
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
