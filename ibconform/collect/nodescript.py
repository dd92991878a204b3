"""The one script a node runs per collection, and the splitting of its output.

The script is POSIX sh, sent on stdin: it starts every mstconfig query at once (each bounded by
coreutils ``timeout``), reads the sysfs files meanwhile, waits, and prints every result as a record::

    <boundary> <kind> <key>
    <raw content>
    <boundary> end <exit code>

The boundary is a random token chosen per run, so no file content can end a record early. The last
record is ``done``: output without it was cut short (the node rebooted, the session was killed), and
none of it is judged.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass, field

from ibconform.errors import ParseError
from ibconform.inventory import Node

MSTCONFIG_QUERY = ("-e", "q", "NUM_OF_VFS", "SRIOV_EN", "LINK_TYPE_P1")  # format v1's query, for every device
PF_FILES = ("sriov_numvfs", "sriov_totalvfs")
#: The kernel's side of the chain: the command line (kernel arguments the operator asked for), lockdown (which
#: makes mstconfig fail to open devices) and ib_core's RDMA netns mode (Y shared, N exclusive).
KERNEL_FILES = ("/proc/cmdline", "/sys/kernel/security/lockdown", "/sys/module/ib_core/parameters/netns_mode")
#: Which machine answered: kubelet reports this file as the Node's status.nodeInfo.machineID.
MACHINE_ID = "/etc/machine-id"
RDMA_FILES = ("fw_ver",)
PORT_FILES = ("state", "phys_state", "rate", "link_layer")
#: Per VF (``<pf dir>/virtfn<N>``, a link to the VF's PCI function): its RDMA devices' node GUID and port states,
#: and the character devices of its verbs and MAD interfaces (``uverbsN``, ``umadN``: ``dev`` is major:minor). Only
#: what a check judges: 6 files per VF, 8 VFs on 8 HCAs, thousands of nodes.
VF_FILES = ("infiniband/*/node_guid", "infiniband/*/ports/*/state", "infiniband_verbs/uverbs*/dev",
            "infiniband_mad/umad*/dev")
#: Per PF: the administrative GUIDs mlx5 shows for each VF (MLNX_OFED's mlx5_core; absent on inbox drivers).
SRIOV_GUID_FILES = ("sriov/*/node", "sriov/*/port")
IP_TIMEOUT_S = 5


def ip_link_command(iface: str) -> str:
    """The command whose ``vf N`` lines show each VF's administrative node and port GUID (iproute2 5.5+)."""
    return f"ip link show {iface}"

_PRELUDE = r"""
B=%(boundary)s
T=$(mktemp -d 2>/dev/null) || { echo "mktemp failed" >&2; exit 90; }
trap 'rm -rf "$T"' EXIT
mst() { d=$1 i=$2; shift 2; timeout -k 2 %(timeout)s mstconfig -d "$d" "$@" >"$T/$i.out" 2>&1; echo $? >"$T/$i.rc"; }
rec() { printf '%%s %%s %%s\n' "$B" "$1" "$2"; }
end() { printf '\n%%s end %%s\n' "$B" "$1"; }
file() { for f in "$@"; do rec file "$f"; cat -- "$f" 2>&1; end $?; done; }
link() { rec link "$1"; readlink -- "$1" 2>&1; end $?; }
val() { for f in "$@"; do rec file "$f"; { IFS= read -r l <"$f" || [ -n "$l" ]; } 2>&1 && printf '%%s\n' "$l"
        end $?; l=; done; }
cmd() { rec command "$1"; shift; timeout -k 1 %(ip_timeout)s "$@" 2>&1; end $?; }
vfl() { rec links "$1"; find "$1"/virtfn* "$1"/virtfn*/driver -maxdepth 0 -type l -printf '%%p\t%%l\n' 2>/dev/null
        end 0; }
"""


def hca_dir(iface: str) -> str:
    return f"/sys/class/net/{iface}/device"


def pci_dir(pci: str) -> str:
    return f"/sys/bus/pci/devices/{pci}"


def mstconfig_query(port: int) -> tuple[str, ...]:
    """What mstconfig is asked about a PF: its firmware's VFs and SR-IOV switch, and the link type of the PF's own
    port (``LINK_TYPE_P2`` for the second PF of a dual-port card: the parameters are the card's, one per port)."""
    return ("-e", "q", "NUM_OF_VFS", "SRIOV_EN", f"LINK_TYPE_P{port}")


def build(node: Node, boundary: str, mstconfig_timeout: float) -> str:
    """The sh script that gathers every fact of ``node`` in one round trip."""
    q = shlex.quote
    lines = [_PRELUDE % {"boundary": q(boundary), "timeout": f"{mstconfig_timeout:g}", "ip_timeout": IP_TIMEOUT_S}]
    queries = [(h.pci, mstconfig_query(h.port)) for h in node.hcas] + [(d.pci, MSTCONFIG_QUERY) for d in node.excluded]
    lines += [f"mst {q(pci)} {i} {' '.join(query)} &" for i, (pci, query) in enumerate(queries)]
    devices = [pci for pci, _ in queries]
    lines.append('rec host -; uname -n; end $?')
    lines.append("file " + " ".join((*KERNEL_FILES, MACHINE_ID)))
    for hca in node.hcas:
        base = hca_dir(hca.iface)
        lines.append(f"link {q(base)}")
        # its VFs' PCI functions: virtfn<N> -> ../<vf pci> (a glob: no VF, no record)
        # each VF: its PCI function and its driver (no link: unbound), both links of every VF in one `find`; its
        # RDMA devices and their char devices, read with the shell's own `read` (no process per file: 8 x 8 VFs)
        lines.append(f"vfl {q(base)}")
        lines.append(f'for v in {q(base)}/virtfn*; do [ -L "$v" ] && val {" ".join(f"$v/{name}" for name in VF_FILES)}'
                     '; done')
        lines.append(f"val {' '.join(f'{q(base)}/{name}' for name in SRIOV_GUID_FILES)}")
        lines.append(f"cmd {q(ip_link_command(hca.iface))} ip link show {q(hca.iface)}")
        lines.append("file " + " ".join(q(f"{base}/{name}") for name in PF_FILES))
        # globs stay unquoted: the RDMA device name (mlx5_N) is not known in advance
        rdma = f"{q(base)}/infiniband/*"
        lines.append("file " + " ".join(f"{rdma}/{name}" for name in RDMA_FILES)
                     + " " + " ".join(f"{rdma}/ports/*/{name}" for name in PORT_FILES))
    for dev in node.excluded:
        lines.append("file " + " ".join(q(f"{pci_dir(dev.pci)}/{name}") for name in PF_FILES))
    lines.append("wait")
    for i, pci in enumerate(devices):
        lines.append(f'rec mstconfig {q(pci)}; cat "$T/{i}.out"; end "$(cat "$T/{i}.rc")"')
    lines.append("rec done -; end 0")
    return "\n".join(lines) + "\n"


def new_boundary() -> str:
    return f"__ibconform_{secrets.token_hex(12)}__"


@dataclass
class NodeOutput:
    """Every record the node script printed, by kind."""

    hostname: str | None = None
    mstconfig: dict[str, tuple[str, int]] = field(default_factory=dict)   # pci -> (output, exit code)
    files: dict[str, str] = field(default_factory=dict)                   # path -> content (read ok)
    unreadable: dict[str, str] = field(default_factory=dict)              # path -> error text
    links: dict[str, str] = field(default_factory=dict)                   # path -> link target
    commands: dict[str, tuple[str, int]] = field(default_factory=dict)    # command -> (output, exit code)


def split(stdout: str, boundary: str) -> NodeOutput:
    """Split the script's stdout into records; ParseError if it was cut short."""
    out = NodeOutput()
    kind = key = None
    body: list[str] = []
    done = False
    for line in stdout.split("\n"):
        if not line.startswith(boundary + " "):
            if kind is not None:
                body.append(line)
            continue
        word, _, rest = line[len(boundary) + 1:].partition(" ")
        if word != "end":
            kind, key, body = word, rest, []
            continue
        if kind is None:
            raise ParseError("node script output has an 'end' record without a start", raw=stdout)
        text = "\n".join(body)
        try:
            code = int(rest)
        except ValueError:
            code = 255
        _store(out, kind, key, text, code)
        done = kind == "done"
        kind = None
    if kind is not None:
        raise ParseError(f"node script output cut short inside the {kind} record of {key}", raw=stdout)
    if out.hostname is None:
        raise ParseError("node script output has no host record", raw=stdout)
    if not done:
        raise ParseError("node script output cut short: its last record (done) is missing", raw=stdout)
    return out


def _store(out: NodeOutput, kind: str, key: str, text: str, code: int) -> None:
    if kind == "host":
        out.hostname = text.strip()
    elif kind == "mstconfig":
        out.mstconfig[key] = (text, code)
    elif kind == "file" and code == 0:
        out.files[key] = text
    elif kind == "file":
        out.unreadable[key] = text.strip()
    elif kind == "link" and code == 0:
        out.links[key] = text.strip()
    elif kind == "link":
        out.unreadable[key] = text.strip()
    elif kind == "command":
        out.commands[key] = (text, code)
    elif kind == "links":   # "<path>\t<target>" per link found under the folder ``key``
        for line in text.splitlines():
            path, tab, target = line.partition("\t")
            if tab and path.startswith(key + "/"):
                out.links[path] = target
