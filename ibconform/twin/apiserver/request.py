"""A request as the twin's API server reads it: its path parsed (``ApiPath``), its verb, and its record.

Plain data, imported by the server and by the modules it calls (``rbac``, ``pod_exec``), so that none of them
imports the server back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class RequestRecord:
    """One request as the server saw it: for tests proving "N LIST calls" or "no writes"."""

    method: str
    path: str
    query: dict[str, str]
    timestamp: float
    status: int | None = None
    verb: str | None = None          # list, watch, get, create, update, patch, delete, deletecollection
    resource: str | None = None      # plural[/subresource]; None for discovery and other paths
    namespace: str | None = None
    name: str | None = None
    user: str | None = None          # who the request authenticated as

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class ApiPath:
    """``/api/v1/namespaces/ns/pods/x/status`` → group "", version v1, namespace ns, pods, x, status."""

    group: str
    version: str
    namespace: str | None = None
    plural: str | None = None
    name: str | None = None
    subresource: str | None = None

    @property
    def resource(self) -> str | None:
        return None if self.plural is None else self.plural + (f"/{self.subresource}" if self.subresource else "")


def parse_api_path(path: str) -> ApiPath | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ApiPath(group, version, namespace)
    return ApiPath(group, version, namespace, rest[0], rest[1] if len(rest) > 1 else None,
                   "/".join(rest[2:]) or None)


def k8s_verb(method: str, path: ApiPath | None, query: Mapping[str, str]) -> str | None:
    if path is None or path.plural is None:
        return None
    if path.subresource == "exec" and method in ("GET", "POST"):
        return "create"             # kube-apiserver 1.35 authorizes a websocket exec (GET) as create, like a POST
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if path.name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
        ("delete" if path.name else "deletecollection") if method == "DELETE" else None)
