"""Transports run the node script on a node and return one CommandResult.

A transport is named by the inventory's ``transport`` value: ``ssh`` (paramiko, strict host keys),
``config-daemon`` (Kubernetes exec into the node's sriov-network-config-daemon pod: no SSH at all), or any
pytest-testinfra hostspec (``local://``, ``kubectl://pod?namespace=x``, ``ansible://host``) in which ``{node}``
is replaced by the node's name. A run gets its transports from one ``Session``, so what a transport's nodes
share (the config-daemon pods, listed once) is made once per run.
"""

from __future__ import annotations

import threading
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


class PerRun(Protocol):
    """A transport made once per run (``register_per_run``), giving each node its own."""

    def for_node(self, node: Node) -> Transport: ...


TransportFactory = Callable[[Node, Inventory], Transport]
PerRunFactory = Callable[["Session"], PerRun]
_REGISTRY: dict[str, TransportFactory] = {}
_PER_RUN: dict[str, PerRunFactory] = {}


def register(scheme: str) -> Callable[[TransportFactory], TransportFactory]:
    """Class decorator: make a transport available under ``scheme``, made per node as ``cls(node, inventory)``."""

    def add(factory: TransportFactory) -> TransportFactory:
        _REGISTRY[scheme] = factory
        return factory

    return add


def register_per_run(scheme: str) -> Callable[[PerRunFactory], PerRunFactory]:
    """Class decorator: ``scheme``'s nodes share state; ``cls(session)`` is made once per run, on first use."""

    def add(factory: PerRunFactory) -> PerRunFactory:
        _PER_RUN[scheme] = factory
        return factory

    return add


def scheme_of(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else spec


class Session:
    """The transports of one collection run; ``kubeconfig``/``context`` (the command line's, None: the
    inventory's) reach the Kubernetes API for transports that go through it."""

    def __init__(self, inventory: Inventory, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.inventory, self.kubeconfig, self.context = inventory, kubeconfig, context
        self._lock = threading.Lock()
        self._per_run: dict[str, PerRun] = {}

    def for_node(self, node: Node) -> Transport:
        """The transport the inventory names for ``node``."""
        from ibconform.transports import configdaemon, ssh, testinfra  # noqa: F401  (register themselves)

        scheme = scheme_of(node.transport)
        if scheme in _PER_RUN:
            with self._lock:
                if scheme not in self._per_run:
                    self._per_run[scheme] = _PER_RUN[scheme](self)
            return self._per_run[scheme].for_node(node)
        factory = _REGISTRY.get(scheme) or (_REGISTRY["testinfra"] if "://" in node.transport else None)
        if factory is None:
            raise UsageError(
                f"{self.inventory.path}: transport: unknown transport {node.transport!r} (expected "
                "'ssh', 'config-daemon' or a pytest-testinfra hostspec such as 'local://')"
            )
        return factory(node, self.inventory)
