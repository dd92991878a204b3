"""Table-driven tests of ibconform.parsers.nccl_tests against captured nccl-tests output, one row per capture.

Rows marked "composed" follow nccl-tests' printf formats (src/util.cu writeResultHeader,
writeBenchmarkLinePreamble, writeBenchmarkLineBody, writePerIterReport, writeResultFooter) for options no
capture shows: -I 1 (per-iteration columns), -S 1 (timestamps), a -G threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings

from ibconform.errors import ParseError
from ibconform.parsers.nccl_tests import AvgBusBandwidth, Measurement, NcclTestsRun, RankDevice, parse_nccl_tests
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample, uncut

MODERN = ("size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong")
LEGACY = ("size", "count", "type", "redop", "time", "algbw", "busbw", "error")


@dataclass(frozen=True)
class Run:
    """What a row expects of one output."""

    version: str | None
    collective: str | None
    n_gpus: str | None
    ranks: int
    columns: tuple[str, ...]
    rows: int
    largest_size: int | None
    busbw_at_largest_size: float | None
    out_of_bounds: tuple[int, ...] = ()
    avg_busbw: tuple[float, ...] = ()


def summary(run: NcclTestsRun) -> Run:
    return Run(run.version, run.collective, run.parameters.get("nGpus"), len(run.devices), run.columns, len(run.rows),
               run.largest_size, run.busbw_at_largest_size, run.out_of_bounds,
               tuple(avg.value for avg in run.avg_bus_bandwidth))


CASES = [
    pytest.param("nccl-tests-all_gather_perf-v2.17-footer-dgx-spark-issue25",
                 Run("2.17.6", "all_gather_perf", "1", 2, MODERN, 1, 17179869184, 18.94, (0,)),
                 id="dgx-spark-25-all-gather-2.17-cut-at-avg"),
    pytest.param("nccl-tests-all_reduce_perf-aks-ndseries-sriov-ib-vf-2node-check0-aks-rdma-infiniband",
                 Run(None, None, None, 0, MODERN, 16, 8589934592, 187.05, (0,), (56.3994,)),
                 id="aks-ib-vf-2node-check0-na"),
    pytest.param("nccl-tests-all_reduce_perf-h100-2node-a3mega",
                 Run(None, None, "1", 16, MODERN, 31, 8589934592, 337.35, (0,), (70.742,)), id="a3mega-h100-2node"),
    # Legacy build under mpirun: each process printed its own banner and header; the index cut the second.
    pytest.param("nccl-tests-all_reduce_perf-legacy-error-column-issue107",
                 Run(None, None, "1", 2, LEGACY, 0, None, None), id="nccl-tests-107-legacy-error-column"),
    pytest.param("nccl-tests-all_reduce_perf-net-ib-no-device-found-socket-fallback-v2.21-nccl-tests-issue217",
                 Run(None, None, "1", 1, (), 0, None, None), id="nccl-tests-217-banner-and-log"),
    pytest.param("nccl-tests-all_reduce_perf-v2.20-header-dgx-spark-pr103",
                 Run("2.20.0", "all_reduce_perf", "1", 2, MODERN, 4, 65536, 0.96), id="dgx-spark-103-2.20-cut"),
    pytest.param("nccl-tests-header-right-aligned-hostname-step-bytes-h100-2node-nccl-tests-issue252",
                 Run(None, None, "1", 8, (), 0, None, None), id="nccl-tests-252-right-aligned-host"),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_parse_nccl_tests(name: str, expected: Run) -> None:
    assert summary(parse_nccl_tests(uncut(sample(name)))) == expected


def test_rows_read_by_column_name() -> None:
    run = parse_nccl_tests(sample("nccl-tests-all_reduce_perf-h100-2node-a3mega"))
    first, last = run.rows[0], run.rows[-1]
    assert (first.size, first.count, first.type, first.redop, first.root) == (8, 2, "float", "sum", -1)
    assert first.out_of_place == Measurement(time_us=135.8, algbw=0.0, busbw=0.0, wrong=0)
    assert last.in_place == Measurement(time_us=47743.0, algbw=179.92, busbw=337.35, wrong=0)
    assert run.parameters["step"] == "2(factor)" and run.parameters["warmup iters"] == "5"
    assert run.devices[15] == RankDevice(rank=15, group=0, pid=6740, host="ztan-mig-gq73", device=7, bus_id="0000:8c:00",
                                         name="NVIDIA H100 80GB HBM3")


def test_validation_off_reads_as_unknown_wrong() -> None:
    run = parse_nccl_tests(uncut(sample("nccl-tests-all_reduce_perf-aks-ndseries-sriov-ib-vf-2node-check0-aks-rdma-infiniband")))
    assert {row.out_of_place.wrong for row in run.rows} == {None}
    assert run.rows[-1].out_of_place.busbw == 187.22  # the AKS document's pass rule reads the last busbw (>= 180)


def test_legacy_rank_lines_and_parameters() -> None:
    run = parse_nccl_tests(sample("nccl-tests-all_reduce_perf-legacy-error-column-issue107"))
    assert [(d.rank, d.group, d.host, d.bus_id) for d in run.devices] == [
        (0, None, "ip-172-31-20-228", "0x00"), (0, None, "ip-172-31-22-230", "0x00")]
    assert run.parameters["step"] == "1048576(bytes)" and "agg iters" not in run.parameters


def test_right_aligned_and_redacted_host_names() -> None:
    hosts = {d.host for d in parse_nccl_tests(sample(
        "nccl-tests-header-right-aligned-hostname-step-bytes-h100-2node-nccl-tests-issue252")).devices}
    assert hosts == {"kolyoz1", "kolyoz2"}
    spark = parse_nccl_tests(sample("nccl-tests-all_gather_perf-v2.17-footer-dgx-spark-issue25"))
    assert [d.host for d in spark.devices] == ["spark", "spark-3995"]


def test_rows_without_a_header_are_refused() -> None:
    # aks-rdma-infiniband issue 30: the index kept the rows but not the header above them.
    text = sample("nccl-tests-mpijob-pods-nccl-2.25-bootstrap-colon-format-aks-rdma-infiniband-issue30")
    with pytest.raises(ParseError, match="before any column header") as raised:
        parse_nccl_tests(text)
    assert raised.value.raw == text


# Composed: '-I 1 -S 1' (per-iteration columns, timestamp) and a '-G' threshold, two ranks each printing a footer.
PER_ITER = """\
# nccl-tests version 2.18.0 (abc1234) nccl-headers=22803 nccl-library=22803
# Collective test starting: all_reduce_perf
# nThread 1 nGpus 8 minBytes 1073741824 maxBytes 2147483648 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0 unalign: 0
#
#                                           out-of-place (+ per-iteration)                                in-place (+ per-iteration)
#       size         count      type   redop    root     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%           timestamp
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)     (us)  (GB/s)  (GB/s)             (us)     (us)     (us)      (%)   %Y-%m-%d %H:%M:%S
  1073741824     268435456     float     sum      -1   6759.0  158.86  297.86       0   6701.2   6802.5   6799.9     0.42   6737.4  159.37  298.82       0   6700.1   6790.0   6788.8     0.40  2026-05-04 10:11:12
  2147483648     536870912     float     sum      -1    12646  169.81  318.40   1e+06    12600    12700    12690     0.31    12641  169.88  318.52       0    12611    12699    12688     0.29  2026-05-04 10:11:13
# Out of bounds values : 1000000 FAILED
# Avg bus bandwidth    : 308.4 OK
#
# Collective test concluded: all_reduce_perf
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 308.4 OK
"""


def test_composed_per_iteration_and_timestamp_columns() -> None:
    run = parse_nccl_tests(PER_ITER)
    assert run.version == "2.18.0" and run.parameters["nGpus"] == "8" and run.parameters["unalign"] == "0"
    assert run.columns[-1] == "timestamp" and run.columns.count("i_cv%") == 2
    first, second = run.rows
    assert first.out_of_place.extra == {"i_min": 6701.2, "i_max": 6802.5, "i_p99": 6799.9, "i_cv%": 0.42}
    assert first.timestamp == "2026-05-04 10:11:12"
    assert second.out_of_place.wrong == 1000000 and second.in_place.wrong == 0
    assert run.out_of_bounds == (1000000, 0)
    assert run.avg_bus_bandwidth == (AvgBusBandwidth(308.4, "OK"), AvgBusBandwidth(308.4, "OK"))
    assert run.busbw_at_largest_size == 318.40


@pytest.mark.parametrize(
    "text",
    [
        "", "garbage\n", "# nothing of nccl-tests\n", "8 2 float sum -1 1.0 0.0 0.0 0\n",
        "#  size  count  type  redop  root  time  algbw  busbw\n",
        "#  size  count  type  time  algbw  busbw  #wrong\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong  time  algbw  busbw  #wrong  time  algbw  busbw  #wrong\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong\n8  2  float  sum  -1  1.0  0.0\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong\n8  2  float  sum  -1  1.0  fast  0.0  0\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong\n8  2  float  sum  x  1.0  0.0  0.0  0\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong\n8  2  float  sum  -1  1.0  0.0  0.0  -1\n",
        "#  size  count  type  redop  root  time  algbw  busbw  #wrong\n8  2  float  sum  -1  1_0  0.0  0.0  0\n",
        "# Avg bus bandwidth    : fast\n",
    ],
)
def test_raises_parse_error_with_raw_text(text: str) -> None:
    assert_refused(parse_nccl_tests, text)


FRAGMENTS = ["#", " ", "  ", "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "error",
             "i_min", "timestamp", "8", "2", "float", "sum", "-1", "1.5", "N/A", "1e+06", "inf", "nan", "\n",
             "# nThread 1 nGpus 1", "# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 70.742 ",
             "#  Rank  0 Group  0 Pid 1 on h device  0 [0x01] GPU"]


@settings(max_examples=200)
@given(garbage(FRAGMENTS))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    run = parsed_or_refused(parse_nccl_tests, text)
    if run is None:
        return
    assert run.busbw_at_largest_size is None or isinstance(run.busbw_at_largest_size, float)
