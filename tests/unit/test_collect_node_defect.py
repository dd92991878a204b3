"""A transport that raises something other than an ibconform error (a defect, or a library's surprise) ends
that node's collection with one line; it never escapes to stop the run's other nodes."""

from __future__ import annotations

from pathlib import Path

from ibconform import inventory, transports
from ibconform.collect.nodes import collect_node

INVENTORY = """\
format: ibconform/v1
cluster: c1
profiles:
  p:
    hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]
nodes:
  - {names: dgx030, profile: p, transport: defective}
"""


class _Defective:
    name = "defective"

    def __init__(self, node, inv) -> None:
        pass

    def run(self, script: str, timeout: float):
        raise IndexError("index out of range")

    def close(self) -> None:
        pass


def test_an_unexpected_exception_is_the_nodes_error(monkeypatch):
    monkeypatch.setitem(transports._REGISTRY, "defective", _Defective)
    inv = inventory.parse(INVENTORY, Path("inv.yaml"))
    status, output = collect_node(inv.nodes[0], inv)
    assert output is None and not status.reachable
    assert status.error == ("collection failed: IndexError: index out of range (an ibconform defect: please "
                            "report it)")
