"""Parse ``NCCL_DEBUG=INFO`` logs: which NCCL, which HCAs, which network, and whether GPUDirect RDMA
was used.

A line is ``<host>:<pid>:<tid> [<cudaDev>] NCCL INFO <message>``; a warning is ``<host>:<pid>:<tid>
[<cudaDev>] <file>:<line> [(<function>)] NCCL WARN <message>``, by default after a ``[<date> <time>] ``
timestamp in newer releases. Launchers prepend ``[<rank>] `` or ``<host>: ``, and redacted host names may
hold spaces, so a line is found by its ``NCCL INFO``/``NCCL WARN`` marker and the part before it is read
best-effort. Up to NCCL 2.21 the version is a bare ``NCCL version X.Y.Z+cudaA.B``
line; from 2.22 it is an INFO message.

>>> log = parse_nccl_log('''NCCL version 2.19.3+cuda12.3
... testgpu2:3255:3262 [1] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [RO]; OOB ibs65:10.10.10.101<0>
... testgpu2:3255:3262 [1] NCCL INFO Using network IB
... node17-2:36752:36752 [4] NCCL INFO Channel 00/0 : 3[3] -> 4[4] [receive] via NET/IB/2/GDRDMA
... ''')
>>> log.versions, log.networks, log.gdr_in_use
(('2.19.3+cuda12.3',), ('IB',), True)
>>> log.ib_devices[0].devices
(NetDevice(index=0, device='mlx5_0', port=1, link_layer='IB'),)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.errors import ParseError

_MARKER = re.compile(r"\bNCCL (?P<level>INFO|WARN)(?: (?P<message>.*)|$)")
# Prefixes before NCCL's own: mpirun '[1] ' / '[1,0]<stdout>: ', pdsh and friends '<host>: ', and NCCL's
# own timestamp ('[2026-06-01 10:00:00] ', on WARN lines by default since 2.2x).
_MAX_PREFIXES = 4
_PREFIX = re.compile(r"\[[^\]]*\](?:<std(?:out|err)>)?:?\s*|[^\s:\[]+:\s+")
# '<host>:<pid>:<tid> [<dev>]', and on WARN lines '<file>:<line>' with '(<function>)' in newer releases.
_ORIGIN = re.compile(r"(?P<host>.*?)\s*:(?P<pid>[0-9]+):(?P<tid>[0-9]+) \[(?P<dev>[0-9]+)\]"
                     r"(?: (?P<source>\S+:[0-9]+)(?: \([^()]*\))?)?\s*")
_VERSION = re.compile(r"NCCL version (?P<version>[0-9]+\.[0-9]+\.[0-9]+\S*)")
_IB_USING = re.compile(r"NET/IB\s*: Using(?P<list>.*?)\s*(?P<ro>\[RO\])?\s*;\s*OOB (?P<oob>\S+)\s*")
_IB_ITEM = re.compile(r"\[(?P<index>[0-9]+)\](?P<device>[^\s:\[\]/]+):(?P<port>[0-9]+)(?::[0-9]*)*/(?P<link>[A-Za-z]+)")
_SOCKET_USING = re.compile(r"NET/Socket\s*: Using (?P<list>.*)")
_SOCKET_ITEM = re.compile(r"\[[0-9]+\](?P<interface>[^\s:\[\]]+):")
_NO_IB_DEVICE = re.compile(r"NET/IB\s*: No device found\.?\s*")
_USING_NETWORK = re.compile(r"Using network (?P<network>\S.*?)\s*")
_GDR = re.compile(r"NET/(?P<net>.+?)\s*: GPU Direct RDMA (?:\((?P<via>[^)]*)\) )?(?P<state>[Ee]nabled|[Dd]isabled) "
                  r"for HCA (?P<hca>[0-9]+) '(?P<device>[^']*)'?(?P<detail>.*)")
_CHANNEL = re.compile(r"Channel (?P<channel>[0-9]+)/(?P<connection>[0-9]+) : "
                      r"(?P<src>[0-9]+)\[(?P<src_dev>[0-9]+)\] -> (?P<dst>[0-9]+)\[(?P<dst_dev>[0-9]+)\]"
                      r"(?: \[(?P<direction>send|receive)\])? via (?P<via>\S.*?)\s*")
_NET_PATH = re.compile(r"NET/(?P<net>.+)/(?P<device>[0-9]+)(?:\((?P<proxy>[0-9]+)\))?(?P<gdr>/GDRDMA(?:\(PCI\))?)?"
                       r"(?P<shared>/Shared)?")


@dataclass(frozen=True)
class NcclLine:
    """One ``NCCL INFO``/``NCCL WARN`` line; the origin fields are ``None`` when the prefix is unreadable.
    ``source`` is the ``<file>:<line>`` a WARN names."""

    host: str | None
    pid: int | None
    tid: int | None
    cuda_dev: int | None
    level: str
    source: str | None
    message: str
    raw: str


@dataclass(frozen=True)
class NetDevice:
    """``[<index>]<device>:<port>/<link layer>`` of ``NET/IB : Using``; ``index`` is NCCL's net device
    number (the ``<n>`` of ``via NET/IB/<n>``), not mlx5_N."""

    index: int
    device: str
    port: int
    link_layer: str


@dataclass(frozen=True)
class IbDeviceList:
    """One ``NET/IB : Using ...`` line: the HCA ports NCCL may use, relaxed ordering, the OOB interface."""

    host: str | None
    devices: tuple[NetDevice, ...]
    relaxed_ordering: bool
    oob: str


@dataclass(frozen=True)
class GdrReport:
    """``NET/<net> : GPU Direct RDMA Enabled|Disabled for HCA <n> '<dev>'`` (plugins: ``(DMABUF) enabled``,
    ``... (no module)``)."""

    host: str | None
    net: str
    hca: int
    device: str
    enabled: bool
    via: str | None
    detail: str | None


@dataclass(frozen=True)
class ChannelPath:
    """One ``Channel NN/M : <r>[<d>] -> <r>[<d>] [send|receive] via <transport>`` line. For a NET transport
    ``net`` is the network's name (``IB``, ``IBext_v8``, ``Socket``), ``net_device`` NCCL's device index,
    ``gdrdma`` whether it ends in ``/GDRDMA``; for P2P/SHM they are ``None``/``False``."""

    host: str | None
    channel: int
    connection: int
    src_rank: int
    src_dev: int
    dst_rank: int
    dst_dev: int
    direction: str | None
    transport: str
    net: str | None
    net_device: int | None
    proxy_rank: int | None
    gdrdma: bool
    shared: bool


@dataclass(frozen=True)
class NcclLog:
    """What an NCCL_DEBUG=INFO log says about the network. ``versions`` and ``networks`` (``Using network
    <name>``, the authoritative choice) are distinct values in order of appearance; ``ib_no_device`` says
    that some process printed ``NET/IB : No device found.``; ``socket_interfaces`` are the interfaces of
    ``NET/Socket : Using`` lines; the rest keeps one item per line."""

    versions: tuple[str, ...]
    networks: tuple[str, ...]
    ib_devices: tuple[IbDeviceList, ...]
    ib_no_device: bool
    socket_interfaces: tuple[str, ...]
    gdr: tuple[GdrReport, ...]
    channels: tuple[ChannelPath, ...]
    warnings: tuple[NcclLine, ...]

    @property
    def net_channels(self) -> tuple[ChannelPath, ...]:
        return tuple(c for c in self.channels if c.net is not None)

    @property
    def gdr_in_use(self) -> bool | None:
        """True when every NET channel line ends in ``/GDRDMA``, False when one does not, ``None`` when the
        log shows no NET channel line (a single node, or the lines were not logged)."""
        paths = self.net_channels
        return None if not paths else all(c.gdrdma for c in paths)


def parse_nccl_line(line: str) -> NcclLine | None:
    """One log line as an ``NcclLine``, or ``None`` when it holds no ``NCCL INFO``/``NCCL WARN``.

    >>> parse_nccl_line("[0] h100clust-worker-1:497888:498098 [0] NCCL INFO Using network IBext_v8").host
    'h100clust-worker-1'
    """
    marker = _MARKER.search(line)
    if not marker:
        return None
    prefix = line[:marker.start()]
    for _ in range(_MAX_PREFIXES):
        launcher = _PREFIX.match(prefix)
        if not launcher or (_ORIGIN.fullmatch(prefix) and not _ORIGIN.fullmatch(prefix[launcher.end():])):
            break
        prefix = prefix[launcher.end():]
    origin = _ORIGIN.fullmatch(prefix)
    return NcclLine(host=origin["host"].strip() or None if origin else None,
                    pid=int(origin["pid"]) if origin else None, tid=int(origin["tid"]) if origin else None,
                    cuda_dev=int(origin["dev"]) if origin else None, level=marker["level"],
                    source=origin["source"] if origin else None, message=(marker["message"] or "").strip(),
                    raw=line)


def parse_nccl_log(text: str) -> NcclLog:
    """Parse an NCCL_DEBUG=INFO log (any mix with other output, e.g. nccl-tests' own lines).

    Raises ``ParseError`` when the text holds no NCCL line at all (no ``NCCL INFO``/``NCCL WARN`` and no
    ``NCCL version``).
    """
    versions: list[str] = []
    networks: list[str] = []
    ib_devices: list[IbDeviceList] = []
    sockets: list[str] = []
    gdr: list[GdrReport] = []
    channels: list[ChannelPath] = []
    warnings: list[NcclLine] = []
    ib_no_device = saw_nccl = False
    for raw in text.splitlines():
        line = parse_nccl_line(raw)
        if line is None:
            bare = _VERSION.search(raw)
            if bare and bare["version"] not in versions:
                versions.append(bare["version"])
            saw_nccl = saw_nccl or bare is not None
            continue
        saw_nccl = True
        message = line.message
        if line.level == "WARN":
            warnings.append(line)
            continue
        if match := _VERSION.match(message):
            if match["version"] not in versions:
                versions.append(match["version"])
        elif match := _USING_NETWORK.fullmatch(message):
            if match["network"] not in networks:
                networks.append(match["network"])
        elif match := _IB_USING.fullmatch(message):
            items = tuple(NetDevice(index=int(m["index"]), device=m["device"], port=int(m["port"]),
                                    link_layer=m["link"]) for m in _IB_ITEM.finditer(match["list"]))
            ib_devices.append(IbDeviceList(host=line.host, devices=items, relaxed_ordering=bool(match["ro"]),
                                           oob=match["oob"]))
        elif _NO_IB_DEVICE.fullmatch(message):
            ib_no_device = True
        elif match := _SOCKET_USING.fullmatch(message):
            sockets.extend(m["interface"] for m in _SOCKET_ITEM.finditer(match["list"]))
        elif match := _GDR.fullmatch(message):
            gdr.append(GdrReport(host=line.host, net=match["net"], hca=int(match["hca"]), device=match["device"],
                                 enabled=match["state"].lower() == "enabled", via=match["via"],
                                 detail=match["detail"].strip() or None))
        elif match := _CHANNEL.fullmatch(message):
            channels.append(_channel(match, line.host))
    if not saw_nccl:
        raise ParseError("NCCL log: no 'NCCL INFO', 'NCCL WARN' or 'NCCL version' line", raw=text)
    return NcclLog(versions=tuple(versions), networks=tuple(networks), ib_devices=tuple(ib_devices),
                   ib_no_device=ib_no_device, socket_interfaces=tuple(sockets), gdr=tuple(gdr),
                   channels=tuple(channels), warnings=tuple(warnings))


def _channel(match: re.Match[str], host: str | None) -> ChannelPath:
    via = match["via"]
    net = _NET_PATH.fullmatch(via)
    return ChannelPath(host=host, channel=int(match["channel"]), connection=int(match["connection"]),
                       src_rank=int(match["src"]), src_dev=int(match["src_dev"]), dst_rank=int(match["dst"]),
                       dst_dev=int(match["dst_dev"]), direction=match["direction"], transport=via,
                       net=net["net"] if net else None, net_device=int(net["device"]) if net else None,
                       proxy_rank=int(net["proxy"]) if net and net["proxy"] else None,
                       gdrdma=bool(net and net["gdr"]), shared=bool(net and net["shared"]))
