"""The probe pod's own entry script (levels ``rdma`` and ``nccl``), and the splitting of its log.

The script is POSIX sh, run as the container's command. It reads what decides whether the pod can use RDMA,
prints every result as a record on stdout (the container's log), and exits 0::

    <boundary> <kind> <key>
    <raw content>
    <boundary> end <exit code>

Records: ``file /proc/self/limits`` and ``file /proc/self/status`` (memlock, capabilities), ``ls
/dev/infiniband`` (the char devices the device plugin mounted), ``file /sys/class/infiniband_verbs/<uverbsN>/ibdev``
per ``uverbs`` node (which RDMA device it opens), ``ibv_devinfo -``, and at level ``nccl`` ``nccl -``:
``all_reduce_perf`` over the RDMA devices of those uverbs nodes (``NCCL_IB_HCA``), with ``NCCL_P2P_DISABLE=1
NCCL_SHM_DISABLE=1`` so that the GPUs of the one node talk over the VFs, ``NCCL_DEBUG=INFO``. Every tool is
bounded by coreutils ``timeout``. The last record is ``done``: a log without it was cut short.

The collector reads the log with one ``pods/log`` GET (no exec); the log is untrusted and bounded in size.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass, field

from ibconform.errors import ParseError

VERBS_TIMEOUT = 20  # seconds ibv_devinfo may take
#: all_reduce_perf's sizes: large messages only, so the average bus bandwidth is the link's, not latency's.
NCCL_SIZES = ("-b", "512M", "-e", "4G", "-f", "2", "-n", "20", "-w", "5")
NCCL_ENV = "NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_DEBUG=INFO"

_PRELUDE = r"""
B=%(boundary)s
rec() { printf '%%s %%s %%s\n' "$B" "$1" "$2"; }
end() { printf '\n%%s end %%s\n' "$B" "$1"; }
rec file /proc/self/limits; cat /proc/self/limits 2>&1; end $?
rec file /proc/self/status; cat /proc/self/status 2>&1; end $?
rec ls /dev/infiniband; ls /dev/infiniband 2>&1; end $?
H=
for u in $(ls /dev/infiniband 2>/dev/null); do
  case $u in uverbs[0-9]*) ;; *) continue ;; esac
  f=/sys/class/infiniband_verbs/$u/ibdev
  rec file "$f"; d=$(cat "$f" 2>&1); r=$?; printf '%%s' "$d"; end $r
  [ $r = 0 ] && H="$H${H:+,}$d"
done
rec ibv_devinfo -; timeout -k 2 %(verbs)s ibv_devinfo 2>&1; end $?
"""

_NCCL = r"""
rec nccl -
[ -n "$H" ] && export NCCL_IB_HCA="=$H"
%(env)s timeout -k 5 %(timeout)s all_reduce_perf %(sizes)s -g %(gpus)s 2>&1; end $?
"""


def build(boundary: str, level: str, gpus: int, nccl_timeout: float) -> str:
    """The entry script of a probe at ``level`` (``rdma`` or ``nccl``) using ``gpus`` GPUs."""
    script = _PRELUDE % {"boundary": shlex.quote(boundary), "verbs": VERBS_TIMEOUT}
    if level == "nccl":
        script += _NCCL % {"env": NCCL_ENV, "timeout": f"{nccl_timeout:g}", "sizes": " ".join(NCCL_SIZES),
                           "gpus": max(gpus, 1)}
    return script + "rec done -; end 0\n"


def new_boundary() -> str:
    return f"__ibconform_{secrets.token_hex(12)}__"


@dataclass
class ProbeOutput:
    """Every record of a probe's log: ``(kind, key) -> (text, exit code)``."""

    records: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def text(self, kind: str, key: str = "-") -> str | None:
        found = self.records.get((kind, key))
        return None if found is None else found[0]

    def code(self, kind: str, key: str = "-") -> int | None:
        found = self.records.get((kind, key))
        return None if found is None else found[1]


def split(log: str, boundary: str) -> ProbeOutput:
    """Split the probe's log into records; ParseError when it was cut short (no ``done`` record)."""
    out = ProbeOutput()
    kind = key = None
    body: list[str] = []
    done = False
    for line in log.split("\n"):
        if not line.startswith(boundary + " "):
            if kind is not None:
                body.append(line)
            continue
        word, _, rest = line[len(boundary) + 1:].partition(" ")
        if word != "end":
            kind, key, body = word, rest, []
            continue
        if kind is None or key is None:
            raise ParseError("probe log has an 'end' record without a start", raw=log[-2000:])
        try:
            code = int(rest)
        except ValueError:
            code = 255
        out.records[(kind, key)] = ("\n".join(body[:-1] if body and body[-1] == "" else body), code)
        done = kind == "done"
        kind = None
    if kind is not None:
        raise ParseError(f"probe log cut short inside its {kind} {key} record", raw=log[-2000:])
    if not done:
        raise ParseError("probe log cut short: its last record (done) is missing", raw=log[-2000:])
    return out
