"""NicClusterPolicy and nv-ipam judgements on real objects of several Network Operator releases."""

from pathlib import Path

import pytest
import yaml

from ibconform import nv_ipam
from ibconform.inventory import Expect

CAPTURES = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "captures" /
                           "nicclusterpolicies-several-releases.yaml").read_text())


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c["source"].split()[0].rsplit("/", 2)[-1][:40])
def test_nicclusterpolicies_of_several_releases(capture):
    problem = nv_ipam.policy_problem(capture["policy"], Expect(), False, "network-operator")
    if capture["problem"] is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(capture["problem"]), problem


def test_nv_ipam_installed_on_its_own_needs_no_spec_nv_ipam():
    without = {"spec": {"ofedDriver": {}}, "status": {"state": "ready"}}
    assert nv_ipam.policy_problem(without, Expect(), True, "kube-system") is None
    assert nv_ipam.policy_problem(without, Expect(), False, "kube-system").endswith(
        "where it runs)")


@pytest.mark.parametrize(("images", "pinned", "problem"), [
    (["nvcr.io/nvidia/mellanox/nvidia-k8s-ipam:network-operator-v25.10.0"], {}, None),
    (["ghcr.io/mellanox/nvidia-k8s-ipam:v0.3.7"], {}, None),                            # standalone install
    (["ghcr.io/mellanox/nv-ipam:v0.2.0"], {}, "image name expected nvidia-k8s-ipam vs nv-ipam"),
    (["ghcr.io/mellanox/nvidia-k8s-ipam:v0.3.7"], {"ipamVersion": "network-operator-v25.10.0"},
     "image tag expected network-operator-v25.10.0 vs v0.3.7"),
    ([], {}, "container expected vs none"),
])
def test_the_image_name_always_counts_repository_and_tag_only_when_pinned(images, pinned, problem):
    found = nv_ipam.image_problem(Expect(**pinned), images)
    assert (found is None) if problem is None else found.startswith(problem), found
