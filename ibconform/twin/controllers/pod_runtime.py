"""The node's container runtime and CNI chain for a pod that asks for VFs: what multus, ib-sriov-cni and nv-ipam
leave on it, and what its container prints.

- :func:`attach` plays CNI ADD: the pod's ``k8s.v1.cni.cncf.io/network-status`` annotation as multus writes it
  (the default network, then per requested network its ``net<N>`` interface, an address from the node's nv-ipam
  block and ``device-info`` naming the VF's PCI address and RDMA device), or the FailedCreatePodSandBox words of
  the failure a fault stages (multus finding no NetworkAttachmentDefinition, ib-sriov-cni refusing an all-zero
  VF GUID).
- :class:`Container` runs a container's ``sh -c`` command for real, in a scratch folder standing for the
  container's file system: ``cat`` and ``ls`` read there, ``ibv_devinfo`` and ``all_reduce_perf`` print what the
  real tools would print on the node's emulated hardware (the VFs attached, the ports' rates, the faults), so the
  twin runs whatever script the pod carries without knowing it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibconform.twin.machines.hardware import Hca, Node, PortState
from ibconform.twin.machines.render import guid

SCRIPT_TIMEOUT = 60.0  # seconds a container's command may run in the twin
#: /proc/<pid>/status capability masks: the runtime's default set, with CAP_IPC_LOCK (bit 14) when asked for.
CAPS_DEFAULT, CAPS_IPC_LOCK = 0x00000000A80425FB, 0x00000000A80465FB
VF_PART_ID = 4126      # 0x101e: the ConnectX VF's vendor_part_id
GPU_NAME = "NVIDIA B200"
NCCL_VERSION = "2.25.1+cuda12.8"


@dataclass(frozen=True)
class Attachment:
    """One requested network attached: its interface, the VF (PF, index, PCI address, RDMA device), its address."""

    network: str            # <namespace>/<name>
    interface: str
    pf: Hca
    vf_index: int
    pci: str
    rdma: str
    ip: str
    guid: str               # the VF's node GUID as ibv_devinfo prints it (xxxx:xxxx:xxxx:xxxx)
    port_state: PortState   # its IB port's state
    uverbs: int             # its uverbs<n> char device


@dataclass
class PodView:
    """What one pod sees of its node: its attachments, and the node's in-pod faults."""

    name: str
    node: Node
    attachments: list[Attachment]
    gpus: int
    ipc_lock: bool
    pod_ip: str
    faults: dict[str, Any] = field(default_factory=dict)


def ipoib_address(node_guid: str) -> str:
    """The 20-byte IPoIB hardware address of a VF netdev: QPN, GID prefix fe80::, then the port GUID."""
    octets = node_guid.replace(":", "")
    return "00:00:0b:8a:fe:80:00:00:00:00:00:00:" + ":".join(octets[i:i + 2] for i in range(0, 16, 2))


def address_in(block: dict[str, Any], offset: int) -> str | None:
    """Address ``offset`` of a node's nv-ipam block (IPPool ``startIP``-``endIP``, CIDRPool ``prefix``)."""
    try:
        if block.get("prefix"):
            net = ipaddress.ip_network(str(block["prefix"]), strict=False)
            return str(net.network_address + 2 + offset)     # .1 is the gateway
        return str(ipaddress.ip_address(str(block.get("startIP"))) + offset)
    except ValueError:
        return None


def network_status(pod_ip: str, attachments: list[Attachment]) -> str:
    """The ``k8s.v1.cni.cncf.io/network-status`` value multus writes: the default network, then each attachment."""
    entries: list[dict[str, Any]] = [{"name": "k8s-pod-network", "interface": "eth0", "ips": [pod_ip],
                                      "mac": "0a:58:" + ":".join(f"{int(o):02x}" for o in pod_ip.split(".")),
                                      "default": True, "dns": {}}]
    for a in attachments:
        entries.append({"name": a.network, "interface": a.interface, "ips": [a.ip],
                        "mac": ipoib_address(a.guid), "dns": {},
                        "device-info": {"type": "pci", "version": "1.1.0",
                                        "pci": {"pci-address": a.pci, "rdma-device": a.rdma}}})
    return json.dumps(entries, indent=4)


def _rate_gbps(rate: str) -> float:
    """``400 Gb/sec (4X NDR)`` -> 400.0; 0 when unreadable."""
    try:
        return float(rate.split()[0])
    except (ValueError, IndexError):
        return 0.0


def bus_bandwidth(view: PodView) -> float:
    """all_reduce_perf's busbw (GB/s) for the pod's GPUs talking over its VFs only: a ring is as fast as its slowest
    HCA (port rate, PCIe width), about 92 % of the wire; without GPUDirect RDMA every byte bounces through host
    memory; over sockets a few GB/s at best."""
    if view.faults.get("socket") or not view.faults.get("uverbs", True) or not view.attachments:
        return 1.18
    slowest = min(_rate_gbps(a.pf.rate) * min(1.0, a.pf.pcie_width / 16) if a.pf.port_state == "ACTIVE" else 0.0
                  for a in view.attachments)
    busbw = slowest / 8 * 0.92
    return round(busbw * (0.55 if not view.faults.get("gdr", True) else 1.0), 2)


def _seed(*parts: object) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:6], 16)


# ------------------------------------------------------------------------------------------ the tools' output

def limits(memlock: int | None) -> str:
    """``/proc/self/limits`` of the container: containerd's defaults, memlock as the runtime sets it."""
    locked = "unlimited" if memlock is None else str(memlock)
    rows = [("Max cpu time", "unlimited", "unlimited", "seconds"), ("Max file size", "unlimited", "unlimited", "bytes"),
            ("Max data size", "unlimited", "unlimited", "bytes"), ("Max stack size", "8388608", "unlimited", "bytes"),
            ("Max core file size", "unlimited", "unlimited", "bytes"),
            ("Max resident set", "unlimited", "unlimited", "bytes"),
            ("Max processes", "unlimited", "unlimited", "processes"),
            ("Max open files", "1048576", "1048576", "files"), ("Max locked memory", locked, locked, "bytes"),
            ("Max address space", "unlimited", "unlimited", "bytes"),
            ("Max file locks", "unlimited", "unlimited", "locks"),
            ("Max pending signals", "8252063", "8252063", "signals"),
            ("Max msgqueue size", "819200", "819200", "bytes"), ("Max nice priority", "0", "0", ""),
            ("Max realtime priority", "0", "0", ""), ("Max realtime timeout", "unlimited", "unlimited", "us")]
    head = f"{'Limit':<26}{'Soft Limit':<21}{'Hard Limit':<21}{'Units':<10}\n"
    return head + "".join(f"{n:<26}{s:<21}{h:<21}{u:<10}\n" for n, s, h, u in rows)


def status(name: str, ipc_lock: bool) -> str:
    """``/proc/self/status`` of ``cat`` in the container (the capability rows are what is read)."""
    caps = CAPS_IPC_LOCK if ipc_lock else CAPS_DEFAULT
    return (f"Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t{_seed(name) % 900 + 20}\nNgid:\t0\n"
            f"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t{caps:016x}\n"
            f"CapEff:\t{caps:016x}\nCapBnd:\t{caps:016x}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n"
            "Seccomp:\t2\nSeccomp_filters:\t1\n")


def devinfo(view: PodView) -> tuple[str, int]:
    """``ibv_devinfo`` in the pod, one block per VF whose uverbs node is there (and its exit code)."""
    if not view.faults.get("uverbs", True) or not view.attachments:
        return "No IB devices found\n", 255
    blocks = []
    for a in view.attachments:
        ib_guid = a.guid
        active = a.port_state == "ACTIVE"
        state = "PORT_ACTIVE (4)" if active else "PORT_DOWN (1)"
        lid = _seed(a.pci) % 4000 + 1 if active else 65535
        blocks.append(
            f"hca_id:\t{a.rdma}\n\ttransport:\t\t\tInfiniBand (0)\n\tfw_ver:\t\t\t\t{a.pf.fw_ver}\n"
            f"\tnode_guid:\t\t\t{ib_guid}\n\tsys_image_guid:\t\t\t{guid(a.pf.pci)}\n\tvendor_id:\t\t\t0x02c9\n"
            f"\tvendor_part_id:\t\t\t{VF_PART_ID}\n\thw_ver:\t\t\t\t0x0\n\tboard_id:\t\t\t{a.pf.type.board_id}\n"
            f"\tphys_port_cnt:\t\t\t1\n\t\tport:\t1\n\t\t\tstate:\t\t\t{state}\n\t\t\tmax_mtu:\t\t4096 (5)\n"
            f"\t\t\tactive_mtu:\t\t4096 (5)\n\t\t\tsm_lid:\t\t\t{1 if active else 0}\n\t\t\tport_lid:\t\t{lid}\n"
            "\t\t\tport_lmc:\t\t0x00\n\t\t\tlink_layer:\t\tInfiniBand\n")
    return "\n".join(blocks) + "\n", 0


def all_reduce_perf(view: PodView, gpus: int) -> tuple[str, int]:
    """nccl-tests' ``all_reduce_perf -b 512M -e 4G -f 2 -g <gpus>`` with NCCL_DEBUG=INFO and P2P/SHM off: the banner,
    NCCL's INFO lines (the HCAs, the network, GPUDirect RDMA, the channels) and the results table."""
    host, pid = view.name[:63], _seed(view.name, "nccl") % 90000 + 100
    tid = pid + 31

    def info(dev: int, message: str, thread: int = tid) -> str:
        return f"{host}:{pid}:{thread} [{dev}] NCCL INFO {message}\n"

    out = [f"# nThread 1 nGpus {gpus} minBytes 536870912 maxBytes 4294967296 step: 2(factor) warmup iters: 5 iters: "
           "20 agg iters: 1 validation: 1 graph: 0\n#\n# Using devices\n"]
    out += [f"#  Rank {r:2d} Group  0 Pid {pid:6d} on {host} device {r:2d} [0000:{0x1b + r * 0x10:02x}:00] "
            f"{GPU_NAME}\n" for r in range(gpus)]
    out.append(info(0, f"Bootstrap : Using eth0:{view.pod_ip}<0>", pid))
    out.append(info(0, "NET/Plugin: No plugin found (libnccl-net.so)", pid))
    out.append(info(0, "cudaDriverVersion 12080", pid))
    out.append(f"NCCL version {NCCL_VERSION}\n")
    socket = view.faults.get("socket") or not view.faults.get("uverbs", True) or not view.attachments
    for r in range(gpus):
        out.append(info(r, "NCCL_P2P_DISABLE set by environment to 1."))
        out.append(info(r, "NCCL_SHM_DISABLE set by environment to 1."))
        if socket:
            out.append(info(r, "NET/IB : No device found."))
            out.append(info(r, f"NET/Socket : Using [0]eth0:{view.pod_ip}<0>"))
            out.append(info(r, "Using network Socket"))
            continue
        hcas = " ".join(f"[{i}]{a.rdma}:1/IB" for i, a in enumerate(view.attachments))
        out.append(info(r, f"NET/IB : Using {hcas} [RO]; OOB eth0:{view.pod_ip}<0>"))
        out.append(info(r, "Using network IB"))
        for i, a in enumerate(view.attachments):
            state = "Enabled" if view.faults.get("gdr", True) else "Disabled"
            out.append(info(r, f"NET/IB : GPU Direct RDMA {state} for HCA {i} '{a.rdma}'"))
    nets = max(len(view.attachments), 1)
    for channel in range(2):
        for r in range(gpus):
            via = "NET/Socket/0" if socket else f"NET/IB/{r % nets}" + ("/GDRDMA" if view.faults.get("gdr", True)
                                                                      else "")
            out.append(info(r, f"Channel {channel:02d}/0 : {r}[{r}] -> {(r + 1) % gpus}[{(r + 1) % gpus}] [send] "
                               f"via {via}"))
    busbw = bus_bandwidth(view)
    out.append("#\n#                                                              out-of-place                       "
               "in-place          \n#       size         count      type   redop    root     time   algbw   busbw "
               "#wrong     time   algbw   busbw #wrong\n#        (B)    (elements)                               "
               "(us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       \n")
    factor = 2 * (gpus - 1) / gpus if gpus > 1 else 1.0
    values = []
    for i, size in enumerate((536870912, 1073741824, 2147483648, 4294967296)):
        row = []
        for placement in range(2):
            bw = busbw * (0.97 + 0.01 * i) - 0.01 * placement
            algbw = bw / factor
            row.append(f"{size / (algbw * 1e3):8.0f} {algbw:7.2f} {bw:7.2f} {0:6d}")
            values.append(round(bw, 2))
        out.append(f"{size:12d}  {size // 4:12d}     float     sum      -1  {row[0]}  {row[1]}\n")
    out.append("# Out of bounds values : 0 OK\n")
    out.append(f"# Avg bus bandwidth    : {sum(values) / len(values):.4f} \n#\n\n")
    return "".join(out), 0


# ------------------------------------------------------------------------------------------ running a container

_READ_STUB = """#!/bin/sh
# {tool} inside the container: its paths are the container's ({root} stands for its root)
for a in "$@"; do case $a in -*) ;; *) p=$a ;; esac; done
if [ ! -e "$IBC_ROOT$p" ]; then echo "{tool}: cannot access '$p': No such file or directory" >&2; exit {missing}; fi
exec {real} "$IBC_ROOT$p"
"""
_PRINT_STUB = """#!/bin/sh
{cat} "$IBC_ROOT/.tools/{tool}.out"
exit "$({cat} "$IBC_ROOT/.tools/{tool}.rc")"
"""


class Container:
    """One container run in a scratch root: its file system from the pod's view, its tools as stubs."""

    def __init__(self, view: PodView) -> None:
        self.view = view

    def _write(self, root: Path, path: str, text: str) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def _fill(self, root: Path) -> None:
        view = self.view
        self._write(root, "/proc/self/limits", limits(view.faults.get("memlock")))
        self._write(root, "/proc/self/status", status(view.name, view.ipc_lock))
        if view.faults.get("uverbs", True) and view.attachments:
            self._write(root, "/dev/infiniband/rdma_cm", "")
            for a in view.attachments:
                number = a.uverbs
                self._write(root, f"/dev/infiniband/uverbs{number}", "")
                self._write(root, f"/sys/class/infiniband_verbs/uverbs{number}/ibdev", f"{a.rdma}\n")
        tools = {"ibv_devinfo": devinfo(view), "all_reduce_perf": all_reduce_perf(view, max(view.gpus, 1))}
        bin_dir = root / ".tools" / "bin"
        bin_dir.mkdir(parents=True)
        for tool, (text, code) in tools.items():
            self._write(root, f"/.tools/{tool}.out", text)
            self._write(root, f"/.tools/{tool}.rc", str(code))
            (bin_dir / tool).write_text(_PRINT_STUB.format(tool=tool, cat=shutil.which("cat") or "/bin/cat"))
        for tool, missing in (("cat", 1), ("ls", 2)):
            real = shutil.which(tool) or f"/bin/{tool}"
            (bin_dir / tool).write_text(_READ_STUB.format(tool=tool, root="$IBC_ROOT", missing=missing, real=real))
        for stub in bin_dir.iterdir():
            stub.chmod(0o755)

    def run(self, command: list[str]) -> tuple[str, int]:
        """Run ``command`` (the container's); its stdout and stderr together (the container log) and exit code."""
        if not command:
            return "", 0
        with tempfile.TemporaryDirectory(prefix="ibconform-twin-pod-") as scratch:
            root = Path(scratch)
            self._fill(root)
            env = {"PATH": f"{root / '.tools' / 'bin'}:/usr/bin:/bin", "IBC_ROOT": str(root),
                   "HOSTNAME": self.view.name[:63], "HOME": "/root", "LANG": "C"}
            try:
                done = subprocess.run(command, cwd=root, env=env, capture_output=True, timeout=SCRIPT_TIMEOUT,
                                      check=False)
            except subprocess.TimeoutExpired as exc:
                return (exc.stdout or b"").decode(errors="replace"), 137
            except OSError as exc:
                return f"exec {shlex.join(command)}: {exc.strerror}\n", 127
            return (done.stdout + done.stderr).decode(errors="replace"), done.returncode


