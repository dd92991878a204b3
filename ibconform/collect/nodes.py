"""Collect every node's facts concurrently: one script, one round trip per node, bounded fan-out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from ibconform import transports
from ibconform.bundle import BundleWriter, NodeStatus
from ibconform.collect import nodescript
from ibconform.errors import IbconformError, ParseError
from ibconform.inventory import Inventory, Node

Progress = Callable[[str, NodeStatus], None]


class LiveTransports:
    """The transports in use, so an interrupt can close every SSH channel at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set = set()
        self.cancelled = False

    def add(self, transport: transports.Transport) -> None:
        with self._lock:
            if self.cancelled:
                raise IbconformError("collection interrupted")
            self._open.add(transport)

    def discard(self, transport: transports.Transport) -> None:
        with self._lock:
            self._open.discard(transport)

    def close_all(self) -> None:
        with self._lock:
            self.cancelled = True
            for transport in self._open:
                transport.close()


def collect_node(node: Node, inventory: Inventory, live: LiveTransports | None = None,
                 session: transports.Session | None = None) -> tuple[NodeStatus, nodescript.NodeOutput | None]:
    """Run the node script on ``node`` (through ``session``'s transports: the run's; by default its own);
    never raises for a node-side problem."""
    settings = inventory.model
    boundary = nodescript.new_boundary()
    script = nodescript.build(node, boundary, settings.collect.mstconfig_timeout)
    started = time.monotonic()
    transport_name = transports.scheme_of(node.transport)
    output = None
    notes: list[str] = []
    try:
        transport = (session or transports.Session(inventory)).for_node(node)
        if live is not None:
            live.add(transport)
        try:
            result = transport.run(script, timeout=settings.ssh.command_timeout)
        finally:
            notes = list(getattr(transport, "notes", []))
            transport.close()
            if live is not None:
                live.discard(transport)
        try:
            output = nodescript.split(result.stdout, boundary)
            error = None
        except ParseError as exc:
            detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else str(exc)
            error = f"node script failed (exit {result.exit_status}): {detail}"
    except IbconformError as exc:
        error = str(exc)
    except Exception as exc:  # a transport's own defect stays this node's: the other nodes are collected
        error = f"collection failed: {type(exc).__name__}: {exc} (an ibconform defect: please report it)"
    seconds = round(time.monotonic() - started, 3)
    status = NodeStatus(reachable=output is not None, error=error, transport=transport_name,
                        seconds=seconds, notes=notes)
    return status, output


def collect_nodes(
    inventory: Inventory, writer: BundleWriter, progress: Progress | None = None,
    kubeconfig: str | None = None, context: str | None = None,
) -> dict[str, NodeStatus]:
    """Collect all inventory nodes with at most ``collect.parallel`` at once; write each to the bundle.
    ``kubeconfig``/``context``: the API target of the run, for the config-daemon transport.

    On an interrupt (KeyboardInterrupt, also from SIGTERM) every open SSH channel is closed, queued
    nodes are dropped, and the interrupt propagates: the bundle keeps the nodes finished so far.
    """
    statuses: dict[str, NodeStatus] = {}
    width = max(1, min(inventory.model.collect.parallel, len(inventory.nodes)))
    live = LiveTransports()
    session = transports.Session(inventory, kubeconfig, context)
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="collect")
    try:
        futures = {pool.submit(collect_node, node, inventory, live, session): node for node in inventory.nodes}
        for future in as_completed(futures):
            node = futures[future]
            status, output = future.result()
            writer.node(node.name, status, output)
            statuses[node.name] = status
            if progress is not None:
                progress(node.name, status)
    except BaseException:
        live.close_all()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return statuses
