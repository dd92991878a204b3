"""The HTTP face of the twin's Kubernetes API: kmock's KubernetesEmulator, extended to act like kube-apiserver.

What is kept from kmock: the aiohttp handler protocol and ``Server`` plumbing, the DSL dispatch with the
``KubernetesScaffold`` discovery routes (overridden to answer with real shapes), kmock ``Request``
records (``emulator.requests``-style views), and ``ObjectsArray`` as the object store (see ``store``).

What is replaced, and why (kmock 0.8 gaps, each met by the official client):
- request parsing: kmock's path parser raises on ``/api/v1/namespaces`` and reads
  ``/api/v1/namespaces/<name>`` as a namespace with no resource;
- reads: kmock lists have no kind/apiVersion/resourceVersion, no selectors, no pagination, and its watch
  replays everything, ignores resourceVersion and timeoutSeconds and streams application/octet-stream;
- writes: kmock creates objects of unknown resources, has no PUT, no status/binding subresources, no
  patch content types, no uid/creationTimestamp/resourceVersion, and its errors are not real Status objects.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import yaml
from kmock import KubernetesEmulator, KubernetesError, RawHandler, Request, action, resource

from ibconform.twin.apiserver import pod_exec, pod_logs, rbac, tables
from ibconform.twin.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from ibconform.twin.apiserver.request import ApiPath, RequestRecord, k8s_verb, parse_api_path
from ibconform.twin.apiserver.selectors import (
    FieldRequirement,
    LabelRequirement,
    SelectorError,
    field_selector_matches,
    label_selector_matches,
    parse_field_selector,
    parse_label_selector,
)
from ibconform.twin.apiserver.store import (
    ACCESS_REVIEW,
    RULES_REVIEW,
    SELF_REVIEW,
    ApiError,
    Change,
    ResourceType,
    Store,
    Watcher,
    already_exists,
    bad_request,
    conflict,
    generate_name,
    invalid,
    meta,
    method_not_allowed,
    not_found,
    now_rfc3339,
    server_not_found,
)

log = logging.getLogger(__name__)

SERVER_VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.4", "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean", "buildDate": "2024-12-10T18:44:21Z", "goVersion": "go1.22.9", "compiler": "gc",
    "platform": "linux/amd64",
}
WATCH_DEFAULT_TIMEOUT = 1800.0          # kube-apiserver --min-request-timeout
KMOCK_REQUEST_LOG_LIMIT = 10_000
SUBRESOURCE_VERBS = {"status": ("get", "patch", "update"), "binding": ("create",), "log": ("get",),
                     "exec": ("create", "get")}
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
FAULT_REASONS = {
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "Operation cannot be fulfilled: the object has been modified"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: etcdserver: request timed out"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, "
                     "but may still be processing the request"),
}


# ------------------------------------------------------------------------------------ faults and denials

@dataclass
class Fault:
    """An injected failure: requests whose path matches ``paths`` (and verb ``verbs``) wait ``latency``
    seconds, then fail with ``status`` (None: only the delay); a watch it hits is cut off (the connection
    closed mid-stream) after ``drop_after`` events. ``times`` None means until cleared."""

    status: int | None = None
    latency: float = 0.0
    drop_after: int | None = None
    paths: re.Pattern[str] | None = None
    verbs: frozenset[str] | None = None
    times: int | None = None
    user: str = "system:anonymous"
    message: str | None = None

    def applies(self, path: str, verb: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.paths is not None and not self.paths.search(path):
            return False
        return self.verbs is None or verb in self.verbs


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str | None, path: ApiPath | None, raw_path: str, method: str) -> ApiError:
    """The RBAC denial of kube-apiserver, naming user, verb, resource, group and namespace."""
    request = rbac.request_attributes(rbac.UserInfo(user), method, raw_path, path, verb, {})
    return rbac_denial(request)


def rbac_denial(request: rbac.Attributes, reason: str = "") -> ApiError:
    return ApiError(403, "Forbidden", rbac.forbidden_message(request, reason), rbac.forbidden_details(request))


def fault_error(fault: Fault, path: ApiPath | None, raw_path: str, verb: str | None, method: str) -> ApiError:
    status = fault.status or 500
    if status == 401:
        return unauthorized()
    if status == 403:
        return forbidden(fault.user, verb, path, raw_path, method)
    reason, message = FAULT_REASONS.get(status, ("InternalError", f"Internal error occurred: injected {status}"))
    message = fault.message or message
    if status == 429:
        return ApiError(429, reason, message, {"retryAfterSeconds": 1}, headers={"Retry-After": "1"})
    return ApiError(status, reason, message, {"causes": [{"message": message}]} if status == 500 else {})


def encode_continue(resource_version: int, last_key: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": resource_version, "start": last_key + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from None


def json_response(data: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                                content_type="application/json")


def status_response(err: ApiError) -> aiohttp.web.Response:
    response = json_response(err.body(), err.status)
    for name, value in (err.headers or {}).items():
        response.headers[name] = value
    return response


def _success(details: dict[str, Any] | None = None, code: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    if code is not None:
        body["code"] = code
    return body


# ---------------------------------------------------------------------------------------- pod strategy

def _qos_class(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_seen, guaranteed = False, bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if any(r in requests or r in limits for r in ("cpu", "memory")):
            requests_seen = True
        if not all(r in limits and str(requests.get(r, limits[r])) == str(limits[r]) for r in ("cpu", "memory")):
            guaranteed = False
    return "Guaranteed" if guaranteed else "Burstable" if requests_seen else "BestEffort"


def pod_defaults(pod: dict[str, Any]) -> None:
    """The defaulting and admission a fresh pod gets from a stock API server."""
    spec = pod.setdefault("spec", {})
    for key, value in (("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                       ("schedulerName", "default-scheduler"), ("terminationGracePeriodSeconds", 30),
                       ("serviceAccountName", "default"), ("securityContext", {}), ("enableServiceLinks", True),
                       ("priority", 0), ("preemptionPolicy", "PreemptLowerPriority")):
        spec.setdefault(key, value)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):  # DefaultTolerationSeconds
        if not any(t.get("key") == taint for t in tolerations):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        pinned = tagged and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if pinned else "Always")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        for name, quantity in (resources.get("limits") or {}).items():  # requests default to limits
            resources.setdefault("requests", {}).setdefault(name, quantity)
    pod["status"] = {"phase": "Pending", "qosClass": _qos_class(pod)}


# ------------------------------------------------------------------------------------------ the server

@attrs.define(kw_only=True)
class TwinEmulator(KubernetesEmulator):
    """kmock's KubernetesEmulator serving a ``Store`` with kube-apiserver semantics (see module doc)."""

    store: Store
    token: str | None = None
    admin: str = "twin-admin"
    users: dict[str, rbac.UserInfo] = attrs.field(factory=dict)   # bearer token -> user, RBAC-authorized
    records: list[RequestRecord] = attrs.field(factory=list, init=False)
    listeners: list[Callable[[str, dict[str, Any]], None]] = attrs.field(factory=list, init=False)
    fault: Fault | None = attrs.field(default=None, init=False)
    internal_errors: list[BaseException] = attrs.field(factory=list, init=False)
    listener_errors: list[BaseException] = attrs.field(factory=list, init=False)
    pod_logs: dict[tuple[str, str, str | None], str] = attrs.field(factory=dict, init=False)
    watch_tasks: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False)
    dropped_watches: int = attrs.field(default=0, init=False)   # cut off by a fault's drop_after
    kubelets: Callable[[str], pod_exec.Kubelet | None] | None = attrs.field(default=None, init=False)
    log_source: Callable[[dict[str, Any], str], str | None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._objects = self.store.objects  # kmock's ``emulator.objects`` shows the twin's objects
        for probe in ("/healthz", "/livez", "/readyz"):
            self.fallback[f"get {probe}"] << {"Content-Type": "text/plain; charset=utf-8"} << b"ok"

    # -- entry point: record, authenticate, inject faults, route

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw.read()
        record = RequestRecord(raw.method, raw.path, dict(raw.query), time.time())
        self.records.append(record)
        try:
            response = await self._serve(raw, body, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of the twin: answer like a real server would, keep it for tests
            self.internal_errors.append(exc)
            log.exception("twin API server: internal error on %s %s", raw.method, raw.path_qs)
            response = status_response(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}",
                                                {"causes": [{"message": repr(exc)}]}))
        if record.status is None:
            record.status = response.status
        return response

    async def _serve(self, raw: aiohttp.web.BaseRequest, body: bytes,
                     record: RequestRecord) -> aiohttp.web.StreamResponse:
        path = parse_api_path(raw.path)
        query = dict(raw.query)
        verb = k8s_verb(raw.method, path, query)
        if path is not None and path.plural is not None:
            record.verb, record.resource, record.namespace, record.name = (
                verb, path.resource, path.namespace, path.name)
        request = self._kmock_request(raw, body, path, verb)
        self._requests.append(request)
        if len(self._requests) > KMOCK_REQUEST_LOG_LIMIT:  # they hold bodies; ``records`` keeps every request
            del self._requests[: KMOCK_REQUEST_LOG_LIMIT // 2]
        try:
            who = self._impersonate(self._authenticate(raw), raw)
            record.user = who.name
            self._authorize(who, raw, path, verb, query)
            fault = await self._inject_fault(raw, path, verb)
            if path is None or path.plural is None:
                return await RawHandler._handle(self, request)  # discovery through kmock's scaffold routes
            drop_after = fault.drop_after if fault is not None else None
            return await self._serve_resource(raw, body, query, path, verb, record, who, drop_after)
        except ApiError as err:
            return status_response(err)
        except KubernetesError:  # kmock's "no route" for an unknown path
            if raw.path.startswith(("/api/", "/apis/")):
                return status_response(server_not_found())
            return aiohttp.web.Response(status=404, text="404 page not found")

    def _kmock_request(self, raw: aiohttp.web.BaseRequest, body: bytes, path: ApiPath | None,
                       verb: str | None) -> Request:
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        kmock_action = {"list": action.LIST, "watch": action.WATCH, "get": action.FETCH, "create": action.CREATE,
                        "patch": action.UPDATE, "update": action.UPDATE, "delete": action.DELETE}.get(verb or "")
        return Request(
            id=len(self._requests), raw_request=raw, url=raw.url.with_path(raw.path.rstrip("/") or "/"),
            method=raw.method, params=dict(raw.query),
            headers=dict(raw.headers), cookies=dict(raw.cookies), body=body,
            text=body.decode("utf-8", "replace"), data=data, action=kmock_action,
            resource=None if path is None else resource(path.group, path.version, path.plural),
            namespace=None if path is None else path.namespace, name=None if path is None else path.name,
            subresource=None if path is None else path.subresource)

    def _authenticate(self, raw: aiohttp.web.BaseRequest) -> rbac.UserInfo:
        """The admin (``system:masters``) for the admin token, or for anyone when no token is set; a user
        added with ``ApiTwin.add_user`` for its token; else 401."""
        admin = rbac.user(self.admin, [rbac.MASTERS])
        scheme, _, given = raw.headers.get("Authorization", "").partition(" ")
        presented = given.strip().encode() if scheme.lower() == "bearer" else None
        if presented is not None:
            for token, who in list(self.users.items()):
                if hmac.compare_digest(presented, token.encode()):
                    return who
        if self.token is None:
            return admin
        if presented is None or not hmac.compare_digest(presented, self.token.encode()):
            raise unauthorized()
        return admin

    def _impersonate(self, who: rbac.UserInfo, raw: aiohttp.web.BaseRequest) -> rbac.UserInfo:
        """The user the request acts as (``Impersonate-User``, ``-Group``, ``-Uid``: ``kubectl --as``), once
        ``who`` is allowed to impersonate each; ``who`` when it asks for nobody."""
        name = raw.headers.get("Impersonate-User", "")
        groups = raw.headers.getall("Impersonate-Group", [])
        uid = raw.headers.get("Impersonate-Uid", "")
        if not name:
            if groups or uid:
                raise ApiError(500, "InternalError", "Internal error occurred: requested impersonation of groups or "
                                                     "a uid without impersonating a user")
            return who
        if not who.privileged:
            policy = self.rbac_policy()
            for request in rbac.impersonation_requests(who, name, groups, uid):
                decision = rbac.authorize(request, policy)
                if not decision.allowed:
                    raise rbac_denial(request, decision.reason)
        return rbac.impersonated(name, groups)

    def rbac_policy(self) -> rbac.Policy:
        """The stored Roles, ClusterRoles and their bindings, over the bootstrap policy."""
        with self.store.lock:
            def stored(plural: str) -> list[dict[str, Any]]:
                rt = self.store.registry.storage(rbac.GROUP, plural)
                return [obj for _, obj in self.store.items(rt)] if rt is not None else []
            return rbac.Policy.of(stored("clusterroles"), stored("roles"), stored("clusterrolebindings"),
                                      stored("rolebindings"))

    def _authorize(self, who: rbac.UserInfo, raw: aiohttp.web.BaseRequest, path: ApiPath | None,
                   verb: str | None, query: Mapping[str, str]) -> None:
        if who.privileged:
            return
        request = rbac.request_attributes(who, raw.method, raw.path, path, verb, query)
        decision = rbac.authorize(request, self.rbac_policy())
        if not decision.allowed:
            raise rbac_denial(request, decision.reason)

    async def _inject_fault(self, raw: aiohttp.web.BaseRequest, path: ApiPath | None,
                            verb: str | None) -> Fault | None:
        """The fault that hits this request, after its delay; raises its error status if it has one."""
        fault = self.fault
        if fault is None or not fault.applies(raw.path, verb):
            return None
        if fault.times is not None:
            fault.times -= 1
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.status is not None:
            raise fault_error(fault, path, raw.path, verb, raw.method)
        return fault

    def notify(self, changes: list[Change]) -> None:
        """Tell the on_change listeners about writes made through HTTP (on the server's loop)."""
        for change in changes:
            for listener in list(self.listeners):
                try:
                    listener(change.type, copy.deepcopy(change.obj))
                except Exception as exc:
                    self.listener_errors.append(exc)
                    log.exception("twin API server: on_change listener failed on %s", change.type)

    # -- resources

    async def _serve_resource(self, raw: aiohttp.web.BaseRequest, body: bytes, query: dict[str, str],
                              path: ApiPath, verb: str | None, record: RequestRecord,
                              who: rbac.UserInfo, drop_after: int | None = None) -> aiohttp.web.StreamResponse:
        assert path.plural is not None
        with self.store.lock:
            rt = self.store.registry.lookup(path.group, path.version, path.plural)
        if rt is None:
            if (path.group, path.plural, raw.method) == ("", "bindings", "POST") and path.namespace:
                return self._bind(path, body)
            raise server_not_found()
        if (path.namespace is not None and not rt.namespaced) or (
                rt.namespaced and path.namespace is None and (path.name or verb == "create")):
            raise server_not_found()
        if verb == "create" and not path.name and (rt.group, rt.plural) in (ACCESS_REVIEW, RULES_REVIEW, SELF_REVIEW):
            if (rt.group, rt.plural) == RULES_REVIEW:
                return self._rules_review(body, who)
            if (rt.group, rt.plural) == SELF_REVIEW:
                return self._self_review(who)
            return self._access_review(body, who)
        if path.subresource is not None:
            if path.subresource not in rt.subresources:
                raise server_not_found()
            if verb not in SUBRESOURCE_VERBS[path.subresource]:
                raise method_not_allowed()
            if path.subresource == "exec":
                return await self._exec(raw, rt, path, record)
        elif verb is None or verb not in rt.verbs or (raw.method == "POST" and path.name):
            raise method_not_allowed()

        accept = raw.headers.get("Accept", "")
        if verb == "list":
            return self._list(rt, path, query, accept)
        if verb == "watch":
            return await self._watch(raw, rt, path, query, record, drop_after)
        if verb == "get":
            if path.subresource == "log":
                return await self._log(raw, rt, path, query)
            return self._get(rt, path, query, accept if path.subresource is None else "")
        if verb == "create":
            return self._bind(path, body) if path.subresource == "binding" else self._create(rt, path, query, body)
        if verb in ("update", "patch"):
            return self._update(rt, path, query, body, raw.headers.get("Content-Type", "") if verb == "patch" else None)
        if verb == "delete":
            return self._delete(rt, path, query, body)
        return self._delete_collection(rt, path, query, body)

    @staticmethod
    def _present(rt: ResourceType, obj: dict[str, Any], in_list: bool = False) -> dict[str, Any]:
        """As served at ``rt``'s version; built-in List items carry no apiVersion/kind, like the real server."""
        if in_list and not rt.custom:
            return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        if obj.get("apiVersion") != rt.api_version:
            return {**obj, "apiVersion": rt.api_version}
        return obj

    @staticmethod
    def _selectors(rt: ResourceType, query: Mapping[str, str]) -> tuple[tuple[LabelRequirement, ...],
                                                                         tuple[FieldRequirement, ...]]:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"))
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        for requirement in fields:
            if requirement.field not in rt.field_labels:
                raise bad_request(f'field label not supported: {requirement.field}')
        return labels, fields

    @staticmethod
    def _matcher(path: ApiPath, labels: tuple[LabelRequirement, ...],
                 fields: tuple[FieldRequirement, ...]) -> Callable[[Mapping[str, Any] | None], bool]:
        def matches(obj: Mapping[str, Any] | None) -> bool:
            if obj is None:
                return False
            metadata = meta(obj)
            return ((path.namespace is None or metadata.get("namespace") == path.namespace)
                    and (path.name is None or metadata.get("name") == path.name)
                    and label_selector_matches(labels, metadata.get("labels"))
                    and field_selector_matches(fields, obj))
        return matches

    @staticmethod
    def _printer(rt: ResourceType, accept: str) -> tuple[tables.Printer, str] | None:
        """The printer and Table version for a client asking for a ``Table`` (``kubectl get``), or None to answer
        plain JSON."""
        version = tables.table_version(accept)
        if version is None:
            return None
        printer = tables.printer_for(rt)
        if printer is None:
            if tables.accepts_json(accept):
                return None
            raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json")
        return printer, version

    def _table(self, rt: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any],
               query: Mapping[str, str], accept: str) -> aiohttp.web.Response | None:
        """The ``Table`` of ``objects`` for a client asking for one, or None to answer plain JSON."""
        found = self._printer(rt, accept)
        if found is None:
            return None
        printer, version = found
        return json_response(tables.table(printer, objects, version=version, include=query.get("includeObject"),
                                             list_meta=list_meta))

    def _list(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str],
              accept: str = "") -> aiohttp.web.Response:
        labels, fields = self._selectors(rt, query)
        matches = self._matcher(path, labels, fields)
        limit = _int_param(query, "limit")
        with self.store.lock:
            items = self.store.items(rt, path.namespace)
            resource_version = self.store.resource_version
        if query.get("continue"):
            resource_version, start = decode_continue(query["continue"])
            items = items[bisect.bisect_left([key for key, _ in items], start):]
        matched = [(key, obj) for key, obj in items if matches(obj)]
        list_meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
        if limit and len(matched) > limit:
            list_meta["continue"] = encode_continue(resource_version, matched[limit - 1][0])
            if not labels and not fields:
                list_meta["remainingItemCount"] = len(matched) - limit
            matched = matched[:limit]
        table = self._table(rt, [self._present(rt, obj) for _, obj in matched], list_meta, query, accept)
        return table or json_response({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta,
                                       "items": [self._present(rt, obj, in_list=True) for _, obj in matched]})

    def _get(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str], accept: str = "") -> aiohttp.web.Response:
        assert path.name is not None
        obj = self.store.get(rt, path.namespace, path.name)
        if obj is None:
            raise not_found(rt, path.name)
        shown = self._present(rt, obj)
        return self._table(rt, [shown], {"resourceVersion": meta(obj).get("resourceVersion", "")}, query,
                           accept) or json_response(shown)

    async def _log(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, path: ApiPath,
                   query: Mapping[str, str]) -> aiohttp.web.Response:
        """``pods/<name>/log`` (``pod_logs``): nothing before the pod is bound, the kubelet's refusal for a container
        that has not started, the dial error of a node that does not answer, else what the container logged."""
        assert path.name is not None and path.namespace is not None
        pod = self.store.get(rt, path.namespace, path.name)
        if pod is None:
            raise not_found(rt, path.name)
        container = pod_logs.container(pod, query.get("container"))
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return aiohttp.web.Response(text="", content_type="text/plain")
        refusal = pod_logs.refusal(pod, container, query.get("previous") in ("true", "1"))
        if refusal is not None:
            raise refusal
        kubelet = self.kubelets(node) if self.kubelets is not None else None
        if kubelet is not None and kubelet.fault == "refused":
            raise pod_logs.dial_error(kubelet, pod, container)
        if kubelet is not None and kubelet.fault == "hung":
            await asyncio.Event().wait()      # no answer, ever: ends when the client (or the server) goes
        text = self.pod_logs.get((path.namespace, path.name, container))
        if text is None:
            text = self.pod_logs.get((path.namespace, path.name, None))
        if text is None and self.log_source is not None:
            text = self.log_source(pod, container)
        body = pod_logs.select(text or "", query)
        if query.get("follow") in ("true", "1") and pod_logs.running(pod, container):
            return await self._follow(raw, rt, pod, container, body)
        return aiohttp.web.Response(text=body, content_type="text/plain")

    async def _follow(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, pod: dict[str, Any], container: str,
                      body: str) -> aiohttp.web.StreamResponse:
        """A followed log: what it has so far, then the stream held open until the container stops running, the pod
        goes, or the server stops (the twin's containers log nothing more)."""
        uid = meta(pod).get("uid")
        loop = asyncio.get_running_loop()
        watcher, _, _ = self.store.subscribe(rt, loop, None)
        task = asyncio.current_task()
        if task is not None:
            self.watch_tasks.add(task)
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(raw)
            await response.write(body.encode())
            while (change := await watcher.queue.get()) is not None:
                if meta(change.obj).get("uid") == uid and (
                        change.type == "DELETED" or not pod_logs.running(change.obj, container)):
                    break
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away
            pass
        finally:
            self._stream_ended(watcher, task)
        return response

    def _stream_ended(self, watcher: Watcher, task: asyncio.Task | None) -> None:
        """A watch or followed log is over: stop feeding it, and forget its task."""
        self.store.unsubscribe(watcher)
        if task is not None:
            self.watch_tasks.discard(task)

    async def _exec(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, path: ApiPath,
                    record: RequestRecord) -> aiohttp.web.StreamResponse:
        """``pods/<name>/exec``, run on the node the pod is bound to (``kubelets`` says how to reach it; a node it
        does not know refuses, like a kubelet that is not there). Ends when the server stops, like a watch."""
        assert path.name is not None
        pod = self.store.get(rt, path.namespace, path.name)
        if pod is None:
            raise not_found(rt, path.name)
        request = pod_exec.exec_request(pod, raw.query)
        kubelet = (self.kubelets(request.node) if self.kubelets is not None else None) or pod_exec.Kubelet(
            request.node, fault="refused")
        task = asyncio.current_task()
        if task is not None:
            self.watch_tasks.add(task)
        try:
            return await pod_exec.serve(raw, request, kubelet, record)
        finally:
            if task is not None:
                self.watch_tasks.discard(task)

    # -- writes

    def _create(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str], body: bytes) -> aiohttp.web.Response:
        data = _json_object(body)
        with self.store.lock:
            obj, changes = self._create_locked(rt, path.namespace, data, dry_run="dryRun" in query)
        self.notify(changes)
        return json_response(self._present(rt, obj), 201)

    def _create_locked(self, rt: ResourceType, namespace: str | None, data: dict[str, Any],
                       dry_run: bool) -> tuple[dict[str, Any], list[Change]]:
        obj = copy.deepcopy(data)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        metadata = obj["metadata"]
        if obj.get("kind") and obj["kind"] != rt.kind:
            raise bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): "
                              f"kind {obj['kind']!r} does not match")
        if obj.get("apiVersion") and obj["apiVersion"] != rt.api_version:
            raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                              f"API version ({rt.api_version})")
        if metadata.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            assert namespace is not None
            if metadata.get("namespace") not in (None, "", namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            metadata["namespace"] = namespace
            if not self.store.namespace_exists(namespace):
                namespaces = self.store.registry.storage("", "namespaces")
                assert namespaces is not None
                raise not_found(namespaces, namespace)
        name = metadata.get("name") or ""
        if not name and not metadata.get("generateName"):
            raise invalid(rt, "", "metadata.name", "Required value: name or generateName is required")
        if name and (len(name) > 253 or not DNS_SUBDOMAIN.fullmatch(name)):
            raise invalid(rt, name, "metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain '
                          "must consist of lower case alphanumeric characters, '-' or '.', and must start and "
                          "end with an alphanumeric character")
        if (rt.group, rt.plural) == ("", "pods"):
            if not (obj.get("spec") or {}).get("containers"):
                raise invalid(rt, name, "spec.containers", "Required value")
            pod_defaults(obj)
        elif (rt.group, rt.plural) == ("", "namespaces"):
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif "status" in rt.subresources and (rt.group, rt.plural) != ("", "nodes"):
            obj.pop("status", None)  # status is written through /status only (nodes register with theirs)
        self.store.fill_metadata(rt, obj, None)
        if not name:  # generateName: retry a clash, as the server does
            for _ in range(8):
                if self.store.get(rt, namespace, obj["metadata"]["name"]) is None:
                    break
                obj["metadata"]["name"] = generate_name(obj["metadata"]["generateName"])
        if self.store.get(rt, namespace, obj["metadata"]["name"]) is not None:
            raise already_exists(rt, obj["metadata"]["name"])
        if dry_run:
            return obj, []
        return obj, self.store.write(rt, obj)

    def _update(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str], body: bytes,
                content_type: str | None) -> aiohttp.web.Response:
        assert path.name is not None
        media = (content_type or "").split(";")[0].strip().lower()
        dry_run = "dryRun" in query
        with self.store.lock:
            old = self.store.get(rt, path.namespace, path.name)
            if old is None:
                if content_type is not None and media == APPLY_PATCH:  # server-side apply creates
                    data = _yaml_object(body)
                    data.setdefault("metadata", {})["name"] = path.name
                    obj, changes = self._create_locked(rt, path.namespace, data, dry_run)
                    created = True
                else:
                    raise not_found(rt, path.name)
            else:
                created = False
                if content_type is not None:
                    new = self._patched(rt, old, body, media)
                else:
                    new = _json_object(body)
                    if meta(new).get("name") not in (None, path.name):
                        raise bad_request(f"the name of the object ({meta(new).get('name')}) does not match the "
                                          f"name on the URL ({path.name})")
                    if rt.namespaced and meta(new).get("namespace") not in (None, "", path.namespace):
                        raise bad_request("the namespace of the provided object does not match the namespace "
                                          "sent on the request")
                obj = self._prepare_update(rt, old, new, path.subresource)
                changes = [] if dry_run or obj == old else self._commit(rt, obj)
        self.notify(changes)
        return json_response(self._present(rt, changes[0].obj if changes else obj), 201 if created else 200)

    def _patched(self, rt: ResourceType, old: dict[str, Any], body: bytes, media: str) -> dict[str, Any]:
        accepted = [JSON_PATCH, MERGE_PATCH] + ([] if rt.custom else [STRATEGIC_MERGE_PATCH]) + [APPLY_PATCH]
        if media not in accepted:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: " + ", ".join(accepted))
        try:
            if media == JSON_PATCH:
                result = json_patch(old, json.loads(body or b"null"))
            elif media == APPLY_PATCH:
                result = merge_patch(old, _yaml_object(body))
            else:
                data = _json_object(body)
                result = merge_patch(old, data) if media == MERGE_PATCH else strategic_merge_patch(old, data)
        except ValueError as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}",
                           {"name": meta(old).get("name"), "kind": rt.kind}) from None
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object", {})
        return result

    def _prepare_update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                        subresource: str | None) -> dict[str, Any]:
        name = meta(old)["name"]
        given = meta(new).get("resourceVersion")
        if given and given != meta(old).get("resourceVersion"):
            raise conflict(rt, name, "the object has been modified; please apply your changes to the latest "
                                     "version and try again")
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
            return result
        result = copy.deepcopy(new)
        if not isinstance(result.get("metadata"), dict):
            result["metadata"] = {}
        for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds"):  # clients cannot set these
            result["metadata"].pop(server_owned, None)
        result["metadata"]["name"] = name
        if rt.namespaced:
            result["metadata"]["namespace"] = meta(old).get("namespace")
        if "status" in rt.subresources:  # the main resource ignores status changes
            if "status" in old:
                result["status"] = copy.deepcopy(old["status"])
            else:
                result.pop("status", None)
        self.store.fill_metadata(rt, result, old)
        result["metadata"]["resourceVersion"] = meta(old).get("resourceVersion")
        return result

    def _commit(self, rt: ResourceType, obj: dict[str, Any]) -> list[Change]:
        """Store an update; an object being deleted whose last finalizer went is removed."""
        metadata = meta(obj)
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self.store.remove(rt, metadata.get("namespace"), metadata["name"])
        return self.store.write(rt, obj)

    def _delete_one(self, rt: ResourceType, old: dict[str, Any], options: Mapping[str, Any],
                    propagation: str, dry_run: bool) -> tuple[dict[str, Any], list[Change], bool]:
        """Delete or mark for deletion; return (object to show, changes, still there)."""
        name = meta(old)["name"]
        preconditions = options.get("preconditions") or {}
        for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field_name)
            if wanted and wanted != meta(old).get(field_name):
                raise conflict(rt, name, f"Precondition failed: {label} in precondition: {wanted}, "
                                         f"{label} in object meta: {meta(old).get(field_name)}")
        if dry_run:
            return old, [], True
        if meta(old).get("finalizers"):
            if meta(old).get("deletionTimestamp"):
                return old, [], True
            marked = copy.deepcopy(old)
            marked["metadata"].update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0)
            return marked, self.store.write(rt, marked), True
        return old, self.store.remove(rt, meta(old).get("namespace"), name, propagation), False

    @staticmethod
    def _delete_options(query: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], str, bool]:
        options = _json_object(body) if body.strip() else {}
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background")
        if propagation not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f"propagationPolicy: Unsupported value: {propagation!r}")
        return options, propagation, "dryRun" in query or bool(options.get("dryRun"))

    def _delete(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str], body: bytes) -> aiohttp.web.Response:
        assert path.name is not None
        options, propagation, dry_run = self._delete_options(query, body)
        with self.store.lock:
            old = self.store.get(rt, path.namespace, path.name)
            if old is None:
                raise not_found(rt, path.name)
            shown, changes, remains = self._delete_one(rt, old, options, propagation, dry_run)
        self.notify(changes)
        if (rt.group, rt.plural) == ("", "namespaces"):
            shown = copy.deepcopy(shown)
            shown["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            shown["status"] = {"phase": "Terminating"}
            return json_response(self._present(rt, shown))
        if remains or (rt.group, rt.plural) == ("", "pods"):
            return json_response(self._present(rt, shown))
        details = {"name": path.name, **({"group": rt.group} if rt.group else {}), "kind": rt.plural,
                   "uid": meta(old).get("uid")}
        return json_response(_success(details))

    def _delete_collection(self, rt: ResourceType, path: ApiPath, query: Mapping[str, str],
                           body: bytes) -> aiohttp.web.Response:
        labels, fields = self._selectors(rt, query)
        matches = self._matcher(path, labels, fields)
        options, propagation, dry_run = self._delete_options(query, body)
        deleted, changes = [], []
        with self.store.lock:
            for _, obj in self.store.items(rt, path.namespace):
                if matches(obj):
                    shown, more, _ = self._delete_one(rt, obj, options, propagation, dry_run)
                    deleted.append(self._present(rt, shown, in_list=True))
                    changes += more
            resource_version = self.store.resource_version
        self.notify(changes)
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(resource_version)}, "items": deleted})

    def _bind(self, path: ApiPath, body: bytes) -> aiohttp.web.Response:
        """``POST pods/<name>/binding`` (or ``bindings``): what the scheduler does to place a pod."""
        binding = _json_object(body)
        pods = self.store.registry.storage("", "pods")
        assert pods is not None and path.namespace is not None
        pod_name = path.name if path.subresource == "binding" else meta(binding).get("name")
        node = (binding.get("target") or {}).get("name")
        if not pod_name:
            raise invalid(pods, "", "metadata.name", "Required value: name is required")
        if not node:
            raise invalid(pods, pod_name, "target.name", "Required value")
        with self.store.lock:
            pod = self.store.get(pods, path.namespace, pod_name)
            if pod is None:
                raise not_found(pods, pod_name)
            if meta(pod).get("deletionTimestamp"):
                raise conflict(pods, pod_name, f"pod {pod_name} is being deleted, cannot be assigned to a host",
                               what="pods/binding")
            current = (pod.get("spec") or {}).get("nodeName")
            if current:
                raise conflict(pods, pod_name, f'pod {pod_name} is already assigned to node "{current}"',
                               what="pods/binding")
            bound = copy.deepcopy(pod)
            bound.setdefault("spec", {})["nodeName"] = node
            conditions = [c for c in (bound.setdefault("status", {}).get("conditions") or [])
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": now_rfc3339()})
            bound["status"]["conditions"] = conditions
            changes = self.store.write(pods, bound)
        self.notify(changes)
        return json_response(_success(code=201), 201)

    def _access_review(self, body: bytes, who: rbac.UserInfo) -> aiohttp.web.Response:
        """SelfSubjectAccessReview: what RBAC says of that request for the asking user, and denied if an
        injected 403 would deny it."""
        review = _json_object(body)
        spec = review.get("spec") or {}
        attributes, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        decision = rbac.authorize(self._review_attributes(who, attributes, non_resource), self.rbac_policy())
        fault, denied = self.fault, not decision.allowed
        if fault is not None and fault.status == 403:
            if attributes:
                group, plural = attributes.get("group", ""), attributes.get("resource", "")
                with self.store.lock:
                    storage = self.store.registry.storage(group, plural)
                version = attributes.get("version") or (storage.version if storage else "v1")
                path = "/".join(p for p in (
                    f"/apis/{group}/{version}" if group else f"/api/{version}",
                    f"namespaces/{attributes['namespace']}" if attributes.get("namespace") else "",
                    plural, attributes.get("name", ""), attributes.get("subresource", "")) if p)
                denied = denied or fault.applies(path, attributes.get("verb"))
            elif non_resource:
                denied = denied or fault.applies(non_resource.get("path", ""), None)
        status: dict[str, Any] = {"allowed": not denied}
        if decision.reason:
            status["reason"] = decision.reason
        return json_response({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                              "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}, 201)

    def _rules_review(self, body: bytes, who: rbac.UserInfo) -> aiohttp.web.Response:
        """SelfSubjectRulesReview: every rule RBAC grants the asking user in ``spec.namespace``, resource rules and
        non-resource rules apart (``kubectl auth can-i --list``)."""
        review = _json_object(body)
        spec = review.get("spec") or {}
        namespace = str(spec.get("namespace") or "")
        if not namespace:
            raise bad_request("no namespace on request")
        rules, errors = rbac.rules_for(who, namespace, self.rbac_policy())
        resource_rules = [{"verbs": list(r.get("verbs") or []), "apiGroups": list(r.get("apiGroups") or []),
                           "resources": list(r.get("resources") or []),
                           **({"resourceNames": list(r["resourceNames"])} if r.get("resourceNames") else {})}
                          for r in rules if r.get("resources")]
        non_resource_rules = [{"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])}
                              for r in rules if r.get("nonResourceURLs")]
        status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                                  "incomplete": False}
        if errors:
            status["evaluationError"] = ", ".join(errors)
        return json_response({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                              "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}, 201)

    @staticmethod
    def _self_review(who: rbac.UserInfo) -> aiohttp.web.Response:
        """SelfSubjectReview: who the request authenticated (or acts) as (``kubectl auth whoami``)."""
        return json_response({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                              "metadata": {"creationTimestamp": None},
                              "status": {"userInfo": {"username": who.name, "groups": list(who.groups)}}}, 201)

    @staticmethod
    def _review_attributes(who: rbac.UserInfo, attributes: Mapping[str, Any] | None,
                           non_resource: Mapping[str, Any] | None) -> rbac.Attributes:
        if attributes:
            return rbac.Attributes(
                who, str(attributes.get("verb") or ""), namespace=str(attributes.get("namespace") or ""),
                api_group=str(attributes.get("group") or ""), resource=str(attributes.get("resource") or ""),
                subresource=str(attributes.get("subresource") or ""), name=str(attributes.get("name") or ""))
        non_resource = non_resource or {}
        return rbac.Attributes(who, str(non_resource.get("verb") or ""), path=str(non_resource.get("path") or ""))

    # -- watch

    async def _watch(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, path: ApiPath,
                     query: Mapping[str, str], record: RequestRecord,
                     drop_after: int | None = None) -> aiohttp.web.StreamResponse:
        """A watch; a client asking for ``Table`` (``kubectl get -w``) gets each object as a one-row Table, the column
        definitions in the first one only."""
        labels, fields = self._selectors(rt, query)
        matches = self._matcher(path, labels, fields)
        printing = self._printer(rt, raw.headers.get("Accept", ""))
        tables_sent = 0

        def shown(obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal tables_sent
            presented = self._present(rt, obj)
            if printing is None:
                return presented
            tables_sent += 1
            return tables.table(printing[0], [presented], version=printing[1], include=query.get("includeObject"),
                                   list_meta={"resourceVersion": meta(obj).get("resourceVersion", "")},
                                   headers=tables_sent == 1)
        since_text = query.get("resourceVersion") or ""
        try:
            since = None if since_text in ("", "0") else int(since_text)
        except ValueError:
            raise bad_request(f'resourceVersion: Invalid value: "{since_text}": must be an integer') from None
        timeout = float(_int_param(query, "timeoutSeconds") or WATCH_DEFAULT_TIMEOUT)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        loop = asyncio.get_running_loop()
        with self.store.lock:
            watcher, backlog, _ = self.store.subscribe(rt, loop, since)
            initial = [obj for _, obj in self.store.items(rt, path.namespace)] if since is None else []
            compacted = self.store.compacted_rv
        task = asyncio.current_task()
        if task is not None:
            self.watch_tasks.add(task)
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()

        sent = 0

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            nonlocal sent
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
            await response.write(line.encode())
            sent += 1
            if drop_after is not None and sent >= drop_after:  # a dropped watch: no last chunk, no EOF
                self.dropped_watches += 1
                if raw.transport is not None:
                    raw.transport.close()
                raise ConnectionResetError("watch dropped by an injected fault")

        try:
            await response.prepare(raw)
            record.status = 200
            if since is not None and backlog is None:
                expired = ApiError(410, "Expired", f"too old resource version: {since} ({compacted})")
                await send("ERROR", expired.body())
            else:
                for obj in initial:
                    if matches(obj):
                        await send("ADDED", shown(obj))
                for change in backlog or []:
                    if event := _watch_event(change, matches):
                        await send(event[0], shown(event[1]))
                deadline = loop.time() + timeout
                while (remaining := deadline - loop.time()) > 0:
                    try:
                        change = await asyncio.wait_for(watcher.queue.get(), remaining)
                    except TimeoutError:
                        break
                    if change is None:  # the server is stopping
                        break
                    if event := _watch_event(change, matches):
                        await send(event[0], shown(event[1]))
                if bookmarks:
                    await send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                            "metadata": {"resourceVersion": str(self.store.resource_version)}})
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away mid-stream
            pass
        finally:
            self._stream_ended(watcher, task)
        return response

    # -- discovery (kmock's scaffold routes call these)

    def _get_resources(self) -> list[resource]:
        with self.store.lock:
            return [resource(rt.group, rt.version, rt.plural) for rt in self.store.registry.all()]

    async def _serve_root(self, request: Request) -> dict[str, Any]:
        paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
        with self.store.lock:
            for group, versions in self.store.registry.groups().items():
                paths |= {f"/apis/{group}"} | {f"/apis/{group}/{v}" for v in versions}
        return {"paths": sorted(paths)}

    async def _serve_server_version(self, request: Request) -> dict[str, Any]:
        return dict(SERVER_VERSION)

    async def _serve_api(self, request: Request) -> dict[str, Any]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{request.url.host}:{request.url.port}"}]}

    async def _serve_apis(self, request: Request) -> dict[str, Any]:
        with self.store.lock:
            groups = self.store.registry.groups()
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_api_group(g, vs) for g, vs in groups.items()]}

    async def _serve_group(self, request: Request) -> dict[str, Any]:
        parts = [p for p in request.url.path.split("/") if p]
        if len(parts) != 2:
            return await self._serve_version(request)
        with self.store.lock:
            versions = self.store.registry.groups().get(parts[1])
        if not versions:
            raise server_not_found()
        return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1], versions)}

    async def _serve_version(self, request: Request) -> dict[str, Any]:
        path = parse_api_path(request.url.path)
        if path is None or path.plural is not None:
            raise server_not_found()
        with self.store.lock:
            types = self.store.registry.in_group_version(path.group, path.version)
        if not types:
            raise server_not_found()
        resources = []
        for rt in sorted(types, key=lambda t: t.plural):
            entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                                     "kind": rt.kind, "verbs": list(rt.verbs)}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                kind = "Binding" if sub == "binding" else rt.kind
                resources.append({"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": kind, "verbs": list(SUBRESOURCE_VERBS[sub])})
        group_version = f"{path.group}/{path.version}" if path.group else path.version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _watch_event(change: Change, matches: Callable[[Mapping[str, Any] | None], bool]) -> tuple[str, dict] | None:
    """What one watcher sees of a change: objects entering/leaving its selector are ADDED/DELETED."""
    if change.type != "MODIFIED":
        return (change.type, change.obj) if matches(change.obj) else None
    was, now = matches(change.old), matches(change.obj)
    if was and now:
        return "MODIFIED", change.obj
    if now:
        return "ADDED", change.obj
    if was:
        return "DELETED", change.obj
    return None


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name}: Invalid value: {text!r}: must be an integer") from None
    if value < 0:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    return data


def _yaml_object(body: bytes) -> dict[str, Any]:
    try:
        data = yaml.safe_load(body) if body.strip() else None
    except yaml.YAMLError as exc:
        raise bad_request(f"error decoding YAML: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be an object")
    return data
