"""Link rdma of the chain: inside the probe pod each attached VF is usable for RDMA — its uverbs node, its port
ACTIVE with an SM LID and GUIDs set, memlock high enough and CAP_IPC_LOCK held (the probe script's log).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform import inpod
from ibconform.errors import ParseError
from ibconform.parsers.limits import parse_capabilities, parse_memlock_limit
from ibconform.parsers.verbs import parse_devinfo
from ibconform.probe_facts import ProbeFacts

pytestmark = [pytest.mark.link("rdma"), pytest.mark.cluster_lists("nodes")]


def _devices(probe):
    """The RDMA devices of the attached VFs (network-status device-info), else those the pod's uverbs open."""
    statuses, _ = probe.network_status()
    found = [s.device_info.pci.rdma_device for s in statuses
             if s.device_info and s.device_info.pci and s.device_info.pci.rdma_device]
    return found or sorted(set(probe.uverbs_devices().values()))


def test_rdma_uverbs(node_object):
    probe = ProbeFacts.require(node_object, "rdma")
    listing, code = probe.output("ls", "/dev/infiniband")
    devices = _devices(probe)
    assert devices, (f"{probe} RDMA devices expected vs none (ls /dev/infiniband: {listing.strip() or 'empty'}): "
                     "the device plugin mounts the VFs' uverbs when its resource is isRdma")
    problems = inpod.uverbs_problems(devices, listing if code == 0 else None, probe.uverbs_devices())
    assert not problems, (f"{probe} a uverbs node per VF expected vs {inpod.summary(problems)}: set isRdma in the "
                          "SriovNetworkNodePolicy (the device plugin then mounts /dev/infiniband/uverbsN)")


def test_rdma_port_active(node_object):
    probe = ProbeFacts.require(node_object, "rdma")
    text, _ = probe.output("ibv_devinfo")
    try:
        devinfo = parse_devinfo(text)
    except ParseError as exc:
        raise AssertionError(f"{probe} ibv_devinfo expected vs unreadable: {str(exc).splitlines()[0]}") from None
    devices = _devices(probe) or [dev.hca_id for dev in devinfo.devices]
    assert devices, f"{probe} RDMA devices expected vs {'; '.join(devinfo.errors) or 'none'}: see rdma_uverbs"
    problems = inpod.port_problems(devinfo, devices)
    assert not problems, (f"{probe} VF ports PORT_ACTIVE with SM LID and GUIDs expected vs {inpod.summary(problems)}: "
                          "enable virtualization in the subnet manager (OpenSM virt_enabled 2, UFM) and check "
                          "the VF GUIDs")


def test_rdma_memlock(node_object):
    probe = ProbeFacts.require(node_object, "rdma")
    text, _ = probe.output("file", "/proc/self/limits")
    try:
        limit = parse_memlock_limit(text)
    except ParseError as exc:
        raise AssertionError(f"{probe} /proc/self/limits expected vs unreadable: {str(exc).splitlines()[0]}") from None
    minimum = node_object.node.expect.memlock_min
    problem = inpod.memlock_problem(limit, minimum)
    assert problem is None, (f"{probe} Max locked memory expected {'unlimited' if minimum is None else minimum} vs "
                             f"{problem}: set LimitMEMLOCK=infinity for containerd/CRI-O (RDMA cannot register "
                             "memory: 'Couldn't allocate MR')")


def test_rdma_ipc_lock(node_object):
    probe = ProbeFacts.require(node_object, "rdma")
    text, _ = probe.output("file", "/proc/self/status")
    try:
        caps = parse_capabilities(text)
    except ParseError as exc:
        raise AssertionError(f"{probe} /proc/self/status expected vs unreadable: {str(exc).splitlines()[0]}") from None
    problem = inpod.ipc_lock_problem(caps)
    assert problem is None, (f"{probe} CAP_IPC_LOCK expected vs {problem}: the container's securityContext asks for "
                             "it; a PodSecurity or runtime policy dropped it")
