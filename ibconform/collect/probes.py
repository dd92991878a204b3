"""NCCL probe pods: one per node, all at once, watched to a verdict, always deleted.

A probe is pinned to its node (kubernetes.io/hostname), asks for one of each SR-IOV resource of the
node and its GPUs, joins the SriovIBNetworks of those resources, and tolerates cordon and the
inventory's maintenance taints, so a node awaiting release can still be proven. Pods carry the run's
label; leftovers of crashed runs (older than the age guard) are deleted at start; every pod of this run
is deleted on success, failure, timeout, exception and interrupt. ``activeDeadlineSeconds`` ends a pod
on its own should the runner die.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ibconform import policies as policies_mod
from ibconform.bundle import now
from ibconform.cluster_facts import name_of
from ibconform.collect import probescript
from ibconform.collect.cluster import LIST_ERRORS, PODS, Resource, describe_error, list_all
from ibconform.errors import ParseError
from ibconform.inventory import Inventory, Node
from ibconform.untrusted import d, lst

MANAGED_BY = ("app.kubernetes.io/managed-by", "ibconform")
ROLE = ("ibconform.io/role", "probe")
RUN_LABEL = "ibconform.io/run"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
GPU_RESOURCE = "nvidia.com/gpu"
PROBE_SELECTOR = f"{MANAGED_BY[0]}={MANAGED_BY[1]},{ROLE[0]}={ROLE[1]}"
POLL = 2.0  # seconds a quiet watch waits before looking at the stop flag
#: Probe pods created, logs read and pods deleted at once: one client's share of API Priority and Fairness
#: (a few seats of a priority level; the API server's default in-flight limits are 400 and 200 mutating)
API_PARALLEL = 8
POD_LOGS = Resource("pods/log", "", "v1", True, "Kubernetes")
PROBE_GRANT = "apply deploy/rbac/probe.yaml for the probe namespace, or run with --read-only"
LEVELS = ("schedule", "start", "rdma", "nccl")
SCRIPTED = ("rdma", "nccl")  # levels whose pod runs the probe script and whose log is read
LOG_LIMIT = 4 << 20  # bytes of a probe's log read at most (NCCL INFO lines of 8 GPUs are ~100 KiB)
CONTAINER = "nccl-probe"


class ProbeRefused(Exception):
    """The API refused a call the probe run cannot do without (list, create or watch pods)."""


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


def node_resources(node: Node, node_obj: dict, state: dict, policies: list[dict], prefix: str) -> list[str]:
    """The SR-IOV resources a probe on ``node`` asks one of: those the policies route the node's HCAs to (over
    the PFs its SriovNetworkNodeState ``state`` reports), else res<iface> of each HCA."""
    labels = d(d(node_obj.get("metadata")).get("labels"))
    interfaces = lst(d(d(state).get("status")).get("interfaces")) or [
        {"name": h.iface, "pciAddress": h.pci} for h in node.hcas]
    rendered = policies_mod.render(policies, labels, interfaces)
    names: list[str] = []
    for hca in node.hcas:
        config = rendered.get(hca.pci)
        found = [f"{prefix}/{g.resource_name}" for g in config.groups if g.resource_name] if config else []
        names += found or [f"{prefix}/res{hca.iface}"]
    return list(dict.fromkeys(names))


def networks_for(resources: list[str], ib_networks: list[dict], prefix: str) -> list[str]:
    """``<namespace>/<name>`` of each SriovIBNetwork whose resourceName is among ``resources``."""
    wanted = {r.removeprefix(prefix + "/") for r in resources}
    found = []
    for net in ib_networks:
        spec = d(net.get("spec"))
        if spec.get("resourceName") in wanted:
            ns = spec.get("networkNamespace") or d(net.get("metadata")).get("namespace") or "default"
            found.append(f"{ns}/{name_of(net)}")
    return found


def probe_manifest(node: Node, node_obj: dict, state: dict, lists: dict[str, dict], inventory: Inventory,
                   run_id: str, boundary: str = "") -> dict:
    """The probe pod for ``node`` (pure: no API call); ``state``: its SriovNetworkNodeState, or {}. At levels
    ``rdma`` and ``nccl`` its container runs the probe script, whose records start with ``boundary``."""
    settings, prefix = inventory.model.probe, inventory.model.kubernetes.resource_prefix
    policies = lst(d(lists.get("sriovnetworknodepolicies")).get("items"))
    resources = node_resources(node, node_obj, state, policies, prefix)
    gpus = settings.gpus
    if gpus is None:
        raw = str(d(d(node_obj.get("status")).get("allocatable")).get(GPU_RESOURCE, "0"))
        gpus = int(raw) if raw.isdigit() else 0
    requests = {r: "1" for r in resources} | ({GPU_RESOURCE: str(gpus)} if gpus else {})
    networks = networks_for(resources, lst(d(lists.get("sriovibnetworks")).get("items")), prefix)
    hostname = d(d(node_obj.get("metadata")).get("labels")).get("kubernetes.io/hostname", node.name)
    tolerations = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
                   {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [t.model_dump(exclude_none=True) for t in settings.tolerations]
    command = ["sleep", "infinity"]
    if settings.level in SCRIPTED:
        command = ["sh", "-c", probescript.build(boundary, settings.level, gpus, settings.nccl_timeout)]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"ibconform-probe-{node.name}-{run_id.rsplit('-', 1)[-1]}"[:63].rstrip("-."),
            "namespace": settings.namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], ROLE[0]: ROLE[1], RUN_LABEL: run_id},
            "annotations": {NETWORKS_ANNOTATION: ",".join(networks)} if networks else {},
        },
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": hostname},
            "tolerations": tolerations,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": int(settings.timeout) + 120,
            "containers": [{
                "name": CONTAINER, "image": settings.image, "command": command,
                "resources": {"requests": requests, "limits": requests},
                "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
            }],
        },
    }


def admitted(pod: dict) -> bool:
    """Kubelet accepted the pod: it reports containers or the Initialized condition (admission comes first)."""
    status = d(pod.get("status"))
    return bool(lst(status.get("containerStatuses"))) or any(
        d(c).get("type") in ("Initialized", "PodReadyToStartContainers") for c in lst(status.get("conditions")))


def terminated(pod: dict) -> dict | None:
    """The probe container's ``state.terminated`` once it has exited, else None."""
    for entry in lst(d(pod.get("status")).get("containerStatuses")):
        state = d(d(d(entry).get("state")).get("terminated"))
        if state:
            return state
    return None


def verdict(pod: dict, level: str) -> tuple[str, str] | None:
    """(outcome, message) once the pod has decided, None while it has not.

    At level ``schedule`` a bound pod counts once kubelet has admitted it: a device plugin that cannot
    allocate makes kubelet reject the pod (UnexpectedAdmissionError) only after it was scheduled. At
    ``start`` it must run; at ``rdma`` and ``nccl`` its script must have exited (``completed``).
    """
    status = d(pod.get("status"))
    node = d(pod.get("spec")).get("nodeName")
    ended = terminated(pod)
    if level in SCRIPTED and ended is not None:
        return "completed", f"probe script on {node} exited {ended.get('exitCode')} ({ended.get('reason')})"
    if status.get("phase") == "Failed":
        return "rejected", str(status.get("message") or status.get("reason") or "pod failed")
    scheduled = next((c for c in lst(status.get("conditions")) if d(c).get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return "unschedulable", str(scheduled.get("message") or "Unschedulable")
    if level not in SCRIPTED and (status.get("phase") == "Running" or status.get("phase") == "Succeeded"):
        return "running", f"running on {node}"
    if level == "schedule" and node and admitted(pod):
        return "scheduled", f"scheduled on {node}"
    return None


class ProbeRun:
    """Creates, watches and deletes the probe pods of one run."""

    def __init__(self, api: client.ApiClient, inventory: Inventory, lists: dict[str, dict],
                 run_id: str | None = None, stop: threading.Event | None = None) -> None:
        self.core = client.CoreV1Api(api)
        self.timeout_s = getattr(api, "ibconform_timeout", 30.0)
        self.inventory, self.lists = inventory, lists
        self.settings = inventory.model.probe
        self.namespace = self.settings.namespace
        self.run_id = run_id or new_run_id()
        self.created: list[str] = []
        self.stop = stop or threading.Event()

    def run(self) -> dict:
        """Probe every inventory node; the probes.json document. Pods are deleted before returning."""
        started = now()
        records: dict[str, dict] = {}
        error = None
        try:
            self.delete_leftovers()
            pods = self.create(records)
            self.watch(pods, records)
            if not self.stop.is_set():
                self.attach_events(records)
            if not self.stop.is_set() and self.settings.level in SCRIPTED:
                self.read_logs(records)
        except ProbeRefused as exc:  # the API refused a call the probe needs: every undecided probe says so
            error = str(exc)
            for record in records.values() or self._records_for_all(records):
                if record["outcome"] in ("pending", "not-created"):
                    record["outcome"], record["message"] = "not-created" if not record["pod"] else "error", error
        finally:
            deleted = self.delete_created()
        return {"run_id": self.run_id, "level": self.settings.level, "namespace": self.namespace,
                "started": started, "finished": now(), "deleted": deleted, "error": error,
                "probes": sorted(records.values(), key=lambda r: r["node"])}

    def _records_for_all(self, records: dict[str, dict]) -> list[dict]:
        for node in self.inventory.nodes:
            records[node.name] = self._record(node.name)
        return list(records.values())

    def _record(self, node: str) -> dict:
        return {"node": node, "pod": None, "level": self.settings.level, "outcome": "not-created",
                "message": None, "object": None, "events": [], "boundary": None, "output": None, "log_error": None}

    def _refused(self, exc: Exception, verb: str, resource: Resource = PODS) -> ProbeRefused:
        return ProbeRefused(describe_error(exc, verb, resource, self.namespace, grant=PROBE_GRANT))

    @property
    def age_guard(self) -> dt.timedelta:
        """Probe pods younger than this may belong to a run still going: never touched."""
        seconds = self.settings.leftover_age or 2 * self.settings.timeout + 120
        return dt.timedelta(seconds=seconds)

    def delete_leftovers(self, guard: dt.timedelta | None = None) -> list[str]:
        """Delete probe pods of earlier runs older than ``guard`` (default: the age guard)."""
        guard = self.age_guard if guard is None else guard
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=PROBE_SELECTOR,
                                                 _request_timeout=self.timeout_s).items
        except LIST_ERRORS as exc:
            raise self._refused(exc, "list") from None
        gone = []
        for pod in pods:
            created = pod.metadata.creation_timestamp
            if pod.metadata.labels.get(RUN_LABEL) != self.run_id and created is not None \
                    and dt.datetime.now(dt.UTC) - created > guard:
                self._delete(pod.metadata.name)
                gone.append(pod.metadata.name)
        return gone

    def create(self, records: dict[str, dict]) -> dict[str, str]:
        """Create one probe per node present in the cluster, ``API_PARALLEL`` at a time; pod name -> node."""
        nodes = {name_of(n): n for n in lst(d(self.lists.get("nodes")).get("items"))}
        states = {name_of(d(s)): d(s) for s in lst(d(self.lists.get("sriovnetworknodestates")).get("items"))}
        manifests = []
        for node in self.inventory.nodes:
            record = records[node.name] = self._record(node.name)
            if node.name not in nodes:
                record["message"] = f"Node {node.name} is not in the cluster"
                continue
            boundary = probescript.new_boundary()
            manifest = probe_manifest(node, nodes[node.name], states.get(node.name, {}), self.lists, self.inventory,
                                      self.run_id, boundary)
            record["pod"] = manifest["metadata"]["name"]
            if self.settings.level in SCRIPTED:
                record["boundary"] = boundary
            record["requests"] = manifest["spec"]["containers"][0]["resources"]["requests"]
            manifests.append((record, manifest))
        with ThreadPoolExecutor(max_workers=API_PARALLEL, thread_name_prefix="probe-create") as pool:
            list(pool.map(lambda pair: self._create(*pair), manifests))
        return {r["pod"]: r["node"] for r in records.values() if r["outcome"] == "pending"}

    def _create(self, record: dict, manifest: dict) -> None:
        if self.stop.is_set():
            record["pod"], record["message"] = None, "the run was stopped before its probe pod was created"
            return
        self.created.append(manifest["metadata"]["name"])  # before the call: a pod created as the run stops is deleted
        try:
            self.core.create_namespaced_pod(self.namespace, manifest, _request_timeout=self.timeout_s,
                                            _preload_content=False).drain_conn()  # the pod is not read back
        except LIST_ERRORS as exc:
            record["message"] = str(self._refused(exc, "create"))
            return
        record["outcome"] = "pending"

    def watch(self, pods: dict[str, str], records: dict[str, dict]) -> None:
        """Watch this run's pods until each has a verdict, the overall timeout passes or ``stop`` is set.

        One LIST, then one watch resumed from the last resourceVersion whenever it goes quiet (every
        ``POLL`` seconds the stop flag is looked at) or drops; a LIST again only if the API expired it.
        """
        deadline = time.monotonic() + self.settings.timeout
        selector = f"{RUN_LABEL}={self.run_id}"
        pending = set(pods)
        version = None
        while pending and time.monotonic() < deadline and not self.stop.is_set():
            if version is None:
                listing = list_all(self.core.api_client, PODS, self.namespace, label_selector=selector)
                version = listing["metadata"]["resourceVersion"]
                for pod in listing["items"]:
                    self._observe(d(pod), pods, records, pending)
                continue
            stream = watch.Watch(return_type=object)  # events as plain JSON objects, not client models
            try:
                for event in stream.stream(self.core.list_namespaced_pod, self.namespace, label_selector=selector,
                                           resource_version=version,
                                           timeout_seconds=max(1, int(deadline - time.monotonic())),
                                           _request_timeout=(self.timeout_s, POLL)):
                    raw = event.get("raw_object") or {}
                    if event.get("type") == "ERROR":  # 410 Gone: the resourceVersion expired, LIST again
                        version = None
                        break
                    version = d(raw.get("metadata")).get("resourceVersion") or version
                    self._observe(raw, pods, records, pending)
                    if not pending or self.stop.is_set() or time.monotonic() >= deadline:
                        break
            except ApiException as exc:
                if exc.status in (401, 403, 404):
                    raise self._refused(exc, "watch") from None
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                pass  # quiet for POLL seconds, or dropped: resume from the last resourceVersion
            finally:
                stream.stop()
        for name in pending:
            record = records[pods[name]]
            pod = d(record["object"])
            node = d(pod.get("spec")).get("nodeName")
            if node and self.settings.level == "schedule" and not self.stop.is_set():
                record["outcome"] = "scheduled"
                record["message"] = f"scheduled on {node} (kubelet admission not seen within probe.timeout)"
                continue
            record["outcome"] = "interrupted" if self.stop.is_set() else "timeout"
            record["message"] = (f"no verdict within {self.settings.timeout:g} s (probe.timeout): "
                                 f"pod phase {d(pod.get('status')).get('phase')}")

    def _observe(self, pod: dict, pods: dict[str, str], records: dict[str, dict], pending: set[str]) -> None:
        name = name_of(pod)
        if name not in pods:
            return
        record = records[pods[name]]
        record["object"] = pod
        decided = verdict(pod, self.settings.level)
        if decided and name in pending:
            record["outcome"], record["message"] = decided
            pending.discard(name)

    def attach_events(self, records: dict[str, dict]) -> None:
        """One LIST of the namespace's pod events; the scheduler's or kubelet's words become the message."""
        names = {r["pod"]: r for r in records.values() if r["pod"]}
        try:
            response = self.core.list_namespaced_event(self.namespace, field_selector="involvedObject.kind=Pod",
                                                       _request_timeout=self.timeout_s, _preload_content=False)
            events = lst(d(json.loads(response.data)).get("items"))  # plain JSON: no client models to build
        except LIST_ERRORS:
            return  # the verdicts stand; only the scheduler's and kubelet's own words are missing
        for event in map(d, events):
            record = names.get(d(event.get("involvedObject")).get("name"))
            if record is None:
                continue
            record["events"].append({k: event.get(k) for k in ("type", "reason", "message", "count")})
        for record in names.values():
            if record["outcome"] not in ("unschedulable", "rejected", "timeout"):
                continue
            warnings = [e for e in record["events"] if e.get("type") == "Warning"]
            # the scheduler's or kubelet's verdict, else the latest warning (FailedCreatePodSandBox ...)
            decisive = [e for e in warnings if e.get("reason") in ("FailedScheduling", "UnexpectedAdmissionError")]
            if decisive or warnings:
                event = (decisive or warnings)[-1]
                record["message"] = f"{event['reason']}: {event.get('message')}"

    def read_logs(self, records: dict[str, dict]) -> None:
        """One ``pods/log`` GET per probe whose script exited (a few at a time), bounded in size; the records the
        log holds (``output``: ``[kind, key, text, exit code]`` each) or why it could not be read (``log_error``)."""
        done = [r for r in records.values() if r["outcome"] == "completed"]
        with ThreadPoolExecutor(max_workers=API_PARALLEL, thread_name_prefix="probe-log") as pool:
            list(pool.map(self._read_log, done))

    def _read_log(self, record: dict) -> None:
        try:
            response = self.core.read_namespaced_pod_log(record["pod"], self.namespace, container=CONTAINER,
                                                         limit_bytes=LOG_LIMIT, _request_timeout=self.timeout_s,
                                                         _preload_content=False)
            log = response.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            record["log_error"] = describe_error(exc, "get", POD_LOGS, self.namespace, grant=PROBE_GRANT)
            return
        except LIST_ERRORS as exc:
            record["log_error"] = describe_error(exc, "get", POD_LOGS, self.namespace, timeout=self.timeout_s)
            return
        try:
            output = probescript.split(log, str(record["boundary"]))
        except ParseError as exc:
            record["log_error"] = f"pods/log of {record['pod']} ({len(log)} bytes): {exc}"
            return
        record["output"] = [[kind, key, text, code] for (kind, key), (text, code) in output.records.items()]

    def _delete(self, name: str) -> bool:
        try:
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0, _preload_content=False,
                                            _request_timeout=self.timeout_s).drain_conn()
            return True
        except ApiException as exc:
            return exc.status == 404
        except LIST_ERRORS:
            return False

    def delete_created(self) -> list[str]:
        """Delete every pod this run created, a few at a time (the run's last step); the names deleted."""
        names = list(self.created)
        with ThreadPoolExecutor(max_workers=API_PARALLEL, thread_name_prefix="probe-delete") as pool:
            deleted = list(pool.map(self._delete, names))
        return [name for name, ok in zip(names, deleted, strict=True) if ok]
