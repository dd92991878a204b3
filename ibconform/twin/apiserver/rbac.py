"""RBAC for the twin's API server: the subset of kube-apiserver's authorizers a least-privilege run meets.

Pure functions over ``rbac.authorization.k8s.io/v1`` objects, following
``plugin/pkg/auth/authorizer/rbac`` and ``pkg/registry/rbac/validation`` of Kubernetes:

- members of ``system:masters`` are allowed everything (the privileged-group authorizer);
- otherwise the request is allowed if a rule of a role bound to the user allows it: every
  ClusterRoleBinding, then the RoleBindings of the request's namespace (a RoleBinding may grant a
  ClusterRole's rules in its own namespace); rules match on verbs, apiGroups, resources (``*``,
  ``plural``, ``plural/subresource``, ``*/subresource``), resourceNames, or nonResourceURLs;
- subjects are a User, a Group, or a ServiceAccount (user ``system:serviceaccount:<ns>:<name>``; an
  unqualified ServiceAccount of a RoleBinding is in the binding's namespace);
- a binding whose role does not exist grants nothing; the denial then says why (``RBAC: role... not found``);
- the bootstrap policy every server reconciles at start (``cluster-admin`` for ``system:masters``,
  discovery and self access reviews for ``system:authenticated``) applies without being stored; a stored
  ClusterRole or ClusterRoleBinding of the same name replaces it.

The rules that apply to a user in a namespace (``rules_for``: ``SelfSubjectRulesReview``, ``kubectl auth can-i
--list``) are gathered the same way. Impersonation (``Impersonate-User``/``-Group``/``-Uid``, ``kubectl --as``) is
authorized as the ``impersonate`` verb on users, groups, serviceaccounts or uids (``impersonation_requests``).

Not modelled: aggregated ClusterRoles (aggregationRule), escalation checks on RBAC writes, impersonated extras.

    >>> sa = service_account("network-operator", "ibconform")
    >>> reader = {"metadata": {"name": "r", "namespace": "network-operator"},
    ...           "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}
    >>> binding = {"metadata": {"name": "b", "namespace": "network-operator"}, "roleRef": {"kind": "Role", "name": "r"},
    ...            "subjects": [{"kind": "ServiceAccount", "name": "ibconform"}]}
    >>> policy = Policy.of(roles=[reader], role_bindings=[binding])
    >>> authorize(Attributes(sa, "list", namespace="network-operator", resource="pods"), policy).allowed
    True
    >>> authorize(Attributes(sa, "create", namespace="default", resource="pods"), policy).allowed
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibconform.twin.apiserver.request import ApiPath

GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

Rule = Mapping[str, Any]


@dataclass(frozen=True)
class UserInfo:
    """Who a request is from, as the authenticator says: name and groups."""

    name: str
    groups: tuple[str, ...] = ()

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups


def user(name: str, groups: Iterable[str] = ()) -> UserInfo:
    """A token-authenticated user: its groups plus ``system:authenticated``, as the authenticator adds it."""
    return UserInfo(name, tuple(dict.fromkeys([*groups, AUTHENTICATED])))


def service_account(namespace: str, name: str) -> UserInfo:
    """The user a ServiceAccount token authenticates as.

    >>> service_account("network-operator", "ibconform").name
    'system:serviceaccount:network-operator:ibconform'
    """
    return user(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"))


@dataclass(frozen=True)
class Attributes:
    """What a request asks (kube-apiserver's authorizer.Attributes): a resource request, or a path."""

    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""                      # the URL path of a non-resource request (discovery, /healthz)

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)


def request_attributes(who: UserInfo, method: str, raw_path: str, path: ApiPath | None, verb: str | None,
                       query: Mapping[str, str]) -> Attributes:
    """The attributes kube-apiserver derives from a request (``RequestInfoFactory``).

    ``/api/v1/namespaces/x`` is in namespace x; a LIST or WATCH with ``fieldSelector=metadata.name=y``
    asks for the name y (so resourceNames can allow it); discovery paths are non-resource requests whose
    verb is the lower-cased method.
    """
    if path is None or path.plural is None or verb is None:
        return Attributes(who, method.lower(), path=raw_path)
    namespace, name = path.namespace or "", path.name or ""
    if (path.group, path.plural) == ("", "namespaces") and not namespace:
        namespace = name
    if not name and verb in ("list", "watch"):
        for requirement in (query.get("fieldSelector") or "").split(","):
            key, _, value = requirement.partition("=")
            value = value.removeprefix("=").strip()           # metadata.name=y or metadata.name==y
            if key.strip() == "metadata.name" and value:
                name = value
    return Attributes(who, verb, namespace=namespace, api_group=path.group, resource=path.plural,
                      subresource=path.subresource or "", name=name)


# ----------------------------------------------------------------------------------------------- rules

def verb_matches(rule: Rule, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.get("verbs") or ())


def api_group_matches(rule: Rule, group: str) -> bool:
    return any(g in ("*", group) for g in rule.get("apiGroups") or ())


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    """``*``, the exact ``plural`` or ``plural/subresource``, or ``*/subresource``."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for wanted in rule.get("resources") or ():
        if wanted in ("*", combined) or (subresource and wanted == f"*/{subresource}"):
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    """No resourceNames: any object; else only those (never a create or an unnamed list)."""
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    for wanted in rule.get("nonResourceURLs") or ():
        if wanted in ("*", path) or (wanted.endswith("*") and path.startswith(wanted[:-1])):
            return True
    return False


def rule_allows(rule: Rule, request: Attributes) -> bool:
    """Whether one PolicyRule allows the request (``rbac.RuleAllows``)."""
    if not verb_matches(rule, request.verb):
        return False
    if not request.resource_request:
        return non_resource_url_matches(rule, request.path)
    return (api_group_matches(rule, request.api_group)
            and resource_matches(rule, request.resource, request.subresource)
            and resource_name_matches(rule, request.name))


# -------------------------------------------------------------------------------------------- subjects

def applies_to(subject: Mapping[str, Any], who: UserInfo, binding_namespace: str = "") -> bool:
    """Whether a binding's subject is this user (``appliesToUser``)."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == who.name
    if kind == "Group":
        return name in who.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and who.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def describe_subject(subject: Mapping[str, Any], binding_namespace: str = "") -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


# -------------------------------------------------------------------------------------------- policies

def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _bootstrap_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def _bootstrap_binding(name: str, *groups: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]}


BOOTSTRAP_CLUSTER_ROLES: dict[str, dict[str, Any]] = {r["metadata"]["name"]: r for r in (
    _bootstrap_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                      {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
    _bootstrap_role("system:discovery", [{"nonResourceURLs": [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
        "/version", "/version/"], "verbs": ["get"]}]),
    _bootstrap_role("system:public-info-viewer", [{"nonResourceURLs": [
        "/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
    _bootstrap_role("system:basic-user", [
        {"apiGroups": ["authorization.k8s.io"], "verbs": ["create"],
         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
        {"apiGroups": ["authentication.k8s.io"], "verbs": ["create"], "resources": ["selfsubjectreviews"]}]),
)}
BOOTSTRAP_CLUSTER_ROLE_BINDINGS: dict[str, dict[str, Any]] = {b["metadata"]["name"]: b for b in (
    _bootstrap_binding("cluster-admin", MASTERS),
    _bootstrap_binding("system:discovery", AUTHENTICATED),
    _bootstrap_binding("system:public-info-viewer", AUTHENTICATED, UNAUTHENTICATED),
    _bootstrap_binding("system:basic-user", AUTHENTICATED),
)}


@dataclass(frozen=True)
class Policy:
    """The RBAC objects in force: ClusterRoles by name, Roles by (namespace, name), all bindings."""

    cluster_roles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    roles: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    cluster_role_bindings: Sequence[Mapping[str, Any]] = ()
    role_bindings: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def of(cls, cluster_roles: Iterable[Mapping[str, Any]] = (), roles: Iterable[Mapping[str, Any]] = (),
           cluster_role_bindings: Iterable[Mapping[str, Any]] = (),
           role_bindings: Iterable[Mapping[str, Any]] = (), *, bootstrap: bool = True) -> Policy:
        """From stored objects, over the bootstrap policy (a stored object replaces one of its name)."""
        by_name = dict(BOOTSTRAP_CLUSTER_ROLES) if bootstrap else {}
        by_name |= {_name(r): r for r in cluster_roles}
        bindings = dict(BOOTSTRAP_CLUSTER_ROLE_BINDINGS) if bootstrap else {}
        bindings |= {_name(b): b for b in cluster_role_bindings}
        return cls(by_name, {(_namespace(r), _name(r)): r for r in roles}, tuple(bindings.values()),
                   tuple(role_bindings))


def role_rules(policy: Policy, role_ref: Mapping[str, Any], binding_namespace: str) -> list[Rule]:
    """The rules a roleRef grants (``GetRoleReferenceRules``); LookupError naming what is missing."""
    kind, name = role_ref.get("kind"), str(role_ref.get("name") or "")
    if kind == "ClusterRole":
        role = policy.cluster_roles.get(name)
        if role is None:
            raise LookupError(f'clusterrole.{GROUP} "{name}" not found')
    elif kind == "Role" and binding_namespace:
        role = policy.roles.get((binding_namespace, name))
        if role is None:
            raise LookupError(f'role.{GROUP} "{name}" not found')
    else:
        raise LookupError(f'unsupported role reference kind: "{kind}"')
    return list(role.get("rules") or ())


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and kube-apiserver's reason (``RBAC: allowed by ...``, ``RBAC: ... not found``)."""

    allowed: bool
    reason: str = ""


def authorize(request: Attributes, policy: Policy) -> Decision:
    """kube-apiserver's verdict: privileged group, else RBAC (ClusterRoleBindings, then RoleBindings of
    the request's namespace). A denial's reason lists the roles that bound bindings lack."""
    if request.user.privileged:
        return Decision(True, "")
    errors: list[str] = []
    scoped = [("ClusterRoleBinding", b, "") for b in policy.cluster_role_bindings]
    if request.namespace:
        scoped += [("RoleBinding", b, request.namespace) for b in policy.role_bindings
                   if _namespace(b) == request.namespace]
    for kind, binding, namespace in scoped:
        subject = next((s for s in binding.get("subjects") or () if applies_to(s, request.user, namespace)), None)
        if subject is None:
            continue
        role_ref = binding.get("roleRef") or {}
        try:
            rules = role_rules(policy, role_ref, namespace)
        except LookupError as exc:
            errors.append(str(exc.args[0]))
            continue
        if any(rule_allows(rule, request) for rule in rules):
            where = f"{_name(binding)}/{namespace}" if namespace else _name(binding)
            return Decision(True, f'RBAC: allowed by {kind} "{where}" of {role_ref.get("kind")} '
                                  f'"{role_ref.get("name")}" to {describe_subject(subject, namespace)}')
    if not errors:
        return Decision(False, "")
    return Decision(False, "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"))


def rules_for(who: UserInfo, namespace: str, policy: Policy) -> tuple[list[Rule], list[str]]:
    """Every rule granted to ``who`` in ``namespace`` (``RulesFor``): those of ClusterRoleBindings, then those of the
    namespace's RoleBindings; and the errors met (a bound role that does not exist)."""
    rules: list[Rule] = []
    errors: list[str] = []
    scoped = [(b, "") for b in policy.cluster_role_bindings]
    if namespace:
        scoped += [(b, namespace) for b in policy.role_bindings if _namespace(b) == namespace]
    for binding, binding_namespace in scoped:
        if not any(applies_to(s, who, binding_namespace) for s in binding.get("subjects") or ()):
            continue
        try:
            rules += role_rules(policy, binding.get("roleRef") or {}, binding_namespace)
        except LookupError as exc:
            errors.append(str(exc.args[0]))
    return rules, errors


def impersonation_requests(who: UserInfo, name: str, groups: Sequence[str], uid: str = "") -> list[Attributes]:
    """What ``who`` must be allowed to act as ``name`` with ``groups`` (and ``uid``): ``impersonate`` on the
    ServiceAccount (a ``system:serviceaccount:<ns>:<name>`` user) or the user, each group, the uid."""
    if name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
        _, _, namespace, account = name.split(":")
        wanted = [Attributes(who, "impersonate", namespace=namespace, resource="serviceaccounts", name=account)]
    else:
        wanted = [Attributes(who, "impersonate", resource="users", name=name)]
    wanted += [Attributes(who, "impersonate", resource="groups", name=group) for group in groups]
    if uid:
        wanted.append(Attributes(who, "impersonate", api_group="authentication.k8s.io", resource="uids", name=uid))
    return wanted


def impersonated(name: str, groups: Sequence[str]) -> UserInfo:
    """The user a request acts as: the groups asked for (a ServiceAccount's own when none are), and
    ``system:authenticated`` unless it acts as ``system:anonymous``."""
    found = list(groups)
    if not found and name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
        namespace = name.split(":")[2]
        found = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    if name != "system:anonymous" and AUTHENTICATED not in found:
        found.append(AUTHENTICATED)
    return UserInfo(name, tuple(dict.fromkeys(found)))


def forbidden_message(request: Attributes, reason: str = "") -> str:
    """kube-apiserver's 403 text (``NewForbidden`` around ``forbiddenMessage``), reason appended."""
    if not request.resource_request:
        text = f'forbidden: User "{request.user.name}" cannot {request.verb} path "{request.path}"'
    else:
        qualified = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
        subject = f'{qualified} "{request.name}"' if request.name else qualified
        resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        scope = f' in the namespace "{request.namespace}"' if request.namespace else " at the cluster scope"
        text = (f'{subject} is forbidden: User "{request.user.name}" cannot {request.verb} resource "{resource}" '
                f'in API group "{request.api_group}"{scope}')
    return f"{text}: {reason}" if reason else text


def forbidden_details(request: Attributes) -> dict[str, Any]:
    """The Status details of a 403: name (if any), group (if not core), kind (the plural)."""
    if not request.resource_request:
        return {}
    details: dict[str, Any] = {"name": request.name} if request.name else {}
    if request.api_group:
        details["group"] = request.api_group
    details["kind"] = request.resource
    return details
