"""Policies rendered as the SR-IOV Network Operator renders them: pure functions over untrusted API JSON.

The table ``OPERATOR_CASES`` is the operator's own ``TestSriovNetworkNodePolicyApply`` (sriov-network-operator
``api/v1/helper_test.go`` at 249e2001), where a node state already holding a group from policy p2 gets policy
p1 applied. Here both are policies: the one applied first is named ``a-p2`` (the controller applies equal
priorities in name order, the lowest priority first), with the numVfs and range of the state's group.
"""

from pathlib import Path

import pytest
import yaml

from ibconform import policies

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"

NODE = {"feature.node.kubernetes.io/network-sriov.capable": "true"}
# newNodeState(): three Intel PFs (the operator's test data)
INTERFACES = [
    {"name": "ens803f0", "pciAddress": "0000:86:00.0", "vendor": "8086", "deviceID": "158b"},
    {"name": "ens803f1", "pciAddress": "0000:86:00.1", "vendor": "8086", "deviceID": "158b"},
    {"name": "ens803f2", "pciAddress": "0000:86:00.2", "vendor": "8086", "deviceID": "1015"},
]


def policy(name, *, pf_names=("ens803f1",), root_devices=("0000:86:00.1",), vendor="8086", device=None, num_vfs=2,
           priority=99, resource="p1res", selector=None, link=None):
    nic = {"pfNames": list(pf_names), "rootDevices": list(root_devices)}
    nic |= {"vendor": vendor} if vendor else {}
    nic |= {"deviceID": device} if device else {}
    spec = {"resourceName": resource, "numVfs": num_vfs, "priority": priority, "nicSelector": nic,
            "nodeSelector": NODE if selector is None else selector}
    spec |= {"linkType": link} if link else {}
    return {"metadata": {"name": name}, "spec": spec}


def p1():
    """newNodePolicy()"""
    return policy("p1")


def rendered(found):
    return {pci: (c.num_vfs, [(g.resource_name, g.first, g.last, g.policy) for g in c.groups])
            for pci, c in found.items()}


OPERATOR_CASES = {
    "starting config": ([p1()], {"0000:86:00.1": (2, [("p1res", 0, 1, "p1")])}),
    "one policy present different pf": (
        [policy("p2", pf_names=["ens803f0"], root_devices=[], resource="prevres", priority=99), p1()],
        {"0000:86:00.0": (2, [("prevres", 0, 1, "p2")]), "0000:86:00.1": (2, [("p1res", 0, 1, "p1")])}),
    "one policy present same pf different priority": (   # the later (higher priority) one replaces the PF's config
        [policy("p2", num_vfs=3, pf_names=["ens803f1#0-1"], resource="vfiores", priority=99),
         policy("p1", priority=10)],
        {"0000:86:00.1": (2, [("p1res", 0, 1, "p1")])}),
    "one policy present same pf same priority": (        # ranges overlap: the last stays, numVfs is merged
        [policy("a-p2", num_vfs=3, pf_names=["ens803f1#0-1"], resource="vfiores"), p1()],
        {"0000:86:00.1": (3, [("p1res", 0, 1, "p1")])}),
    "one policy present same pf same priority partitioning": (
        [policy("a-p2", num_vfs=5, pf_names=["ens803f1#2-4"], resource="vfiores"), p1()],
        {"0000:86:00.1": (5, [("p1res", 0, 1, "p1"), ("vfiores", 2, 4, "a-p2")])}),
    "one policy present same pf same priority same ResourceName": (
        [policy("a-p2", num_vfs=4, pf_names=["ens803f1#2-3"], resource="p1res"), p1()],
        {"0000:86:00.1": (4, [("p1res", 0, 1, "p1")])}),
    "one policy present same pf diff priority no overlap VFs": (
        [policy("p2", num_vfs=4, pf_names=["ens803f1#2-3"], resource="p2res", priority=99),
         policy("p1", priority=10)],
        {"0000:86:00.1": (4, [("p1res", 0, 1, "p1"), ("p2res", 2, 3, "p2")])}),
    "no selectors": ([policy("p1", pf_names=[], root_devices=[], vendor=None)], {}),
    "bad pf partition": ([policy("p1", pf_names=["ens803f0#a-c"], root_devices=[])], {}),
}


@pytest.mark.parametrize("case", OPERATOR_CASES)
def test_rendering_follows_the_operator(case):
    given, expected = OPERATOR_CASES[case]
    assert rendered(policies.render(given, NODE, INTERFACES)) == expected


def test_two_policies_overlapping_a_third_replace_both():
    # "two policy present same pf same priority overlap": groups 0-0 and 1-1 are both overlapped by p1's 0-1
    given = [policy("a-p2", num_vfs=2, pf_names=["ens803f1#0-0"], resource="vfiores1"),
             policy("a-p3", num_vfs=2, pf_names=["ens803f1#1-1"], resource="vfiores2"), p1()]
    assert rendered(policies.render(given, NODE, INTERFACES)) == {"0000:86:00.1": (2, [("p1res", 0, 1, "p1")])}


# -- the shapes of the field, on a DGX's ConnectX-7 PFs (vendor 15b3, PF device 1021)

DGX = [{"name": f"ibp{bus}s0", "pciAddress": f"0000:{bus:02x}:00.0", "vendor": "15b3", "deviceID": "1021"}
       for bus in (24, 64, 79, 94)] + [
    {"name": "ibp41s0f0", "pciAddress": "0000:29:00.0", "vendor": "15b3", "deviceID": "a2dc"}]   # BlueField-3
GPU = {"nvidia.com/gpu.present": "true", "kubernetes.io/hostname": "dgx030"}


def ib(name, *, pf_names=(), root_devices=(), device="1021", num_vfs=8, resource=None, priority=None,
       selector=None):
    nic = {"vendor": "15b3", **({"deviceID": device} if device else {}), "pfNames": list(pf_names),
           "rootDevices": list(root_devices)}
    spec = {"resourceName": resource or name, "numVfs": num_vfs, "linkType": "ib", "isRdma": True,
            "nicSelector": nic, "nodeSelector": {"nvidia.com/gpu.present": "true"} if selector is None else selector}
    spec |= {} if priority is None else {"priority": priority}
    return {"metadata": {"name": name}, "spec": spec}


def test_one_resource_pooling_every_pf_sums_their_vfs():
    pooled = ib("ib-pool", pf_names=["ibp24s0", "ibp64s0", "ibp79s0", "ibp94s0"])
    shares = policies.resource_shares(policies.render([pooled], GPU, DGX), "nvidia.com")
    assert shares == {"nvidia.com/ib-pool": {"0000:18:00.0": 8, "0000:40:00.0": 8, "0000:4f:00.0": 8,
                                             "0000:5e:00.0": 8}}


def test_a_vendor_and_device_selector_alone_selects_every_such_pf_but_not_the_dpu():
    found = policies.render([ib("all-cx7")], GPU, DGX)
    assert sorted(found) == ["0000:18:00.0", "0000:40:00.0", "0000:4f:00.0", "0000:5e:00.0"]


def test_two_policies_sharing_a_resource_name_add_up():
    given = [ib("pool-a", pf_names=["ibp24s0"], resource="ib"), ib("pool-b", root_devices=["0000:40:00.0"],
                                                                     resource="ib")]
    assert policies.resource_shares(policies.render(given, GPU, DGX), "nvidia.com") == {
        "nvidia.com/ib": {"0000:18:00.0": 8, "0000:40:00.0": 8}}


def test_a_partitioned_pf_feeds_one_resource_per_range():
    given = [ib("low", pf_names=["ibp24s0#0-3"], resource="ib_low"),
             ib("high", pf_names=["ibp24s0#4-7"], resource="ib_high")]
    found = policies.render(given, GPU, DGX)
    assert rendered(found) == {"0000:18:00.0": (8, [("ib_low", 0, 3, "low"), ("ib_high", 4, 7, "high")])}
    assert policies.resource_shares(found, "nvidia.com") == {
        "nvidia.com/ib_high": {"0000:18:00.0": 4}, "nvidia.com/ib_low": {"0000:18:00.0": 4}}


def test_criteria_are_anded_a_pf_name_with_another_root_device_selects_nothing():
    assert policies.render([ib("p", pf_names=["ibp24s0"], root_devices=["0000:40:00.0"])], GPU, DGX) == {}


def test_an_unset_priority_is_zero_the_highest():
    # the CRD has no default (only the operator's webhook, off in the Network Operator, writes 99)
    given = [ib("zz-unset", pf_names=["ibp24s0"], num_vfs=4), ib("aa-ninety", pf_names=["ibp24s0"], priority=90)]
    assert rendered(policies.render(given, GPU, DGX))["0000:18:00.0"] == (4, [("zz-unset", 0, 3, "zz-unset")])


def test_the_default_policy_and_unselected_nodes_are_ignored():
    given = [ib("default", pf_names=["ibp24s0"]), ib("other-node", pf_names=["ibp24s0"],
                                                  selector={"kubernetes.io/hostname": "dgx031"})]
    assert policies.render(given, GPU, DGX) == {}


@pytest.mark.parametrize(("entry", "expected"), [
    ("ibp24s0", ("ibp24s0", None)),
    ("ibp24s0#0-3", ("ibp24s0", (0, 3))),
    ("  ibp24s0  ", ("ibp24s0", None)),
    ("ibp24s0#", None),
    ("ibp24s0#a-b", None),
    ("", None),
    (42, None),
])
def test_pf_names_with_vf_ranges(entry, expected):
    assert policies.parse_pf_name(entry) == expected


@pytest.mark.parametrize("garbage", [
    None, "x", [None, 1, "s"], [{"spec": None}], [{"spec": {"nicSelector": "x", "nodeSelector": []}}],
    [{"metadata": None, "spec": {"nicSelector": {"pfNames": "ibp24s0"}, "numVfs": "8", "priority": "x"}}],
    [{"metadata": {"name": "p"}, "spec": {"nicSelector": {"pfNames": [None, 3]}, "numVfs": True,
                                          "resourceName": ["x"]}}],
])
def test_malformed_policies_never_raise(garbage):
    assert policies.render(garbage, GPU, DGX) == {}


def test_malformed_interfaces_are_skipped():
    assert policies.render([ib("p", pf_names=["ibp24s0"])], GPU, [None, "x", {"name": "ibp24s0"}, *DGX[:1]]) \
        .keys() == {"0000:18:00.0"}


def test_a_real_network_operator_25_10_node_state_is_rendered_as_the_operator_rendered_it():
    capture = yaml.safe_load((CAPTURES / "sriovnetworknodestate-no-25.10-ib-pooled-issue1046.yaml").read_text())
    labels = {}     # the example policy has no nodeSelector: every node
    found = policies.render([capture["policy"]], labels, capture["status_interfaces"])
    for spec in capture["spec_interfaces"]:
        config = found[spec["pciAddress"]]
        assert (config.name, config.num_vfs, config.link_type) == (spec["name"], spec["numVfs"], spec["linkType"])
        assert [(g.policy, g.resource_name, f"{g.first}-{g.last}") for g in config.groups] == [
            (g["policyName"], g["resourceName"], g["vfRange"]) for g in spec["vfGroups"]]
    # one resource pooling every PF: its allocatable is the sum, one VF each
    assert policies.resource_shares(found, "nvidia.com") == {"nvidia.com/mlnxnics": dict.fromkeys(
        ["0000:03:00.0", "0000:85:00.0", "0000:ea:00.0", "0000:f7:00.0"], 1)}


def test_without_the_node_states_ids_the_inventorys_devices_are_judged_by_name_and_address():
    inventory = [{"name": "ibp24s0", "pciAddress": "0000:18:00.0"}]
    assert rendered(policies.render([ib("p", pf_names=["ibp24s0"])], GPU, inventory)) == {
        "0000:18:00.0": (8, [("p", 0, 7, "p")])}
    assert policies.render([ib("p", pf_names=["ibp64s0"])], GPU, inventory) == {}
