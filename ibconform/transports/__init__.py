"""Transports run the node script on a node and return one CommandResult.

A transport is named by the inventory's ``transport`` value: ``ssh`` (paramiko, strict host keys) or
any pytest-testinfra hostspec (``local://``, ``kubectl://pod?namespace=x``, ``ansible://host``) in which
``{node}`` is replaced by the node's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ibconform.errors import UsageError
from ibconform.inventory import Inventory, Node


@dataclass(frozen=True)
class CommandResult:
    """What one remote command returned.

    >>> CommandResult(0, "8\\n", "").succeeded
    True
    """

    exit_status: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0


class Transport(Protocol):
    """Runs a POSIX sh script on one node, with a deadline."""

    name: str

    def run(self, script: str, timeout: float) -> CommandResult: ...

    def close(self) -> None: ...


TransportFactory = Callable[[Node, Inventory], Transport]
_REGISTRY: dict[str, TransportFactory] = {}


def register(scheme: str) -> Callable[[TransportFactory], TransportFactory]:
    """Class decorator: make a transport available under ``scheme``."""

    def add(factory: TransportFactory) -> TransportFactory:
        _REGISTRY[scheme] = factory
        return factory

    return add


def scheme_of(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else spec


def for_node(node: Node, inventory: Inventory) -> Transport:
    """The transport the inventory names for ``node``."""
    from ibconform.transports import ssh, testinfra  # noqa: F401  (register themselves)

    scheme = scheme_of(node.transport)
    factory = _REGISTRY.get(scheme) or (_REGISTRY["testinfra"] if "://" in node.transport else None)
    if factory is None:
        raise UsageError(f"{inventory.path}: transport: unknown transport {node.transport!r} "
                         f"(expected 'ssh' or a pytest-testinfra hostspec such as 'local://')")
    return factory(node, inventory)
