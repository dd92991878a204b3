"""The twin's Kubernetes API server: a real HTTPS API on loopback that the official client and kubectl talk to.

``ApiTwin`` runs kmock's KubernetesEmulator (extended in ``server`` to behave like kube-apiserver)
on its own asyncio loop in a background thread, with the real Network Operator / SR-IOV / nv-ipam CRDs
(``crds/`` beside it) registered. The suite reaches it through the kubeconfig ``write_kubeconfig`` writes,
exactly as it reaches a real cluster; the twin's own code reads and writes objects directly with
``put``/``get``/``list``/``patch``/``delete`` and hears HTTP writes through ``on_change``.

    with ApiTwin(token="s3cret") as api:
        api.write_kubeconfig(tmp / "kubeconfig")
        api.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dgx030"}})
        ...                                     # run the suite against tmp / "kubeconfig"
        assert not [r for r in api.requests if r.is_write]

Requests with the admin token are allowed everything (``system:masters``). Tokens added with ``add_user``
authenticate other users, whom the server authorizes as kube-apiserver's RBAC does, against the Roles,
ClusterRoles and bindings stored in the twin (``rbac``)::

        api.add_user("sa-token", service_account("network-operator", "ibconform"))
        for doc in yaml.safe_load_all(Path("deploy/rbac/readonly.yaml").read_text()):
            api.put(doc)
        api.write_kubeconfig(tmp / "sa-kubeconfig", token="sa-token")     # 403 for what is not granted

It serves HTTPS, as a cluster's API does, with a certificate for its address signed by a CA made for it
(``ca_pem``; the kubeconfig carries it), so ``kubectl`` and the official client verify it; ``tls=False``
serves plain HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import copy as _copy
import functools
import ipaddress
import os
import re
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import yaml
from kmock import Server

from ibconform.twin.apiserver import tls as tls_certs
from ibconform.twin.apiserver.patch import merge_patch
from ibconform.twin.apiserver.pod_exec import Kubelet
from ibconform.twin.apiserver.rbac import UserInfo, service_account
from ibconform.twin.apiserver.rbac import user as token_user
from ibconform.twin.apiserver.request import RequestRecord
from ibconform.twin.apiserver.selectors import (
    field_selector_matches,
    label_selector_matches,
    parse_field_selector,
    parse_label_selector,
)
from ibconform.twin.apiserver.server import Fault, TwinEmulator
from ibconform.twin.apiserver.store import (
    CRD_GROUP,
    CRD_PLURAL,
    ResourceType,
    Store,
    built_in_types,
    generate_name,
    load_objects,
    meta,
)

__all__ = ["ApiTwin", "Fault", "RequestRecord", "UserInfo", "bundled_crds", "service_account"]

CRD_DIR = Path(__file__).with_name("crds")
_SERVING: weakref.WeakSet = weakref.WeakSet()
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: kube-apiserver reads up to 1 MiB of request line and headers (Go's DefaultMaxHeaderBytes): an exec carries its
#: command in the URL (aiohttp's default stops at 8190 bytes).
MAX_REQUEST_LINE = 1 << 20


@functools.lru_cache(maxsize=1)
def _read_crds() -> tuple[dict[str, Any], ...]:
    docs = []
    for path in sorted(CRD_DIR.glob("crd-*.yaml")):
        docs += [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) if d]
    return tuple(docs)


def bundled_crds(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The bundled CRDs (all, or those named by CRD name or plural), as fresh dicts."""
    docs = _read_crds()
    if names is None:
        return [copy.deepcopy(d) for d in docs]
    wanted = set(names)
    known = {meta(d)["name"] for d in docs} | {d["spec"]["names"]["plural"] for d in docs}
    if wanted - known:
        raise ValueError(f"no bundled CRD {sorted(wanted - known)}; bundled: {sorted(meta(d)['name'] for d in docs)}")
    return [copy.deepcopy(d) for d in docs if wanted & {meta(d)["name"], d["spec"]["names"]["plural"]}]


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"twin API host {host!r} is not a loopback address: the twin never leaves loopback")


@attrs.mutable
class _LoopbackServer(Server):
    """kmock's Server without its DNS interceptor: that one patches aiohttp process-wide and must be
    exited in LIFO order, which breaks twins started and stopped independently in one process. Serves HTTPS
    with ``ssl_context``."""

    ssl_context: ssl.SSLContext | None = attrs.field(default=None, kw_only=True)

    async def __aenter__(self) -> _LoopbackServer:
        if self._managed_server is not None:
            raise RuntimeError("The server can be started/entered only once.")
        self._managed_server = self._server_cls(self.handler, host=self._host, port=self._port)
        await self._managed_server.start_server(ssl=self.ssl_context, max_line_size=MAX_REQUEST_LINE)
        self.handler.servers.append(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.handler.servers.remove(self)
        assert self._managed_server is not None
        await self._managed_server.__aexit__(exc_type, exc, tb)
        self._managed_server = None


class ApiTwin:
    """A Kubernetes API server on a loopback port, with the real CRDs, for the twin cluster.

    ``crds``: bundled CRDs to install (names or plurals; None = all, () = none: "operator not installed").
    ``token``: the admin's bearer token (allowed everything); when set, requests without it or another
    user's token (``add_user``) get 401; when None, requests without a user's token are the admin's.
    ``user``: the admin's name, named in injected 403s (and in the kubeconfig).
    ``tls``: serve HTTPS with a certificate for ``host`` from a fresh CA (``ca_pem``); False: plain HTTP.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, *,
                 crds: Iterable[str] | None = None, user: str = "twin-admin",
                 namespaces: Iterable[str] = DEFAULT_NAMESPACES, tls: bool = True) -> None:
        _require_loopback(host)
        self.host, self.port, self.token, self.user = host, port, token, user
        self.ssl_context, self.ca_pem = tls_certs.server_context(host) if tls else (None, None)
        self.store = Store()
        for rt in built_in_types():
            self.store.registry.add(rt)
        crd_type = self._type("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        load_objects(self.store, crd_type, bundled_crds(crds))
        load_objects(self.store, self._type("v1", "Namespace"),
                     [{"metadata": {"name": n}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
                      for n in namespaces])
        self.emulator = TwinEmulator(store=self.store, token=token, admin=user)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ApiTwin {self.url if self.port else self.host} {state}>"

    # -- lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the twin API server has no port until started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}"

    @classmethod
    def serving(cls, url: str) -> ApiTwin | None:
        """The twin API of this process serving ``url``, if any (for tests reading its request log)."""
        return next((api for api in list(_SERVING) if api.url == url), None)

    def start(self) -> ApiTwin:
        if self._thread is not None:
            raise RuntimeError("the twin API server was already started; make a new ApiTwin")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="ibconform-api-twin", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the twin API server did not start within 30 s")
        if self._failure is not None:
            raise RuntimeError(f"the twin API server failed to start on {self.host}:{self.port}: "
                               f"{self._failure}") from self._failure
        _SERVING.add(self)
        return self

    def stop(self) -> None:
        """Stop serving (open watches end at once); idempotent."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        _SERVING.discard(self)
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=30)

    def __enter__(self) -> ApiTwin:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:
            self._failure = exc
        finally:
            ready.set()
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        async with self.emulator, _LoopbackServer(self.emulator, host=self.host, port=self.port or None,
                                                   ssl_context=self.ssl_context) as server:
            self.port = server.port
            ready.set()
            await self._stopping.wait()
            self.store.close_watches()
            watches = list(self.emulator.watch_tasks)
            if watches:
                _, late = await asyncio.wait(watches, timeout=2)
                for task in late:
                    task.cancel()

    # -- client configuration

    def add_user(self, token: str, user: str | UserInfo, groups: Iterable[str] = ()) -> UserInfo:
        """Accept ``Authorization: Bearer <token>`` as ``user`` (a name, with ``groups``, or a UserInfo
        such as ``service_account(ns, name)``); its requests are authorized by the stored RBAC objects.
        Token-authenticated users are also in ``system:authenticated``. Returns the user."""
        if not token or token == self.token:
            raise ValueError("a user's token must be non-empty and not the admin token")
        who = user if isinstance(user, UserInfo) else token_user(user, groups)
        self.emulator.users[token] = who
        return who

    def set_kubelets(self, lookup: Callable[[str], Kubelet | None]) -> None:
        """How ``pods/exec`` reaches a node, by name (the twin's nodes: into their namespaces); a node it gives
        None for, and every node without it, refuses like a kubelet that is not there."""
        self.emulator.kubelets = lookup

    def remove_user(self, token: str) -> None:
        """Stop accepting ``token`` (its requests get 401, or are the admin's when no admin token is set)."""
        self.emulator.users.pop(token, None)

    def write_kubeconfig(self, path: Path, context: str = "twin", namespace: str = "network-operator", *,
                         token: str | None = None) -> Path:
        """A kubeconfig for this server with the admin's bearer token (if one is set), or with ``token``
        of a user added by ``add_user``; mode 0600 as it holds the token."""
        path = Path(path)
        if token is not None and token not in self.emulator.users:
            raise ValueError("no user has that token: add_user first")
        name = self.emulator.users[token].name if token is not None else self.user
        token = token if token is not None else self.token
        credentials: dict[str, Any] = {"token": token} if token is not None else {}
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode("ascii")
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": name, "user": credentials}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": name, "namespace": namespace}}],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(config, out, sort_keys=False)
        return path

    # -- direct object access (no HTTP: not in the request log, no on_change)

    def _type(self, api_version: str | None, kind_or_plural: str) -> ResourceType:
        with self.store.lock:
            rt = self.store.registry.find(api_version, kind_or_plural)
        if rt is None:
            raise KeyError(f"{api_version or ''} {kind_or_plural} is not served by the twin "
                           "(is its CRD installed?)".strip())
        return rt

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace any object, whole (status included), as a controller's write would land.

        Fills apiVersion/kind, uid and creationTimestamp (kept on replace), generation and
        resourceVersion; creates a missing namespace; watches see ADDED or MODIFIED.
        """
        rt = self._type(obj.get("apiVersion"), obj.get("kind") or "")
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise ValueError(f"{rt.kind} has no metadata.name")
            metadata["name"] = generate_name(metadata["generateName"])
        namespace = metadata.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise ValueError(f'{rt.kind} "{metadata["name"]}" is namespaced: metadata.namespace is required')
        if rt.kind == "Namespace":
            obj.setdefault("status", {"phase": "Active"})
        metadata.pop("resourceVersion", None)
        with self.store.lock:
            if namespace and not self.store.namespace_exists(namespace):
                self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            old = self.store.get(rt, namespace, metadata["name"])
            self.store.write(rt, self.store.fill_metadata(rt, obj, old))
            return copy.deepcopy(obj)

    def get(self, api_version: str | None, kind_or_plural: str, name: str,
            namespace: str | None = None, *, copy: bool = True) -> dict[str, Any] | None:
        """The object (a copy; with ``copy=False`` the stored one: never modify it), or None if absent or
        its resource is not served."""
        try:
            rt = self._type(api_version, kind_or_plural)
        except KeyError:
            return None
        obj = self.store.get(rt, namespace if rt.namespaced else None, name)
        return _copy.deepcopy(obj) if copy else obj

    def list(self, plural: str, namespace: str | None = None, *, api_version: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects (copies) of ``plural`` (or kind; ``ippools.nv-ipam.nvidia.com`` to pick a group),
        in ``namespace`` or all namespaces, sorted by namespace/name; [] if the resource is not served."""
        try:
            rt = self._type(api_version, plural)
        except KeyError:
            return []
        labels, fields = parse_label_selector(label_selector), parse_field_selector(field_selector)
        return [copy.deepcopy(obj) for _, obj in self.store.items(rt, namespace)
                if label_selector_matches(labels, meta(obj).get("labels")) and field_selector_matches(fields, obj)]

    def peek(self, plural: str, namespace: str | None = None, *, api_version: str | None = None,
             node_name: str | None = None) -> list[dict[str, Any]]:
        """The stored objects themselves (no copies: never modify them), for controllers that read many
        objects per event, sorted by namespace/name; [] if the resource is not served. ``node_name`` (pods
        only): the pods bound to that node, from the store's index."""
        try:
            rt = self._type(api_version, plural)
        except KeyError:
            return []
        return [obj for _, obj in self.store.items(rt, namespace, node_name=node_name)]

    def patch(self, api_version: str | None, kind_or_plural: str, name: str, namespace: str | None = None, *,
              merge: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch (status included) to an existing object; KeyError if absent."""
        rt = self._type(api_version, kind_or_plural)
        namespace = namespace if rt.namespaced else None
        with self.store.lock:
            old = self.store.get(rt, namespace, name)
            if old is None:
                raise KeyError(f'{rt.qualified} "{name}" not found')
            new = merge_patch(old, merge)
            meta(new)["resourceVersion"] = meta(old)["resourceVersion"]
            if new == old:
                return copy.deepcopy(old)
            self.store.write(rt, self.store.fill_metadata(rt, new, old))
            return copy.deepcopy(new)

    def delete(self, api_version: str | None, kind_or_plural: str, name: str,
               namespace: str | None = None) -> dict[str, Any] | None:
        """Remove the object now (finalizers ignored; dependents and namespace content cascade).
        Returns what was removed, or None."""
        try:
            rt = self._type(api_version, kind_or_plural)
        except KeyError:
            return None
        changes = self.store.remove(rt, namespace if rt.namespaced else None, name)
        return copy.deepcopy(changes[-1].old) if changes else None

    def install_crds(self, names: Iterable[str] | None = None) -> None:
        """Install bundled CRDs (all, or those named) after start: their resources get served."""
        for crd in bundled_crds(names):
            self.put(crd)

    def uninstall_crd(self, name: str) -> None:
        """Remove a CRD by name or plural: its resource stops being served and its objects go."""
        crd = next((c for c in self.list(CRD_PLURAL, api_version=f"{CRD_GROUP}/v1")
                    if name in (meta(c)["name"], c["spec"]["names"]["plural"])), None)
        if crd is not None:
            self.delete(f"{CRD_GROUP}/v1", CRD_PLURAL, meta(crd)["name"])

    # -- observing and perturbing the HTTP side

    @property
    def requests(self) -> list[RequestRecord]:
        """Every HTTP request served, in order (live list)."""
        return self.emulator.records

    def clear_requests(self) -> None:
        self.emulator.records.clear()

    @property
    def internal_errors(self) -> list[BaseException]:
        """Exceptions the server hit while answering (each answered 500): a twin bug if non-empty."""
        return self.emulator.internal_errors

    def on_change(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(event_type, obj)`` (ADDED, MODIFIED, DELETED) after every write made through HTTP.

        It runs on the server's loop thread before the response is sent: keep it short (it may call
        ``put``/``patch``/``delete``; those do not call it back). Its exceptions are logged and kept in
        ``emulator.listener_errors``.
        """
        self.emulator.listeners.append(callback)

    def set_fault(self, status: int | None = None, latency: float = 0.0, paths: str | re.Pattern[str] | None = None,
                  *, verbs: Iterable[str] | None = None, times: int | None = None, user: str | None = None,
                  message: str | None = None, drop_after: int | None = None) -> None:
        """Make matching requests slow (``latency`` s) and/or fail with ``status`` as a real server fails,
        and/or cut a matching watch off after ``drop_after`` events (the connection closes mid-stream).

        ``paths``: regex searched in the URL path; ``verbs``: list/watch/get/create/update/patch/delete/
        deletecollection (None: any request); ``times``: how many requests it hits (None: until cleared);
        ``user``: who a 403 names (default: the kubeconfig user). ``set_fault()`` clears it.
        """
        if status is None and not latency and drop_after is None:
            self.emulator.fault = None
            return
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"fault status {status} is not an HTTP error status")
        self.emulator.fault = Fault(
            status=status, latency=float(latency), paths=re.compile(paths) if isinstance(paths, str) else paths,
            verbs=frozenset(verbs) if verbs is not None else None, times=times, user=user or self.user,
            message=message, drop_after=drop_after)

    def clear_fault(self) -> None:
        self.emulator.fault = None

    def set_pod_log(self, namespace: str, name: str, text: str, container: str | None = None) -> None:
        """What ``GET pods/<name>/log`` returns for a started container (per container, or for any container),
        instead of what the log source says."""
        self.emulator.pod_logs[(namespace, name, container)] = text

    def set_log_source(self, source: Callable[[dict[str, Any], str], str | None]) -> None:
        """Where the log of a started container comes from: ``source(pod, container)`` (the stored pod: never modify
        it), called when a client reads it; None or no source: an empty log."""
        self.emulator.log_source = source
