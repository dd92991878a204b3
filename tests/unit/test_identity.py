"""Which machine answered: machine-id first, else the names the Node goes by (managed clusters name Nodes by IP)."""

import pytest

from ibconform.identity import judge

MID = "4f1c0c6a3b9d4e27a1c2d3e4f5a6b7c8"


def node(name="dgx030", machine_id=MID, label=None, addresses=()):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": label or name}},
            "status": {"nodeInfo": {"machineID": machine_id},
                       "addresses": [{"type": t, "address": a} for t, a in addresses]}}


@pytest.mark.parametrize(("name", "hostname", "machine_id", "node_obj", "problem"), [
    ("dgx030", "dgx030", MID + "\n", node(), None),
    ("dgx030", "dgx030.cluster.local", None, node(), None),                 # FQDN vs short name
    ("dgx030", "dgx031", MID + "\n", node(), None),                          # machine-id is the stronger proof
    ("dgx030", "dgx030", "0" * 32 + "\n", node(),
     f"machine-id expected {MID} (Node dgx030 status.nodeInfo.machineID) vs {'0' * 32} on the host reached "
     "(uname -n 'dgx030')"),
    # a Node named by its IP (OKE-style), the host's name only in the Node's addresses
    ("10.0.10.5", "oke-gpu-1", None, node("10.0.10.5", addresses=[("InternalIP", "10.0.10.5"),
                                                                   ("Hostname", "oke-gpu-1")]), None),
    ("10.0.10.5", "oke-gpu-1", None, node("10.0.10.5", addresses=[("InternalIP", "10.0.10.5")]),
     "hostname expected 10.0.10.5 vs 'oke-gpu-1'"),
    ("10.0.10.5", "10.0.10.51", None, node("10.0.10.5"), "hostname expected 10.0.10.5 vs '10.0.10.51'"),
    ("dgx030", "dgx031", None, None, "hostname expected dgx030 vs 'dgx031'"),   # no cluster evidence
    ("dgx030", None, None, node(machine_id=None), "hostname expected dgx030 vs None"),
    ("dgx030", "dgx030", MID, {"status": "garbage", "metadata": []}, None),
])
def test_identity(name, hostname, machine_id, node_obj, problem):
    assert judge(name, hostname, machine_id, node_obj).problem == problem
