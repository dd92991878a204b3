"""Expectations from SriovNetworkNodePolicies: pure functions over untrusted API JSON."""

import pytest

from ibconform import policies

GPU = {"nvidia.com/gpu.present": "true", "kubernetes.io/hostname": "dgx030"}


def policy(name, *, pf_names=None, root_devices=None, num_vfs=8, selector=None, priority=None, link="ib",
           resource=None):
    spec = {"resourceName": resource or f"res{name}", "numVfs": num_vfs, "linkType": link,
            "nodeSelector": selector if selector is not None else {"nvidia.com/gpu.present": "true"},
            "nicSelector": {"vendor": "15b3", "pfNames": pf_names or [], "rootDevices": root_devices or []}}
    if priority is not None:
        spec["priority"] = priority
    return {"metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(("entry", "expected"), [
    ("ibp24s0", ("ibp24s0", None)),
    ("ibp24s0#0-3", ("ibp24s0", (0, 3))),
    ("ibp24s0#4-7", ("ibp24s0", (4, 7))),
    ("  ibp24s0  ", ("ibp24s0", None)),
    ("ibp24s0#", None),
    ("ibp24s0#a-b", None),
    ("", None),
    (42, None),
])
def test_pf_names_with_vf_ranges(entry, expected):
    assert policies.parse_pf_name(entry) == expected


def test_match_by_pf_name_range_and_root_device_highest_priority_first():
    found = policies.matches([
        policy("low", pf_names=["ibp24s0#0-3"], priority=90),
        policy("high", root_devices=["0000:18:00.0"], priority=10, num_vfs=4),
        policy("other", pf_names=["ibp64s0"]),
    ], GPU, "ibp24s0", "0000:18:00.0")
    assert [m.name for m in found] == ["high", "low"]
    assert found[1].vf_range == (0, 3) and found[0].num_vfs == 4 and found[1].link_type == "IB"


def test_node_selector_must_match_every_label():
    only_031 = policy("p", pf_names=["ibp24s0"], selector={"kubernetes.io/hostname": "dgx031"})
    assert policies.matches([only_031], GPU, "ibp24s0", "0000:18:00.0") == []


@pytest.mark.parametrize("garbage", [
    None, "x", [None, 1, "s"], [{"spec": None}], [{"spec": {"nicSelector": "x", "nodeSelector": []}}],
    [{"metadata": None, "spec": {"nicSelector": {"pfNames": "ibp24s0"}, "numVfs": "8", "priority": "x"}}],
])
def test_malformed_policies_never_raise(garbage):
    assert policies.matches(garbage, GPU, "ibp24s0", "0000:18:00.0") == []


def test_wrongly_typed_fields_are_ignored_not_trusted():
    p = policy("p", pf_names=["ibp24s0"])
    p["spec"]["numVfs"] = True
    p["spec"]["resourceName"] = ["x"]
    (found,) = policies.matches([p], GPU, "ibp24s0", "0000:18:00.0")
    assert found.num_vfs is None and found.resource_name is None


def test_resource_names_are_prefixed_and_unique():
    found = policies.matches([policy("a", pf_names=["ibp24s0"], resource="resibp24s0"),
                              policy("b", pf_names=["ibp24s0"], resource="resibp24s0")], GPU, "ibp24s0", "x")
    assert policies.resource_names(found, "nvidia.com") == ["nvidia.com/resibp24s0"]
