"""Any pytest-testinfra hostspec as a transport (``local://``, ``kubectl://...``, ``ansible://...``).

The script is passed as ``sh -c SCRIPT`` (testinfra has no stdin) and bounded on the node by
coreutils ``timeout``, since testinfra backends have no deadline of their own.
"""

from __future__ import annotations

import testinfra

from ibconform.errors import TransportError
from ibconform.inventory import Inventory, Node
from ibconform.transports import CommandResult, register

_TIMED_OUT = (124, 137)


@register("testinfra")
class TestinfraTransport:
    """Runs the node script through ``testinfra.get_host(hostspec)``."""

    name = "testinfra"

    def __init__(self, node: Node, inventory: Inventory) -> None:
        self.hostspec = node.transport.replace("{node}", node.name)
        self.sudo = inventory.model.ssh.sudo
        self.host = None

    def run(self, script: str, timeout: float) -> CommandResult:
        try:
            if self.host is None:
                self.host = testinfra.get_host(self.hostspec, sudo=self.sudo)
            result = self.host.run("timeout -k 5 %s sh -c %s", f"{timeout:g}", script)
        except Exception as exc:  # testinfra backends raise their own types; all mean "not reached"
            raise TransportError(f"{self.hostspec}: {type(exc).__name__}: {exc}") from None
        if result.rc in _TIMED_OUT and not result.stdout:
            raise TransportError(f"node script did not finish within {timeout:g} s (command timeout)")
        return CommandResult(result.rc, result.stdout, result.stderr)

    def close(self) -> None:
        self.host = None
