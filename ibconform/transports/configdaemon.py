"""The config-daemon transport: the node script runs in the node's sriov-network-config-daemon pod, through
the Kubernetes API, so a cluster needs no SSH access to its nodes.

The SR-IOV Network Operator runs that pod on every node (DaemonSet, label ``app=sriov-network-config-daemon``):
privileged, hostNetwork and hostPID, with mstconfig in its image, so the script SSH would run sees the same
sysfs and firmware there. One paginated LIST per run finds the pods (in the SR-IOV operator's namespace), never one
call per node; each node then gets one exec, ``sh -c SCRIPT`` in the Running pod bound to it, over the official
client's websocket stream (stdout, stderr, and the exit status from the error channel), with the kubeconfig,
context and request timeout the run uses for the API. The whole exec is bounded by the command timeout, its
handshake also by ``kubernetes.timeout``. Needs ``list pods`` and ``create`` (older servers: ``get``) on
``pods/exec`` in that namespace: deploy/rbac/exec.yaml.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL, WSClient
from websocket import WebSocketBadStatusException, WebSocketException, WebSocketTimeoutException

from ibconform.collect import cluster
from ibconform.errors import TransportError, UsageError
from ibconform.inventory import Node
from ibconform.transports import CommandResult, Session, register_per_run
from ibconform.untrusted import d, lst

SCHEME = "config-daemon"
APP_SELECTOR = "app=sriov-network-config-daemon"
CONTAINER = "sriov-network-config-daemon"
RBAC = "deploy/rbac/exec.yaml"
_POD_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def one_line(text: object, limit: int = 300) -> str:
    """Untrusted text as one bounded line.

    >>> one_line("a\\n  b")
    'a b'
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@register_per_run(SCHEME)
class DaemonPods:
    """The run's config-daemon pods, listed once, by the first node that needs them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.namespace = session.inventory.model.kubernetes.namespace_of("sriov")
        self.timeout = session.inventory.model.kubernetes.timeout
        self.configuration: client.Configuration | None = None
        self._lock = threading.Lock()
        self._by_node: dict[str, list[dict]] | None = None
        self._error: str | None = None

    def for_node(self, node: Node) -> ConfigDaemonTransport:
        if node.transport != SCHEME:
            raise UsageError(
                f"{self.session.inventory.path}: transport: expected {SCHEME!r} (its namespace and "
                f"kubeconfig come from kubernetes:), got {node.transport!r}"
            )
        return ConfigDaemonTransport(node, self)

    def pod_of(self, node: str) -> str:
        """The name of the Running config-daemon pod on ``node``; TransportError if none (or the LIST failed)."""
        with self._lock:
            if self._by_node is None and self._error is None:
                self._list()
        if self._error is not None:
            raise TransportError(self._error)
        assert self._by_node is not None
        pods = self._by_node.get(node, [])
        running = [
            p
            for p in pods
            if d(p.get("status")).get("phase") == "Running" and not d(p.get("metadata")).get("deletionTimestamp")
        ]
        if running:
            return str(
                max(running, key=lambda p: str(d(p.get("metadata")).get("creationTimestamp")))["metadata"]["name"]
            )
        seen = "; ".join(
            f"{d(p.get('metadata')).get('name')} is {one_line(d(p.get('status')).get('phase') or 'Pending', 40)}"
            for p in pods
        )
        raise TransportError(
            f"no running {CONTAINER} pod on {node} (namespace {self.namespace}{'; ' + seen if seen else ''}): the "
            f"node cannot be collected through the operator — check its pod (kubectl -n {self.namespace} get pods "
            f"-l {APP_SELECTOR} -o wide), or collect the node over ssh"
        )

    def _list(self) -> None:
        """One paginated LIST of the daemon pods, indexed by node; on failure, the one line every node reports."""
        try:
            api = cluster.api_client(
                *cluster.kube_target(self.session.inventory, self.session.kubeconfig, self.session.context),
                timeout=self.timeout,
                read_only=True,
            )
        except UsageError as exc:
            self._error = f"no Kubernetes API access to find the node's {CONTAINER} pod: {exc}"
            return
        try:
            items = cluster.list_all(api, cluster.PODS, self.namespace, label_selector=APP_SELECTOR)["items"]
        except cluster.LIST_ERRORS as exc:
            reason = cluster.describe_error(
                exc, "list", cluster.PODS, self.namespace, grant=f"bind {RBAC}", timeout=self.timeout
            )
            self._error = f"cannot find the node's {CONTAINER} pod: {reason}"
            return
        self.configuration = api.configuration
        self._by_node = {}
        for pod in (p for p in items if isinstance(p, dict)):
            name, node = d(pod.get("metadata")).get("name"), d(pod.get("spec")).get("nodeName")
            containers = {d(c).get("name") for c in lst(d(pod.get("spec")).get("containers"))}
            if (
                isinstance(name, str)
                and _POD_NAME.fullmatch(name)
                and isinstance(node, str)
                and CONTAINER in containers
            ):
                self._by_node.setdefault(node, []).append(pod)


class ConfigDaemonTransport:
    """Runs the node script as ``sh -c SCRIPT`` in the node's config-daemon pod: one exec."""

    name = SCHEME

    def __init__(self, node: Node, pods: DaemonPods) -> None:
        self.node, self.pods = node, pods
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ws: WSClient | None = None
        self._closed = False

    def run(self, script: str, timeout: float) -> CommandResult:
        """Run ``script`` in the node's pod; TransportError if it cannot, or does not finish in time."""
        deadline = time.monotonic() + timeout
        pod = self.pods.pod_of(self.node.name)
        where = f"exec in {self.pods.namespace}/{pod}"
        self.notes.append(f"exec in pod {self.pods.namespace}/{pod}, container {CONTAINER}")
        ws = self._open(pod, script, where, timeout, deadline)
        try:
            ws.sock.settimeout(max(deadline - time.monotonic(), 0.01))  # no read (of a frame begun) outlives it
            while ws.is_open():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportError(f"node script did not finish within {timeout:g} s (command timeout)")
                try:
                    ws.update(timeout=remaining)
                except (WebSocketTimeoutException, TimeoutError):
                    continue
                except (WebSocketException, OSError):
                    break
            if self._closed:
                raise TransportError(f"{where} closed by an interrupt before the node script finished")
            out, err, status = (ws.read_channel(c) for c in (STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL))
        finally:
            with self._lock:
                self._ws = None
            _release(ws)
        return CommandResult(exit_code(status, where), out.decode(errors="replace"), err.decode(errors="replace"))

    def _open(self, pod: str, script: str, where: str, timeout: float, deadline: float) -> WSClient:
        """The exec websocket, open within kubernetes.timeout and the command deadline. The client's handshake has
        no deadline of its own, so it runs in a helper thread; a websocket that opens too late is closed there."""
        limit = min(self.pods.timeout, deadline - time.monotonic())
        failed: list[Exception] = []
        if self._closed:
            raise TransportError(f"{where} closed by an interrupt before the node script ran")

        def handshake() -> None:
            api = client.ApiClient(self.pods.configuration)  # its own: stream() swaps the client's call_api meanwhile
            try:
                ws = stream(
                    client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                    pod,
                    self.pods.namespace,
                    command=["sh", "-c", script],
                    container=CONTAINER,
                    stdin=False,
                    stdout=True,
                    stderr=True,
                    tty=False,
                    _preload_content=False,
                    binary=True,
                )
            except Exception as exc:  # the client wraps every websocket failure in ApiException(status=0)
                failed.append(exc)
            else:
                with self._lock:
                    late = self._closed or self._wake.is_set()
                    self._ws = None if late else ws
                if late:
                    _release(ws)
            finally:
                api.close()
                self._wake.set()

        threading.Thread(target=handshake, name=f"exec-{self.node.name}", daemon=True).start()
        self._wake.wait(max(0.0, limit))
        with self._lock:
            self._wake.set()  # from here, a handshake still running is too late
            if self._ws is not None:
                return self._ws
        if self._closed:
            raise TransportError(f"{where} closed by an interrupt before the node script ran")
        if failed:
            raise TransportError(handshake_failure(failed[0], where, self.pods.namespace))
        if limit < self.pods.timeout:
            raise TransportError(f"node script did not finish within {timeout:g} s (command timeout)")
        raise TransportError(
            f"{where}: no answer within {self.pods.timeout:g} s (kubernetes.timeout): the API server "
            "or the node's kubelet does not answer — check the node and the API server, or raise "
            "kubernetes.timeout"
        )

    def close(self) -> None:
        """Abort the exec now (also from another thread: an interrupt wakes ``run``, which releases the socket)."""
        with self._lock:
            self._closed = True
            ws, self._ws = self._ws, None
            self._wake.set()
        sock = ws.sock if ws is not None else None
        if sock is not None:
            sock.abort()


def _release(ws: WSClient) -> None:
    """Close the websocket's connection at once: no close handshake to wait for (the client's own close() waits,
    and after the server's close frame leaves the socket open)."""
    sock = ws.sock
    if sock is not None:
        sock.abort()
        sock.shutdown()


def exit_code(status: bytes, where: str) -> int:
    """The exit code the error channel's Status carries; TransportError if it carries none.

    >>> exit_code(b'{"metadata":{},"status":"Success"}', "exec")
    0
    >>> exit_code(b'{"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}', "x")
    3
    """
    if not status:
        raise TransportError(
            f"{where}: the connection was lost before the node script finished: the node rebooted, "
            "the pod restarted or the API server dropped the stream — check them, then run again"
        )
    try:
        document = d(json.loads(status))
    except ValueError:
        raise TransportError(
            f"{where}: unreadable exit status {one_line(status.decode(errors='replace'), 100)!r}"
        ) from None
    if document.get("status") == "Success":
        return 0
    if document.get("reason") == "NonZeroExitCode":
        for cause in lst(d(document.get("details")).get("causes")):
            if d(cause).get("reason") == "ExitCode" and str(d(cause).get("message", "")).isdigit():
                return int(d(cause)["message"])
    raise TransportError(
        f"{where} failed: {one_line(document.get('message') or document)}{_hint(document.get('message'))}"
    )


def handshake_failure(exc: Exception, where: str, namespace: str) -> str:
    """One line saying why the exec websocket did not open, and what to do; never echoes credentials."""
    cause = exc.__context__ if isinstance(exc, ApiException) and exc.status == 0 and exc.__context__ else exc
    if isinstance(cause, WebSocketBadStatusException):
        code = cause.status_code
        message = _status_message(cause.resp_body)
        if code == 401:
            return f"{where}: unauthorized (401): the kubeconfig credentials were rejected — renew the token"
        if code == 403:
            return (
                f"{where}: forbidden (403): the account may not create pods/exec in namespace {namespace} — bind {RBAC}"
            )
        if code == 404:
            return f"{where}: not found (404): the pod went away since it was listed — run again"
        return f"{where}: API error {code}: {message}{_hint(message)}"
    if isinstance(cause, OSError | WebSocketException):
        return f"{where}: API server unreachable ({type(cause).__name__}): check the kubeconfig server and the network"
    return f"{where}: {type(cause).__name__}: {one_line(cause)}"


def _status_message(body: Any) -> str:
    try:
        return one_line(d(json.loads(body)).get("message") or "no message")
    except (TypeError, ValueError):
        return "no Status in the answer"


def _hint(message: object) -> str:
    return (
        " — the API server cannot reach the node's kubelet: check the node"
        if "error dialing backend" in str(message)
        else ""
    )
