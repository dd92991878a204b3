"""Link nccl of the chain: all_reduce_perf on the node's GPUs, with P2P and SHM off so every byte crosses its VFs,
runs over InfiniBand with GPUDirect RDMA at the expected bus bandwidth (NCCL_DEBUG=INFO and nccl-tests' table).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform import inpod
from ibconform.errors import ParseError
from ibconform.parsers.nccl import parse_nccl_log
from ibconform.parsers.nccl_tests import parse_nccl_tests
from ibconform.probe_facts import ProbeFacts

pytestmark = [pytest.mark.link("nccl"), pytest.mark.cluster_lists("nodes")]


def _log(probe):
    text, code = probe.output("nccl")
    try:
        return parse_nccl_log(text), text, code
    except ParseError:
        tail = " | ".join(text.strip().splitlines()[-2:])[:300] or "no output"
        raise AssertionError(f"{probe} NCCL_DEBUG=INFO log expected vs none (all_reduce_perf exit {code}: {tail}): "
                             "is nccl-tests in probe.image?") from None


def test_nccl_transport_ib(node_object):
    probe = ProbeFacts.require(node_object, "nccl")
    log, _, _ = _log(probe)
    problem = inpod.transport_problem(log)
    assert problem is None, (f"{probe} NCCL over NET/IB expected vs {problem}: NCCL sees no usable HCA — check "
                             "rdma_uverbs and NCCL_IB_HCA")


def test_nccl_gdr(node_object):
    probe = ProbeFacts.require(node_object, "nccl")
    if not node_object.node.expect.nccl_gdr:
        pytest.skip("inventory expect.ncclGdr false: GPUDirect RDMA not required")
    log, _, _ = _log(probe)
    problem = inpod.gdr_problem(log)
    assert problem is None, (f"{probe} GPUDirect RDMA expected vs {problem}: load nvidia-peermem (or use DMA-BUF) "
                             "and check the GPU-HCA PCIe topology (ACS)")


def test_nccl_bus_bandwidth(node_object, request):
    probe = ProbeFacts.require(node_object, "nccl")
    _, text, code = _log(probe)
    try:
        run = parse_nccl_tests(text)
    except ParseError as exc:
        raise AssertionError(f"{probe} all_reduce_perf table expected vs {str(exc).splitlines()[0]} "
                             f"(exit {code})") from None
    busbw = inpod.bandwidth_of(run)
    if busbw is not None:
        # results.json keeps it with the verdict (the measurements of the item)
        request.node.user_properties.append(("measurement", {"nccl_bus_bandwidth": busbw}))
    minimum = node_object.node.expect.nccl_bus_bandwidth
    problem = inpod.bandwidth_problem(busbw, minimum)
    assert problem is None, (f"{probe} all_reduce_perf Avg bus bandwidth expected "
                             f"{'a value' if minimum is None else f'>= {minimum:g} GB/s'} vs {problem} (exit {code}): "
                             "a degraded HCA port or a PCIe link below its width — compare ib_port_active")
