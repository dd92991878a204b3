"""Components by their pods' labels, whichever namespace or deployment method put them there."""

import pytest

from ibconform import components


def pod(labels, image="img:1"):
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"image": image}]}}


@pytest.mark.parametrize(("labels", "component"), [
    ({"app": "sriov-network-config-daemon", "component": "network"}, "sriov-network-config-daemon"),
    ({"app": "sriov-device-plugin"}, "sriov-device-plugin"),
    ({"name": "sriov-network-operator"}, "sriov-network-operator"),
    ({"app.kubernetes.io/name": "network-operator", "control-plane": "network-operator-controller"}, "network-operator"),
    ({"control-plane": "nvidia-network-operator-controller"}, "network-operator"),          # OpenShift's bundle
    ({"app": "nv-ipam", "component": "nv-ipam-node", "name": "nv-ipam-node"}, "nv-ipam-node"),  # Network Operator
    ({"tier": "node", "app": "nvidia-k8s-ipam", "name": "nv-ipam-node"}, "nv-ipam-node"),   # standalone kustomize
    ({"app": "nvidia-k8s-ipam", "name": "controller"}, "nv-ipam-controller"),
    ({"name": "controller"}, None),                                                         # someone else's
    ({"app": "training"}, None),
])
def test_components_by_labels(labels, component):
    assert components.component_of(pod(labels)) == component


def test_images_per_component_each_once():
    pods = [pod({"app": "sriov-device-plugin"}, "a:1"), pod({"app": "sriov-device-plugin"}, "a:1"),
            pod({"app": "sriov-device-plugin"}, "a:2"), pod({"app": "x"}), None, "garbage"]
    assert components.images(pods) == {"sriov-device-plugin": ["a:1", "a:2"]}


@pytest.mark.parametrize(("image", "release"), [
    ("nvcr.io/nvidia/mellanox/sriov-network-operator:network-operator-v25.10.0", (25, 10)),
    ("nvcr.io/nvidia/mellanox/sriov-network-operator:network-operator-24.1.0-rc.3", (24, 1)),
    ("nvcr.io/nvidia/cloud-native/network-operator:v24.7.0", (24, 7)),
    ("ghcr.io/k8snetworkplumbingwg/sriov-network-operator-config-daemon:v1.3.0", (1, 3)),
    ("registry:5000/sriov-network-operator:latest", None),
    ("quay.io/x/sriov-network-operator@sha256:abcd", None),
])
def test_release_from_the_tag(image, release):
    assert components.release(image) == release
