"""Table-driven tests of the in-pod judges (ibconform/inpod.py), one row per captured sample in tests/samples/,
parsed by the project's parsers as the checks parse the probe's log."""

from __future__ import annotations

import json

import pytest

from ibconform import inpod
from ibconform.parsers.limits import parse_capabilities, parse_memlock_limit
from ibconform.parsers.multus import parse_network_status
from ibconform.parsers.nccl import parse_nccl_log
from ibconform.parsers.nccl_tests import parse_nccl_tests
from ibconform.parsers.sandbox import parse_sandbox_failure
from ibconform.parsers.verbs import parse_devinfo
from tests.unit.samples import sample, uncut


@pytest.mark.parametrize(("name", "devices", "problems"), [
    ("ibv_devinfo-cx7-vf-port-init-zero-node-guid-network-operator-issue1646", ["mlx5_7"],
     ["mlx5_7: node_guid 0000:0000:0000:0000", "mlx5_7: sys_image_guid a088::c203:005b:370c",
      "mlx5_7: port 1 PORT_INIT (2)"]),
    ("ibv_devinfo-cx7-pf-port-down-container-deepep-issue60", ["mlx5_0"],
     ["mlx5_0: port 1 PORT_DOWN (1)", "mlx5_0: sm_lid 0"]),
    ("ibv_devinfo-no-ib-devices-found-missing-provider-infra-controller-pr5251", ["mlx5_4"],
     ["mlx5_4: ibv_devinfo No IB devices found"]),
])
def test_port_problems(name, devices, problems):
    assert inpod.port_problems(parse_devinfo(uncut(sample(name))), devices) == problems


@pytest.mark.parametrize(("name", "minimum", "problem"), [
    ("proc-limits-max-locked-memory-65536-container-pid1-trailing-spaces", None, "65536 bytes (unlimited expected)"),
    ("proc-limits-max-locked-memory-65536-container-pid1-trailing-spaces", 65536, None),
    ("proc-limits-max-locked-memory-65536-container-pid1-trailing-spaces", 1 << 30, "65536 bytes"),
    ("proc-limits-max-locked-memory-unlimited-no-trailing-spaces", None, None),
])
def test_memlock_problem(name, minimum, problem):
    found = inpod.memlock_problem(parse_memlock_limit(sample(name)), minimum)
    assert found == problem or (problem and found.startswith(problem)), found


def test_ipc_lock_problem():
    name = "capsh-print-and-proc-status-cap-docker-default-no-ipc-lock"
    assert inpod.ipc_lock_problem(parse_capabilities(sample(name))) == "CAP_IPC_LOCK not in CapEff"
    assert inpod.ipc_lock_problem(parse_capabilities("CapEff:\t00000000a80465fb\n")) is None   # with IPC_LOCK added
    assert inpod.ipc_lock_problem(parse_capabilities("CapPrm:\t00000000a80465fb\n")) == \
        "CapEff absent from /proc/self/status"


@pytest.mark.parametrize(("name", "transport", "gdr"), [
    ("nccl-tests-all_reduce_perf-net-ib-no-device-found-socket-fallback-v2.21-nccl-tests-issue217",
     "NET/Socket over lo (NET/IB : No device found)", "no GPU Direct RDMA line and no NET channel in the NCCL log"),
    ("nccl-info-gpu-direct-rdma-disabled-dgx-os-25.01-nccl-issue1676",      # an excerpt: no transport line
     "no 'Using network' line and no NET channel in the NCCL log",
     "GPU Direct RDMA Disabled for HCA 0 'mlx5_0', 1 'mlx5_1', 2 'mlx5_2'"),
    ("nccl-info-channel-via-net-ib-gdrdma-and-p2p-ipc-8gpu-node-sglang-issue4289", None, None),
    ("nccl-info-net-ib-ro-using-network-ib-k8s-containers-nccl-issue1536", None,
     "no GPU Direct RDMA line and no NET channel in the NCCL log"),
])
def test_transport_and_gdr_problems(name, transport, gdr):
    log = parse_nccl_log(sample(name))
    assert inpod.transport_problem(log) == transport
    found = inpod.gdr_problem(log)
    assert found == gdr or (gdr and found and found.startswith(gdr)), found


@pytest.mark.parametrize(("name", "busbw", "minimum", "problem"), [
    ("nccl-tests-all_reduce_perf-h100-2node-a3mega", 70.742, None, None),
    ("nccl-tests-all_reduce_perf-h100-2node-a3mega", 70.742, 70.0, None),
    ("nccl-tests-all_reduce_perf-h100-2node-a3mega", 70.742, 100.0, "70.742 GB/s"),
    ("nccl-tests-all_reduce_perf-net-ib-no-device-found-socket-fallback-v2.21-nccl-tests-issue217", None, None,
     "no '# Avg bus bandwidth' line"),
])
def test_bandwidth_problem(name, busbw, minimum, problem):
    measured = inpod.bandwidth_of(parse_nccl_tests(uncut(sample(name))))
    assert measured == busbw
    assert inpod.bandwidth_problem(measured, minimum) == problem


def _network_status(name: str) -> str:
    """The annotation's value from a 'kubectl describe'-style capture: the JSON after its key line."""
    text = sample(name)
    return text[text.index("["):]


@pytest.mark.parametrize(("requested", "problems"), [
    ([("default", "sriov-net1")], []),
    ([("default", "sriov-net1"), ("default", "ib-net2")], ["default/ib-net2 not in network-status"]),
    ([("other", "sriov-net1")], ["other/sriov-net1 not in network-status"]),
])
def test_attachment_problems(requested, problems):
    statuses = parse_network_status(_network_status("k8s-network-status-annotation-rdma-device-tabs-sriov-dp-pr530"))
    assert inpod.attachment_problems(requested, statuses) == problems


def test_an_entry_without_device_info_is_not_attached_as_a_vf():
    text = json.dumps([{"name": "default/ib-net", "interface": "net1", "ips": ["10.0.0.2"]}])
    assert inpod.attachment_problems([("default", "ib-net")], parse_network_status(text)) == [
        "default/ib-net (net1) without device-info PCI address"]


@pytest.mark.parametrize(("ips", "block", "problem"), [
    (["10.56.217.2"], "10.56.217.1-10.56.217.24", None),         # the pr530 sample's address in an IPPool block
    (["10.56.217.30"], "10.56.217.1-10.56.217.24", "10.56.217.30 outside the node's block 10.56.217.1-10.56.217.24"),
    (["10.10.1.2"], "10.10.1.0/24", None),                        # a CIDRPool's per-node prefix
    (["10.10.2.2"], "10.10.1.0/24", "10.10.2.2 outside the node's block 10.10.1.0/24"),
    ([], "10.10.1.0/24", "no address"),
    (["10.10.1.2"], None, "10.10.1.2: the pool has no block for the node"),
    (["10.10.1.2"], "nonsense-here", "10.10.1.2: the pool's block 'nonsense-here' is not an address range"),
])
def test_address_problem(ips, block, problem):
    assert inpod.address_problem(ips, block) == problem


def test_vf_problem():
    vfs = {"ibp24s0": {0: "0000:18:00.1", 1: "0000:18:00.2"}}
    assert inpod.vf_problem("0000:18:00.2", vfs) is None
    assert inpod.vf_problem("0000:03:00.3", vfs) == "0000:03:00.3 is not a VF of ibp24s0"


def test_uverbs_problems():
    ibdev = {"uverbs4": "mlx5_4", "uverbs5": "mlx5_5"}
    assert inpod.uverbs_problems(["mlx5_4"], "rdma_cm\nuverbs4\n", ibdev) == []
    assert inpod.uverbs_problems(["mlx5_4", "mlx5_5"], "rdma_cm\nuverbs4\n", ibdev) == [
        "mlx5_5 has no /dev/infiniband/uverbs node"]
    assert inpod.uverbs_problems(["mlx5_4"], None, ibdev) == ["mlx5_4 has no /dev/infiniband/uverbs node"]


def test_a_cni_failure_in_the_cnis_own_words():
    failure = parse_sandbox_failure(sample(
        "k8s-event-failedcreatepodsandbox-ib-sriov-guid-not-valid-dgx-h200-network-operator-issue1825"))
    assert inpod.cni_failure_text(failure) == (
        'network "ibp192s0": infiniBand SRI-OV CNI failed to configure VF "VF ibp192s0v10 GUID is not valid"')
    assert inpod.missing_definition(failure.cni_message) is None
