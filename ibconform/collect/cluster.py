"""Cluster collector: a fixed handful of paginated LIST calls, whatever the node count.

Each List is saved raw, as ``kubectl get <plural> -o json`` prints it, to ``cluster/<plural>.json``.
What could not be listed (CRD missing, 401, 403, API down) is saved to ``cluster/errors.json`` with a
one-line reason, and the checks that need it end in error with that reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from ibconform.collect import incluster
from ibconform.errors import IbconformError, UsageError
from ibconform.inventory import Inventory

PAGE_SIZE = 500


@dataclass(frozen=True)
class Resource:
    plural: str
    group: str          # "" for core
    version: str
    namespaced: bool    # listed in its component's namespace, else cluster-wide
    owner: str          # what installs it, for "not installed" messages
    component: str = "sriov"   # whose namespace it is listed in (inventory.COMPONENTS)

    @property
    def api_path(self) -> str:
        return f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"

    @property
    def full_name(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


NODES = Resource("nodes", "", "v1", False, "Kubernetes")
PODS = Resource("pods", "", "v1", True, "Kubernetes")
EVENTS = Resource("events", "", "v1", True, "Kubernetes")
SRIOV = "the SR-IOV Network Operator"
IPAM = "nv-ipam (NicClusterPolicy spec.nvIpam)"
RESOURCES = (
    NODES,
    PODS,   # listed in every component's namespace (collect_cluster)
    Resource("sriovnetworknodestates", "sriovnetwork.openshift.io", "v1", True, SRIOV),
    Resource("sriovnetworknodepolicies", "sriovnetwork.openshift.io", "v1", True, SRIOV),
    Resource("sriovibnetworks", "sriovnetwork.openshift.io", "v1", True, SRIOV),
    Resource("sriovoperatorconfigs", "sriovnetwork.openshift.io", "v1", True, SRIOV),
    Resource("sriovnetworkpoolconfigs", "sriovnetwork.openshift.io", "v1", True, SRIOV),
    Resource("nicclusterpolicies", "mellanox.com", "v1alpha1", False, "the NVIDIA Network Operator"),
    Resource("ippools", "nv-ipam.nvidia.com", "v1alpha1", True, IPAM, "ipam"),
    Resource("cidrpools", "nv-ipam.nvidia.com", "v1alpha1", True, IPAM, "ipam"),
    Resource("nodemaintenances", "maintenance.nvidia.com", "v1alpha1", False, "the NVIDIA maintenance operator"),
)


class ReadOnlyViolation(IbconformError):
    """A write was attempted through a read-only API client: a bug, never sent."""


class ReadOnlyRestClient:
    """Wraps the client's REST layer and refuses every method but GET, so --read-only is enforced in the
    code path, not only by convention."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        if method.upper() not in self.SAFE:
            raise ReadOnlyViolation(f"read-only run refused to send {method} {url.split('?')[0]}")
        return self._inner.request(method, url, *args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def kube_target(inventory: Inventory, kubeconfig: str | None, context: str | None) -> tuple[str | None, str | None]:
    """(kubeconfig path, context): the command line's, else the inventory's (relative to its file)."""
    k8s = inventory.model.kubernetes
    path = kubeconfig or k8s.kubeconfig
    if path and not kubeconfig and not os.path.isabs(os.path.expanduser(path)):
        path = str(inventory.path.parent / path)
    return path, context or k8s.context


def api_client(kubeconfig: str | None = None, context: str | None = None, timeout: float = 30.0,
               read_only: bool = False) -> client.ApiClient:
    """An ApiClient from ``kubeconfig``/``context``, else $KUBECONFIG, else the pod's ServiceAccount when in a pod,
    else ~/.kube/config; with ``read_only`` it cannot send anything but GET. ``ibconform_access`` says which
    (the server and the credentials' source, never a secret)."""
    configuration = client.Configuration()
    if kubeconfig is None and "KUBECONFIG" not in os.environ and incluster.in_pod():
        access = incluster.load(configuration)
    else:
        access = _load_kubeconfig(configuration, kubeconfig, context)
    configuration.retries = urllib3.Retry(total=1, read=0)  # a refused connection is tried again, a slow answer not
    api = client.ApiClient(configuration)
    api.ibconform_timeout = timeout
    api.ibconform_access = access
    if read_only:
        api.rest_client = ReadOnlyRestClient(api.rest_client)
    return api


def _load_kubeconfig(configuration: client.Configuration, kubeconfig: str | None, context: str | None) -> str:
    where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        config.load_kube_config(config_file=os.path.expanduser(kubeconfig) if kubeconfig else None,
                                context=context, client_configuration=configuration)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        pod = kubeconfig is None and "KUBECONFIG" not in os.environ and os.environ.get(incluster.HOST_ENV)
        hint = (f" (in a pod, but no ServiceAccount token at {incluster.SERVICE_ACCOUNT_DIR / 'token'}: set "
                "automountServiceAccountToken: true)") if pod else ""
        raise UsageError(f"kubeconfig {where}: {exc}{hint}") from None
    return (f"kubeconfig {where}" + (f", context {context}" if context else "")
            + f", {incluster.without_userinfo(configuration.host)}")


def timed_out(exc: Exception) -> bool:
    """The API server did not answer (connect or read) within the request timeout."""
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    return isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError)  # a refused connection, though a ConnectTimeoutError by class


def call_name(verb: str, res: Resource, namespace: str | None) -> str:
    """How messages name an API call: ``list pods in namespace x`` / ``list nodes (cluster-wide)``."""
    return f"{verb} {res.full_name}" + (f" in namespace {namespace}" if namespace else " (cluster-wide)")


def describe_error(exc: Exception, verb: str, res: Resource, namespace: str | None,
                   grant: str = "bind the ibconform role (deploy/rbac/readonly.yaml)",
                   timeout: float | None = None) -> str:
    """One line saying why a call failed and what to do (``grant``: how to get the permission; ``timeout``:
    the request timeout, named when it passed); never echoes credentials."""
    what = call_name(verb, res, namespace)
    if timeout is not None and timed_out(exc):
        return (f"{what}: no answer within {timeout:g} s (kubernetes.timeout): the API server is overloaded or "
                "unreachable — check its health, or raise kubernetes.timeout")
    if isinstance(exc, ApiException):
        if exc.status == 404:
            return (f"{what}: not found (404): the {res.full_name} API is not served — "
                    f"is {res.owner} installed?")
        if exc.status == 401:
            return f"{what}: unauthorized (401): the kubeconfig credentials were rejected — renew the token"
        if exc.status == 403:
            return f"{what}: forbidden (403): the account may not {what} — {grant}"
        reason = _status_message(exc) or exc.reason
        return f"{what}: API error {exc.status}: {reason}"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return (f"{what}: API server unreachable or too slow ({type(exc).__name__}): "
                "check the kubeconfig server and the network")
    return f"{what}: {type(exc).__name__}: {exc}"


def _status_message(exc: ApiException) -> str | None:
    try:
        return json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        return None


def _list_page(api: client.ApiClient, res: Resource, namespace: str | None, token: str | None,
               label_selector: str | None = None):
    """One LIST call; the raw response (not the client's models: the bundle keeps the API's JSON)."""
    kwargs = {"limit": PAGE_SIZE, "_preload_content": False, "_request_timeout": api.ibconform_timeout}
    if token:
        kwargs["_continue"] = token
    if label_selector:
        kwargs["label_selector"] = label_selector
    if not res.group:
        core = client.CoreV1Api(api)
        call = (lambda **kw: core.list_namespaced_pod(namespace, **kw)) if res.namespaced else core.list_node
        return call(**kwargs)
    custom = client.CustomObjectsApi(api)
    if namespace:
        return custom.list_namespaced_custom_object(res.group, res.version, namespace, res.plural, **kwargs)
    return custom.list_cluster_custom_object(res.group, res.version, res.plural, **kwargs)


def list_pages(api: client.ApiClient, res: Resource, namespace: str | None,
               label_selector: str | None = None) -> Iterator[dict]:
    """LIST ``res`` page by page (limit/continue), yielding each page's List document as it arrives: a reader
    holds one page at a time."""
    token = None
    while True:
        response = _list_page(api, res, namespace, token, label_selector)
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason, body=response.data)
        page = json.loads(response.data)
        if not isinstance(page, dict) or not isinstance(page.get("items") or [], list):
            raise ValueError(f"LIST {res.full_name} returned no List object")
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def list_all(api: client.ApiClient, res: Resource, namespace: str | None, label_selector: str | None = None) -> dict:
    """LIST ``res`` (those matching ``label_selector``) page by page (limit/continue); one List document."""
    items: list = []
    for page in list_pages(api, res, namespace, label_selector):
        items += page.get("items") or []
    return {"apiVersion": page.get("apiVersion", res.version), "kind": page.get("kind", "List"),
            "metadata": {"resourceVersion": (page.get("metadata") or {}).get("resourceVersion", "")},
            "items": items}


LIST_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def read_lists(api: client.ApiClient, inventory: Inventory,
               on_page: Callable[[Resource, str | None, dict], None]) -> dict[str, str]:
    """LIST every resource of RESOURCES, handing each page to ``on_page(resource, namespace, page)`` as it arrives;
    return the errors by plural (a List that failed part-way may have handed some pages over already).

    Once a LIST gets no answer within the request timeout the others are not sent (each error says so):
    a slow API server costs one timeout, not one per List.
    """
    k8s = inventory.model.kubernetes
    errors: dict[str, str] = {}
    silent = None  # the first LIST the API server did not answer in time
    for res in RESOURCES:
        # pods: one LIST per namespace a component runs in (at most three)
        namespaces = k8s.component_namespaces if res is PODS else [
            k8s.namespace_of(res.component) if res.namespaced else None]
        for ns in namespaces:
            what = call_name("list", res, ns)
            if silent is not None:
                errors[res.plural] = (f"{what}: not sent: the API server did not answer {silent} within "
                                      f"{api.ibconform_timeout:g} s (kubernetes.timeout) — check its health, or raise "
                                      "kubernetes.timeout")
                break
            try:
                for page in list_pages(api, res, ns):
                    on_page(res, ns, page)
            except LIST_ERRORS as exc:
                errors[res.plural] = describe_error(exc, "list", res, ns, timeout=api.ibconform_timeout)
                if timed_out(exc):
                    silent = what
                break
    return errors


def collect_cluster(api: client.ApiClient, inventory: Inventory) -> tuple[dict[str, dict], dict[str, str]]:
    """LIST every resource of RESOURCES; return (lists by plural, errors by plural). The pods of every component's
    namespace are merged into one List (its resourceVersion that of the first namespace's)."""
    lists: dict[str, dict] = {}
    first_namespace: dict[str, str | None] = {}

    def keep(res: Resource, namespace: str | None, page: dict) -> None:
        document = lists.setdefault(res.plural, {"apiVersion": page.get("apiVersion", res.version),
                                                 "kind": page.get("kind", "List"), "metadata": {}, "items": []})
        document["items"] += page.get("items") or []
        if first_namespace.setdefault(res.plural, namespace) == namespace:
            document["metadata"] = {"resourceVersion": (page.get("metadata") or {}).get("resourceVersion", "")}

    errors = read_lists(api, inventory, keep)
    return {plural: document for plural, document in lists.items() if plural not in errors}, errors
