"""Table-driven tests of ibconform.parsers.sandbox against captured FailedCreatePodSandBox events.

Rows marked "composed" build messages from Multus' formats (pkg/multus/multus.go cmdPluginErr, cmdErr) and
nv-ipam's errors for shapes with no public capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings

from ibconform.errors import ParseError
from ibconform.parsers.sandbox import IbSriovCniFailure, ib_sriov_cni_failure, parse_sandbox_failure
from tests.fuzz import assert_refused, garbage, parsed_or_refused
from tests.unit.samples import sample

THICK_WRAPPED = "k8s-event-failedcreatepodsandbox-ib-sriov-guid-not-valid-dgx-h200-network-operator-issue1825"
THIN = "k8s-event-failedcreatepodsandbox-ib-sriov-guid-not-valid-whereabouts-sriov-operator-issue307"
IB_KUBERNETES = "k8s-event-ib-sriov-cni-ib-kubernetes-status-not-configured-ib-kubernetes-issue98"

SANDBOX = "0123456789abcdef" * 4
KUBELET = f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "{SANDBOX}": '


@dataclass(frozen=True)
class Failure:
    sandbox_id: str | None
    cni_plugin: str | None
    namespace: str | None
    pod: str | None
    pod_uid: str | None
    network: str | None
    cni_message: str
    ib_sriov: IbSriovCniFailure | None = None


CASES = [
    # Multus thick, the terminal wrapped the line inside the sandbox id and inside 'ibp1|92s0'.
    pytest.param(sample(THICK_WRAPPED),
                 Failure("de0d2174b993dc3373f1d255cb1870691f93df3bc005aacee1646c56524cbed3", "multus", "test-nccl",
                         "nccltest-worker-1", "cc41464d-185f-48ff-9f7a-48e88a380320", "ibp192s0",
                         'infiniBand SRI-OV CNI failed to configure VF "VF ibp192s0v10 GUID is not valid"',
                         IbSriovCniFailure("vf-guid-not-valid", "ibp192s0v10", "VF ibp192s0v10 GUID is not valid")),
                 id="network-operator-1825-thick-wrapped"),
    # Multus thin of 2022 ('[<ns>/<pod>:<net>]', no uid, no runtime wrapper), after a Normal event.
    pytest.param(sample(THIN),
                 Failure("88aee8b5e04d60a0fdfe9437888521e2f49a170b67ce574adf571f05f644bf74", None, "default",
                         "test-sriov-ib-pod", None, "example-sriov-ib-network",
                         'infiniBand SRI-OV CNI failed to configure VF "VF ib2 GUID is not valid"',
                         IbSriovCniFailure("vf-guid-not-valid", "ib2", "VF ib2 GUID is not valid")),
                 id="sriov-operator-307-thin"),
    # Composed: the ib-kubernetes text of ib-kubernetes issue 98 inside the event it would come in.
    pytest.param(f'{KUBELET}plugin type="multus" name="multus-cni-network" failed (add): [gpu/probe/0b8e:ibp24s0]: '
                 f'error adding container to network "ibp24s0": {sample(IB_KUBERNETES).strip()}',
                 Failure(SANDBOX, "multus", "gpu", "probe", "0b8e", "ibp24s0", sample(IB_KUBERNETES).strip(),
                         IbSriovCniFailure("ib-kubernetes", None, '''InfiniBand status "mellanox.infiniband.app" is not '''
                                           '''"configured" please check mellanox ib-kubernetes''')),
                 id="composed-ib-kubernetes-98"),
    # Composed: nv-ipam's exhausted pool, with a describe row and its '(x3 over 2m)' count.
    pytest.param(f"  Warning  FailedCreatePodSandBox  40s (x3 over 2m)  kubelet  {KUBELET}plugin type=\"multus\" "
                 'name="multus-cni-network" failed (add): [gpu/probe/0b8e:ibp24s0]: error adding container to network '
                 '"ibp24s0": failed to allocate IP address in pool "ibp24s0-pool", poolType "IPPool"\n',
                 Failure(SANDBOX, "multus", "gpu", "probe", "0b8e", "ibp24s0",
                         'failed to allocate IP address in pool "ibp24s0-pool", poolType "IPPool"'),
                 id="composed-nv-ipam-describe-row"),
    # Composed: Multus fails before adding any network (cmdErr: 'Multus: [<ns>/<pod>/<uid>]: ...').
    pytest.param(f'{KUBELET}plugin type="multus" name="multus-cni-network" failed (add): Multus: [gpu/probe/0b8e]: '
                 "error getting pod: pods \"probe\" not found",
                 Failure(SANDBOX, "multus", None, None, None, None,
                         'Multus: [gpu/probe/0b8e]: error getting pod: pods "probe" not found'),
                 id="composed-before-any-network"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse_sandbox_failure(text: str, expected: Failure) -> None:
    failure = parse_sandbox_failure(text)
    assert Failure(failure.sandbox_id, failure.cni_plugin, failure.namespace, failure.pod, failure.pod_uid,
                   failure.network, failure.cni_message, ib_sriov_cni_failure(failure.cni_message)) == expected
    assert failure.raw == text


def test_cni_text_alone_is_not_an_event() -> None:
    # ib-kubernetes issue 98 quotes the plugin's words without the event around them.
    text = sample(IB_KUBERNETES)
    with pytest.raises(ParseError) as raised:
        parse_sandbox_failure(text)
    assert raised.value.raw == text
    assert ib_sriov_cni_failure(text) == IbSriovCniFailure(
        "ib-kubernetes", None, 'InfiniBand status "mellanox.infiniband.app" is not "configured" please check mellanox '
        "ib-kubernetes")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('infiniBand SRI-OV CNI failed to configure VF "failed to set vf 3 link state to 1: operation not permitted"',
         IbSriovCniFailure("configure-vf", None, "failed to set vf 3 link state to 1: operation not permitted")),
        ("infiniband SRIOV-CNI failed, Unexpected error. GUID must be provided by ib-kubernetes",
         IbSriovCniFailure("ib-kubernetes", None, "Unexpected error. GUID must be provided by ib-kubernetes")),
        ('no free addresses in the pool "p", poolType "IPPool"', None),
        ("", None),
    ],
)
def test_ib_sriov_cni_failure(message: str, expected: IbSriovCniFailure | None) -> None:
    assert ib_sriov_cni_failure(message) == expected


@pytest.mark.parametrize("text", ["", "garbage", "Warning  FailedScheduling  5s  default-scheduler  0/8 nodes are available",
                                  sample(IB_KUBERNETES)])
def test_raises_parse_error_with_raw_text(text: str) -> None:
    assert_refused(parse_sandbox_failure, text)


FRAGMENTS = ["Failed to create pod sandbox: ", "rpc error: code = Unknown desc = ", "failed to setup network for sandbox ",
             f'"{SANDBOX}": ', 'plugin type="multus" name="multus-cni-network" failed (add): ', "[ns/pod/uid:net]: ",
             "[ns/pod:net]: ", 'error adding container to network "net": ', "Multus: ", "\n", "  Warning  X  1s  kubelet  ",
             "infiniBand SRI-OV CNI failed to configure VF ", '"VF ib0 GUID is not valid"', '"']


@settings(max_examples=200)
@given(garbage(FRAGMENTS))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    failure = parsed_or_refused(parse_sandbox_failure, text)
    if failure is None:
        return
    assert "\n" not in failure.cni_message
    ib_sriov_cni_failure(failure.cni_message)
