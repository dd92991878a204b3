"""Table-driven tests of ibconform.parsers.nccl against captured NCCL_DEBUG=INFO logs, one row per capture.

Rows marked "composed" follow the INFO/WARN formats in NVIDIA/nccl (src/init.cc, src/graph/topo.cc,
src/transport/net.cc, src/transport/net_ib) and the nccl-rdma-sharp plugin for lines no capture shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings

from ibconform.parsers.nccl import GdrReport, NcclLog, NetDevice, parse_nccl_line, parse_nccl_log
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample


@dataclass(frozen=True)
class Log:
    """What a row expects: versions, networks, (host, devices, RO, OOB) per 'NET/IB : Using', 'No device',
    socket interfaces, GDR lines, (channels, NET channels), gdr_in_use, warning messages."""

    versions: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    ib_devices: tuple[tuple[str | None, tuple[NetDevice, ...], bool, str | None], ...] = ()
    ib_no_device: bool = False
    sockets: tuple[str, ...] = ()
    gdr: tuple[GdrReport, ...] = ()
    channels: tuple[int, int] = (0, 0)
    gdr_in_use: bool | None = None
    warnings: tuple[str, ...] = ()


def summary(log: NcclLog) -> Log:
    return Log(log.versions, log.networks, tuple((d.host, d.devices, d.relaxed_ordering, d.oob) for d in log.ib_devices),
               log.ib_no_device, log.socket_interfaces, log.gdr, (len(log.channels), len(log.net_channels)),
               log.gdr_in_use, tuple(w.message for w in log.warnings))


def ib(index: int, device: str, link: str = "IB", port: int = 1) -> NetDevice:
    return NetDevice(index=index, device=device, port=port, link_layer=link)


def disabled(host: str, hca: int, device: str, net: str = "IB") -> GdrReport:
    return GdrReport(host=host, net=net, hca=hca, device=device, enabled=False, via=None, detail=None)


CQ_ENOMEM = "Call to ibv_create_cq failed with error Cannot allocate memory"

CASES = [
    pytest.param("nccl-info-channel-via-net-ib-gdrdma-and-p2p-ipc-8gpu-node-sglang-issue4289",
                 Log(channels=(17, 5), gdr_in_use=True), id="sglang-4289-net-ib-gdrdma"),
    pytest.param("nccl-info-channel-via-net-ibext-gdrdma-mpirun-rank-prefix-h100-nccl-issue1453",
                 Log(channels=(12, 12), gdr_in_use=True), id="nccl-1453-ibext-plugin-rank-prefix"),
    pytest.param("nccl-info-gpu-direct-rdma-disabled-dgx-os-25.01-nccl-issue1676",
                 Log(gdr=(disabled("learn01", 0, "mlx5_0"), disabled("learn01", 1, "mlx5_1"),
                          disabled("learn01", 0, "mlx5_0"), disabled("learn01", 2, "mlx5_2"))),
                 id="nccl-1676-gdr-disabled"),
    pytest.param("nccl-info-gpu-direct-rdma-disabled-roce-nvidia-peermem-loaded-nccl-issue1537",
                 Log(networks=("IB",), ib_devices=(("hostname1", (ib(0, "mlx5_0", "RoCE"), ib(1, "mlx5_1", "RoCE")), True,
                                                    "primaryip:10.10.10.10<0>"),),
                     gdr=(disabled("hostname1", 0, "mlx5_0"), disabled("hostname1", 1, "mlx5_1"))),
                 id="nccl-1537-roce-gdr-disabled"),
    pytest.param("nccl-info-mpirun-hostname-prefix-trees-p2p-ipc-k8s-workers-nccl-issue1029",
                 Log(channels=(4, 0)), id="nccl-1029-host-prefix-p2p-only"),
    pytest.param("nccl-info-net-ib-ib-ro-ibs-bootstrap-a100-nccl-2.19-nccl-tests-issue182",
                 Log(versions=("2.19.3+cuda12.3",), networks=("IB",),
                     ib_devices=(("testgpu2", (ib(0, "mlx5_0"),), True, "ibs65:10.10.10.101<0>"),)),
                 id="nccl-tests-182-2.19-bare-version"),
    pytest.param("nccl-info-net-ib-ro-using-network-ib-k8s-containers-nccl-issue1536",
                 Log(networks=("IB",), ib_devices=(("hostname-0", (ib(0, "mlx5_0"),), True, "eth0:10.252.129.107<0>"),)),
                 id="nccl-1536-k8s-ib"),
    pytest.param("nccl-info-net-ib-roce-ro-using-network-ib-h800-2node-nccl-issue1052",
                 Log(versions=("2.18.5+cuda12.0",), networks=("IB",),
                     ib_devices=(("node2", (ib(0, "mlx5_4", "RoCE"),), True, "enp24s0np0:10.10.10.1<0>"),
                                 ("node4", (ib(0, "mlx5_4", "RoCE"),), True, "enp24s0np0:10.10.10.3<0>"))),
                 id="nccl-1052-2.18-roce"),
    pytest.param("nccl-tests-all_reduce_perf-net-ib-no-device-found-socket-fallback-v2.21-nccl-tests-issue217",
                 Log(versions=("2.21.5+cuda12.4",), networks=("Socket",), ib_no_device=True, sockets=("lo",),
                     warnings=("socketProgress: Connection closed by remote peer localhost<56086>",)),
                 id="nccl-tests-217-no-ib-device-socket"),
    pytest.param("nccl-tests-header-right-aligned-hostname-step-bytes-h100-2node-nccl-tests-issue252",
                 Log(versions=("2.21.5+cuda12.4",)), id="nccl-tests-252-2.21-bare-version"),
    pytest.param("nccl-tests-mpijob-pods-nccl-2.25-bootstrap-colon-format-aks-rdma-infiniband-issue30",
                 Log(versions=("2.25.1+cuda12.8",)), id="aks-30-2.25-info-version"),
    pytest.param("nccl-warn-ibv-create-cq-cannot-allocate-memory-h200-deepep-issue143",
                 Log(warnings=(CQ_ENOMEM, CQ_ENOMEM,
                               "[Service thread] Error encountered progressing operation=Connect, res=3, closing connection",
                               "[Proxy Service 10] Failed to execute operation Connect from rank 10, retcode 3")),
                 id="deepep-143-create-cq-enomem"),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_parse_nccl_log(name: str, expected: Log) -> None:
    assert summary(parse_nccl_log(sample(name))) == expected


def test_channel_lines_name_the_net_and_its_device_index() -> None:
    log = parse_nccl_log(sample("nccl-info-channel-via-net-ib-gdrdma-and-p2p-ipc-8gpu-node-sglang-issue4289"))
    receive = log.net_channels[0]
    assert (receive.host, receive.channel, receive.src_rank, receive.dst_rank, receive.direction) == (
        "node17-2", 0, 3, 4, "receive")
    assert (receive.transport, receive.net, receive.net_device, receive.gdrdma, receive.shared) == (
        "NET/IB/2/GDRDMA", "IB", 2, True, False)
    p2p = log.channels[0]
    assert (p2p.transport, p2p.net, p2p.gdrdma) == ("P2P/IPC", None, False)
    plugin = parse_nccl_log(sample("nccl-info-channel-via-net-ibext-gdrdma-mpirun-rank-prefix-h100-nccl-issue1453"))
    assert {(c.host, c.net, c.net_device) for c in plugin.channels} == {("h100clust-worker-1", "IBext_v8", 7)}


def test_warn_lines_keep_their_origin() -> None:
    log = parse_nccl_log(sample("nccl-warn-ibv-create-cq-cannot-allocate-memory-h200-deepep-issue143"))
    first = log.warnings[0]
    assert (first.host, first.pid, first.tid, first.cuda_dev, first.source) == (
        "msm-h200-2", 4016, 4653, 7, "misc/ibvwrap.cc:190")


@pytest.mark.parametrize(
    ("line", "host", "pid", "message"),
    [
        ("rdma-gpu-train-worker-0: rdma-gpu-train-worker-0:19484:21054 [0] NCCL INFO P2P Chunksize set to 131072",
         "rdma-gpu-train-worker-0", 19484, "P2P Chunksize set to 131072"),
        ("[0] h100clust-worker-1:497888:498098 [0] NCCL INFO Using network IBext_v8", "h100clust-worker-1", 497888,
         "Using network IBext_v8"),
        ("NAME :70918:70918 [0] NCCL INFO Bootstrap : Using lo:127.0.0.1<0>", "NAME", 70918, "Bootstrap : Using lo:127.0.0.1<0>"),
        ("NAME:70918:70927 [0] NCCL INFO misc/socket.cc:428 -> 6", "NAME", 70918, "misc/socket.cc:428 -> 6"),
        ("[1,0]<stdout>:node2:14159:14168 [0] NCCL INFO Using network IB", "node2", 14159, "Using network IB"),
        ("NCCL INFO Using network IB", None, None, "Using network IB"),
        # Composed: NCCL 2.2x+ stamps WARN lines by default and names the function (src/debug.cc).
        ("[2026-06-01 10:00:00] h1:4016:4653 [7] misc/ibvwrap.cc:190 (wrap_ibv_create_cq) NCCL WARN Call to "
         "ibv_create_cq failed with error Cannot allocate memory", "h1", 4016, CQ_ENOMEM),
        ("[3] [2026-06-01 10:00:00] h1:4016:4653 [7] misc/ibvwrap.cc:190 NCCL WARN x", "h1", 4016, "x"),
    ],
)
def test_prefixes(line: str, host: str | None, pid: int | None, message: str) -> None:
    parsed = parse_nccl_line(line)
    assert parsed is not None and (parsed.host, parsed.pid, parsed.message) == (host, pid, message)


# Composed from the format strings: newer NET/IB lists (rail/plane), no relaxed ordering (' ;'), plugin
# GDR lines (no closing quote), '/GDRDMA(PCI)/Shared' and a proxy rank, a channel without GDR.
COMPOSED = """\
h1:10:20 [0] NCCL INFO NCCL version 2.27.3+cuda12.9
h1:10:20 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_3:1:0:0/IB ; OOB eth0:10.0.0.1<0>
h1:10:20 [0] NCCL INFO NET/IB : GPU Direct RDMA (DMABUF) enabled for HCA 0 'mlx5_0
h1:10:20 [0] NCCL INFO NET/IB : GPU Direct RDMA Disabled for HCA 1 'mlx5_3' (no module)
h1:10:20 [0] NCCL INFO NET/NCCL RDMA Plugin v10 : GPU Direct RDMA Enabled for HCA 0 'mlx5_0'
h1:10:20 [0] NCCL INFO Using network IBext_v10
h1:10:20 [0] NCCL INFO Channel 00/0 : 0[0] -> 8[0] [send] via NET/IBext_v10/0(1)/GDRDMA(PCI)/Shared
h1:10:20 [1] NCCL INFO Channel 01/0 : 9[1] -> 1[1] [receive] via NET/IBext_v10/1
"""


def test_composed_lines() -> None:
    log = parse_nccl_log(COMPOSED)
    assert log.versions == ("2.27.3+cuda12.9",) and log.networks == ("IBext_v10",)
    assert log.ib_devices[0].devices == (ib(0, "mlx5_0"), ib(1, "mlx5_3"))
    assert log.ib_devices[0].relaxed_ordering is False and log.ib_devices[0].oob == "eth0:10.0.0.1<0>"
    assert [(g.net, g.hca, g.device, g.enabled, g.via, g.detail) for g in log.gdr] == [
        ("IB", 0, "mlx5_0", True, "DMABUF", None), ("IB", 1, "mlx5_3", False, None, "(no module)"),
        ("NCCL RDMA Plugin v10", 0, "mlx5_0", True, None, None)]
    send, receive = log.channels
    assert (send.net, send.net_device, send.proxy_rank, send.gdrdma, send.shared) == ("IBext_v10", 0, 1, True, True)
    assert (receive.gdrdma, receive.shared) == (False, False)
    assert log.gdr_in_use is False  # one NET channel without /GDRDMA


@pytest.mark.parametrize("text", ["", "garbage", "NCCL IN", "# nThread 1 nGpus 1", "NCCL_DEBUG=INFO ./all_reduce_perf"])
def test_raises_parse_error_with_raw_text(text: str) -> None:
    assert_refused(parse_nccl_log, text)


FRAGMENTS = ["h:1:2 [0] ", "[3] ", "host: ", "NCCL INFO ", "NCCL WARN ", "NCCL version 2.19.3+cuda12.3", "NET/IB : Using ",
             "[0]mlx5_0:1/IB ", "[RO]", "; OOB eth0:1.2.3.4<0>", "Using network IB", "NET/IB : No device found.",
             "GPU Direct RDMA Disabled for HCA 0 'mlx5_0'", "Channel 00/0 : 0[0] -> 1[1] [send] via NET/IB/0/GDRDMA",
             "NET/Socket : Using [0]lo:127.0.0.1<0>", "misc/ibvwrap.cc:190 ", "\n", " ", "'", "/"]


@settings(max_examples=200)
@given(garbage(FRAGMENTS))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    log = parsed_or_refused(parse_nccl_log, text)
    if log is None:
        return
    assert log.gdr_in_use in (None, True, False)
