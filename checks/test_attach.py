"""Link attach of the chain: the probe pod started with every requested network attached, each a VF of the expected
PF with an address from its nv-ipam pool (multus' network-status annotation; CNI failures in the CNI's own words).

PYTEST_DONT_REWRITE: messages are the checks' own one-liners.
"""

import pytest

from ibconform import inpod
from ibconform.probe_facts import ProbeFacts

pytestmark = [pytest.mark.link("attach"), pytest.mark.cluster_lists("nodes", "sriovibnetworks")]


def test_attach_network_defined(node_object):
    probe = ProbeFacts.require(node_object, "start", started=False)
    for failure in probe.sandbox_failures():
        missing = inpod.missing_definition(failure.cni_message)
        assert missing is None, (
            f"NetworkAttachmentDefinition {missing[0]}/{missing[1]} expected vs absent ({probe}): check the "
            f"SriovIBNetwork's networkNamespace and the SR-IOV operator's log (it renders the definition)")


def test_attach_sandbox_created(node_object):
    probe = ProbeFacts.require(node_object, "start", started=False)
    failures = [f for f in probe.sandbox_failures() if inpod.missing_definition(f.cni_message) is None]
    assert not failures, (f"{probe} network set-up expected vs CNI ADD failed: {inpod.cni_failure_text(failures[-1])}: "
                          "fix what the CNI names (an all-zero VF GUID: the VF facts on the node)")


def test_attach_networks_attached(node_object):
    probe = ProbeFacts.require(node_object, "start", started=False)
    assert probe.started, (f"{probe} expected Running vs {probe.record.get('outcome')}: {probe.record.get('message')}: "
                           "kubectl describe pod for its events")
    requested = probe.requested()
    if not requested:
        pytest.skip("the probe asks for no secondary network (no SriovIBNetwork for the node's resources)")
    statuses, error = probe.network_status()
    assert error is None, f"{probe} network-status expected vs {error}: is multus installed and the pod's CNI?"
    problems = inpod.attachment_problems(requested, statuses)
    assert not problems, (f"{probe} every requested network attached expected vs {inpod.summary(problems)}: see the "
                          "multus and SR-IOV CNI logs on the node")


def _attached(probe):
    statuses, _ = probe.network_status()
    attached = [s for s in statuses if not s.default and s.device_info and s.device_info.pci
                and s.device_info.pci.pci_address]
    if not attached:
        pytest.skip("no network attached: see attach_networks_attached")
    return attached


def test_attach_address_in_pool(node_object):
    probe = ProbeFacts.require(node_object, "start")
    problems = []
    for status in _attached(probe):
        use = probe.pool_of(status.network)
        if use is None:
            continue                       # a network without nv-ipam: no pool to hold it to
        problem = inpod.address_problem(status.ips, use.allocation)
        if problem:
            problems.append(f"{status.interface} ({status.network}) {problem} of {use}")
    assert not problems, (f"{probe} addresses from the node's nv-ipam block expected vs {inpod.summary(problems)}: "
                          "check the network's ipam poolName and the nv-ipam-node log")


@pytest.mark.node_evidence
def test_attach_vf_of_pf(node_object):
    probe = ProbeFacts.require(node_object, "start")
    problems = []
    for status in _attached(probe):
        pf_vfs = probe.pf_vfs(status.network)
        if pf_vfs is None:
            pytest.skip(f"{node_object} not reached over SSH: its VFs are unknown (see node_identity)")
        problem = inpod.vf_problem(status.device_info.pci.pci_address, pf_vfs)
        if problem:
            problems.append(f"{status.interface} ({status.network}) {problem}")
    assert not problems, (f"{probe} VFs of the network's PF expected vs {inpod.summary(problems)}: check the "
                          "SriovNetworkNodePolicy pfNames/rootDevices of the network's resource")
