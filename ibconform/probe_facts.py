"""What one node's probe pod showed (cluster/probes.json), read for the checks of links attach, rdma and nccl.

Every accessor cites what it read. ``require`` skips a check whose evidence the run could not have (a read-only
run, a lower ``probe.level``, a pod that never started); everything else read from the pod is untrusted and
becomes one line when it is unreadable.
"""

from __future__ import annotations

from functools import cached_property

import pytest

from ibconform.cluster_facts import ClusterNode, PoolUse, cite, name_of
from ibconform.errors import ParseError
from ibconform.parsers import multus
from ibconform.parsers.sandbox import SandboxFailure, parse_sandbox_failure
from ibconform.untrusted import d, lst

LEVELS = ("schedule", "start", "rdma", "nccl")


def level_rank(level: object) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


class ProbeFacts:
    """The probe record of one node, and what its pod's annotations, events and log say."""

    def __init__(self, node: ClusterNode, record: dict) -> None:
        self.node, self.record, self.ledger = node, record, node.ledger
        self.pod = d(record.get("object"))
        self.name = str(record.get("pod"))

    def __str__(self) -> str:
        return f"probe pod {self.name} on {self.node.name}"

    @classmethod
    def require(cls, node: ClusterNode, level: str, started: bool = True) -> ProbeFacts:
        """The probe of ``node``, or skip: read-only run, no pod, ``probe.level`` below ``level``, not scheduled,
        or (``started``) the pod never ran (its own checks say why)."""
        record = node.probe()
        if record is None:
            pytest.skip("read-only run: no probe pod was created")
        if not record:
            pytest.skip("no probe pod: see probe_scheduled")
        if level_rank(record.get("level")) < level_rank(level):
            pytest.skip(f"probe.level {record.get('level')}: level {level} proves this")
        probe = cls(node, record)
        if not probe.bound or record.get("outcome") in ("rejected", "unschedulable", "not-created", "error"):
            pytest.skip("probe pod not admitted on the node: see probe_scheduled")
        if started and not probe.started:
            pytest.skip(f"probe pod did not start ({record.get('outcome')}): see the attach checks")
        return probe

    @property
    def bound(self) -> str | None:
        return d(self.pod.get("spec")).get("nodeName")

    @property
    def admitted(self) -> bool:
        """Bound to its node and taken by its kubelet (it reports containers or the Initialized condition)."""
        status = d(self.pod.get("status"))
        return bool(self.bound) and (bool(lst(status.get("containerStatuses"))) or any(
            d(c).get("type") == "Initialized" and d(c).get("status") == "True" for c in lst(status.get("conditions"))))

    @property
    def started(self) -> bool:
        """Its container ran (Running, or exited)."""
        return any(d(d(s).get("state")).get("running") is not None or d(d(s).get("state")).get("terminated")
                   for s in lst(d(self.pod.get("status")).get("containerStatuses")))

    def annotation(self, key: str) -> str | None:
        value = d(d(self.pod.get("metadata")).get("annotations")).get(key)
        cite(self.ledger, f"{self} annotation {key}: {value!r}"[:2000])
        return value if isinstance(value, str) else None

    def requested(self) -> list[tuple[str, str]]:
        """``(namespace, network)`` of each network the pod asked for (its networks annotation)."""
        text = self.annotation(multus.NETWORKS) or ""
        namespace = d(self.pod.get("metadata")).get("namespace") or "default"
        try:
            return [(r.namespace or namespace, r.name) for r in multus.parse_network_requests(text)] if text else []
        except ParseError:
            return []

    def network_status(self) -> tuple[tuple[multus.NetworkStatus, ...], str | None]:
        """The network-status entries, and why they could not be read (None when they could)."""
        text = self.annotation(multus.NETWORK_STATUS) or self.annotation(multus.NETWORKS_STATUS_DEPRECATED)
        if text is None:
            return (), f"no {multus.NETWORK_STATUS} annotation"
        try:
            return multus.parse_network_status(text), None
        except ParseError as exc:
            return (), f"{multus.NETWORK_STATUS} unreadable: {str(exc).splitlines()[0]}"

    def sandbox_failures(self) -> list[SandboxFailure]:
        """The FailedCreatePodSandBox events of the pod, parsed (latest last)."""
        found = []
        for event in lst(self.record.get("events")):
            event = d(event)
            if event.get("reason") != "FailedCreatePodSandBox":
                continue
            message = str(event.get("message") or "")
            cite(self.ledger, f"{self} event FailedCreatePodSandBox: {message}"[:2000])
            try:
                found.append(parse_sandbox_failure(message))
            except ParseError:
                found.append(SandboxFailure(None, None, None, None, None, None, message.strip()[:500], message))
        return found

    @cached_property
    def _output(self) -> dict[tuple[str, str], tuple[str, int]]:
        records = {}
        for entry in lst(self.record.get("output")):
            if isinstance(entry, list) and len(entry) == 4 and isinstance(entry[2], str):
                records[(str(entry[0]), str(entry[1]))] = (entry[2], entry[3] if isinstance(entry[3], int) else 255)
        return records

    def output(self, kind: str, key: str = "-") -> tuple[str, int]:
        """The text and exit code of one record of the probe script; fails the check (one line) when the log was
        not read or lacks the record."""
        error = self.record.get("log_error")
        assert not error, f"{self} log expected vs unreadable: {error}: see the pod's log and events"
        assert self.record.get("output") is not None, (
            f"{self} log expected vs not read ({self.record.get('outcome')}: {self.record.get('message')}): "
            "see the pod's events")
        found = self._output.get((kind, key))
        assert found is not None, f"{self} log record {kind} {key} expected vs absent: see the pod's log"
        text, code = found
        cite(self.ledger, f"{self} {kind} {key} (exit {code}): {text[:1500]}")
        return text, code

    def uverbs_devices(self) -> dict[str, str]:
        """uverbsN -> the RDMA device it opens (the ``ibdev`` records of the probe script)."""
        prefix = "/sys/class/infiniband_verbs/"
        return {key[len(prefix):].split("/", 1)[0]: text.strip() for (kind, key), (text, code) in self._output.items()
                if kind == "file" and key.startswith(prefix) and key.endswith("/ibdev") and code == 0}

    # -- what the cluster expects of each network

    def pool_of(self, network: str) -> PoolUse | None:
        uses = self.node.cluster.pools_for(self.node.node)
        use = next((u for u in uses if network in u.networks), None)
        if use is None and len(uses) == 1 and not uses[0].networks:
            use = uses[0]       # one pool by nodeSelector: every network uses it
        cite(self.ledger, f"pool of {network}: {use}: block {use.allocation if use else None}")
        return use

    def pf_vfs(self, network: str) -> dict[str, dict[int, str]] | None:
        """PF interface -> its VFs by index, of the PFs whose VFs the SriovIBNetwork ``network`` is given (its
        resource's PFs on this node); None when the node's own facts were not collected."""
        host = self.node.host()
        if host is None or not host.reached:
            return None
        cluster = self.node.cluster
        resource = next((d(n.get("spec")).get("resourceName") for n in cluster.optional_items("sriovibnetworks") or []
                         if name_of(n) == network), None)
        shares = cluster.resource_shares(self.node.node).get(f"{cluster.prefix}/{resource}", {}) if resource else {}
        return {h.hca.iface: h.vf_pcis() for h in host.hcas if not shares or h.hca.pci in shares}
