"""The twin's RBAC authorizer: its pure rules (table-driven), the shipped profiles, and the HTTP 401/403s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.apiserver.rbac import (
    Attributes,
    Policy,
    applies_to,
    authorize,
    forbidden_message,
    impersonated,
    impersonation_requests,
    request_attributes,
    rule_allows,
    rules_for,
    service_account,
    user,
)
from ibconform.twin.apiserver.request import k8s_verb, parse_api_path

RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
NS = "network-operator"
SA = service_account(NS, "ibconform")
SA_TOKEN = "sa-token"
ADMIN_TOKEN = "admin-token"


def manifests(*names: str) -> list[dict]:
    return [doc for name in names for doc in yaml.safe_load_all((RBAC_DIR / f"{name}.yaml").read_text()) if doc]


def policy_of(docs: list[dict]) -> Policy:
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return Policy.of(by_kind.get("ClusterRole", ()), by_kind.get("Role", ()), by_kind.get("ClusterRoleBinding", ()),
                     by_kind.get("RoleBinding", ()))


def req(verb: str, resource: str = "", namespace: str = "", group: str = "", name: str = "", subresource: str = "",
        path: str = "", who=SA) -> Attributes:
    return Attributes(who, verb, namespace=namespace, api_group=group, resource=resource, subresource=subresource,
                      name=name, path=path)


# ------------------------------------------------------------------------------------------ pure rules

PODS_RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


@pytest.mark.parametrize(("rule", "request_", "allowed"), [
    (PODS_RULE, req("list", "pods"), True),
    (PODS_RULE, req("get", "pods", name="p"), True),
    (PODS_RULE, req("watch", "pods"), False),                                   # watch is its own verb
    (PODS_RULE, req("create", "pods"), False),
    (PODS_RULE, req("list", "pods", group="apps"), False),                       # group must match
    (PODS_RULE, req("get", "pods", name="p", subresource="log"), False),        # pods does not grant pods/log
    ({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, req("get", "pods", name="p", subresource="log"), True),
    ({"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]}, req("patch", "nodes", name="n", subresource="status"), True),
    ({"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]}, req("patch", "nodes", name="n"), False),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, req("deletecollection", "ippools", group="nv-ipam.nvidia.com"), True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}, req("get", "pods", name="a"), True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}, req("get", "pods", name="b"), False),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["a"]}, req("list", "pods"), False),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["create"], "resourceNames": ["a"]}, req("create", "pods"), False),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, req("get", path="/apis/mellanox.com/v1alpha1"), True),
    ({"nonResourceURLs": ["/apis"], "verbs": ["get"]}, req("get", path="/apis/mellanox.com"), False),
    ({"nonResourceURLs": ["*"], "verbs": ["*"]}, req("post", path="/anything"), True),
    (PODS_RULE, req("get", path="/api/v1"), False),                               # resource rules are not paths
])
def test_rule_allows(rule, request_, allowed):
    assert rule_allows(rule, request_) is allowed


@pytest.mark.parametrize(("subject", "binding_namespace", "applies"), [
    ({"kind": "ServiceAccount", "name": "ibconform", "namespace": NS}, "", True),
    ({"kind": "ServiceAccount", "name": "ibconform", "namespace": "default"}, "", False),
    ({"kind": "ServiceAccount", "name": "ibconform"}, NS, True),          # unqualified: the binding's namespace
    ({"kind": "ServiceAccount", "name": "ibconform"}, "", False),         # ...and a ClusterRoleBinding has none
    ({"kind": "User", "name": SA.name}, "", True),
    ({"kind": "User", "name": "ibconform"}, "", False),
    ({"kind": "Group", "name": "system:serviceaccounts:network-operator"}, "", True),
    ({"kind": "Group", "name": "system:authenticated"}, "", True),
    ({"kind": "Group", "name": "system:masters"}, "", False),
])
def test_subjects(subject, binding_namespace, applies):
    assert applies_to(subject, SA, binding_namespace) is applies


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/default/pods", {}, req("list", "pods", "default")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, req("watch", "pods", "default")),
    ("GET", "/api/v1/namespaces/default/pods/p", {}, req("get", "pods", "default", name="p")),
    ("POST", "/api/v1/namespaces/default/pods", {}, req("create", "pods", "default")),
    ("PUT", "/api/v1/namespaces/default/pods/p", {}, req("update", "pods", "default", name="p")),
    ("PATCH", "/api/v1/nodes/n/status", {}, req("patch", "nodes", name="n", subresource="status")),
    ("DELETE", "/api/v1/namespaces/default/pods/p", {}, req("delete", "pods", "default", name="p")),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, req("deletecollection", "pods", "default")),
    ("GET", "/apis/nv-ipam.nvidia.com/v1alpha1/namespaces/network-operator/ippools", {},
     req("list", "ippools", NS, "nv-ipam.nvidia.com")),
    ("GET", "/api/v1/namespaces/default", {}, req("get", "namespaces", "default", name="default")),
    ("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name=dgx030"}, req("list", "nodes", name="dgx030")),
    ("GET", "/api/v1/nodes", {"fieldSelector": "metadata.name==dgx030", "watch": "1"}, req("watch", "nodes", name="dgx030")),
    ("GET", "/apis/mellanox.com/v1alpha1", {}, req("get", path="/apis/mellanox.com/v1alpha1")),
    ("GET", "/version", {}, req("get", path="/version")),
])
def test_request_attributes(method, path, query, expected):
    parsed = parse_api_path(path)
    assert request_attributes(SA, method, path, parsed, k8s_verb(method, parsed, query), query) == expected


# ------------------------------------------------------------------------------- the shipped profiles

READ_ONLY_LISTS = [                      # the cluster collector's LISTs (ibconform/collect/cluster.py)
    req("list", "nodes"),
    req("list", "pods", NS),
    req("list", "sriovnetworknodestates", NS, "sriovnetwork.openshift.io"),
    req("list", "sriovnetworknodepolicies", NS, "sriovnetwork.openshift.io"),
    req("list", "sriovibnetworks", NS, "sriovnetwork.openshift.io"),
    req("list", "nicclusterpolicies", "", "mellanox.com"),
    req("list", "ippools", NS, "nv-ipam.nvidia.com"),
]
PROBE_CALLS = [                          # the probe run's calls (ibconform/collect/probes.py), in `default`
    req("list", "pods", "default"), req("create", "pods", "default"), req("watch", "pods", "default"),
    req("delete", "pods", "default", name="ibconform-probe-dgx030-abc123"), req("list", "events", "default"),
    req("get", "pods", "default", name="ibconform-probe-dgx030-abc123", subresource="log"),   # levels rdma, nccl
]
NEVER = [                                # what neither profile grants
    req("list", "pods"),                                     # all namespaces
    req("create", "pods", NS), req("delete", "pods", NS, name="p"), req("deletecollection", "pods", "default"),
    req("patch", "pods", "default", name="p"), req("update", "pods", "default", name="p"),
    req("get", "pods", NS, name="p", subresource="log"), req("create", "pods", "kube-system"),
    req("patch", "nodes", name="dgx030"), req("list", "secrets", NS), req("list", "secrets"),
    req("update", "sriovnetworknodepolicies", NS, "sriovnetwork.openshift.io", name="p"),
    req("list", "ippools", "default", "nv-ipam.nvidia.com"),
    req("create", "rolebindings", NS, "rbac.authorization.k8s.io"),
]


def test_read_only_profile_grants_exactly_the_collector_lists():
    policy = policy_of(manifests("readonly"))
    assert [r for r in READ_ONLY_LISTS if not authorize(r, policy).allowed] == []
    assert [r for r in PROBE_CALLS + NEVER if authorize(r, policy).allowed] == []


def test_probe_profile_adds_the_probe_calls_in_one_namespace_only():
    policy = policy_of(manifests("readonly", "probe"))
    assert [r for r in READ_ONLY_LISTS + PROBE_CALLS if not authorize(r, policy).allowed] == []
    assert [r for r in NEVER if authorize(r, policy).allowed] == []
    assert [r for r in PROBE_CALLS if authorize(r, policy_of(manifests("probe"))).allowed] == PROBE_CALLS


def test_allowed_and_denied_reasons_are_kube_apiservers():
    policy = policy_of(manifests("readonly"))
    assert authorize(req("list", "nodes"), policy).reason == (
        'RBAC: allowed by ClusterRoleBinding "ibconform-readonly" of ClusterRole "ibconform-readonly" '
        'to ServiceAccount "ibconform/network-operator"')
    assert authorize(req("list", "pods", NS), policy).reason == (
        'RBAC: allowed by RoleBinding "ibconform-readonly/network-operator" of Role "ibconform-readonly" '
        'to ServiceAccount "ibconform/network-operator"')
    assert authorize(req("create", "pods", "default"), policy).reason == ""
    dangling = [d for d in manifests("readonly", "probe") if d["kind"] != "Role"]
    assert authorize(req("create", "pods", "default"), policy_of(dangling)).reason == (
        'RBAC: role.rbac.authorization.k8s.io "ibconform-probe" not found')


def test_role_binding_to_a_cluster_role_grants_it_in_the_binding_namespace_only():
    role = {"metadata": {"name": "pod-reader"}, "rules": [PODS_RULE]}
    binding = {"metadata": {"name": "b", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "ibconform", "namespace": NS}]}
    policy = Policy.of([role], role_bindings=[binding])
    assert authorize(req("list", "pods", "default"), policy).allowed
    assert not authorize(req("list", "pods", NS), policy).allowed
    assert not authorize(req("list", "pods"), policy).allowed


def test_bootstrap_policy_masters_and_discovery():
    policy = Policy.of()
    admin = user("twin-admin", ["system:masters"])
    assert authorize(req("deletecollection", "nodes", who=admin), policy).allowed
    assert authorize(req("get", path="/apis", who=SA), policy).allowed
    assert authorize(req("create", "selfsubjectaccessreviews", group="authorization.k8s.io"), policy).allowed
    assert not authorize(req("list", "nodes"), policy).allowed
    assert not authorize(req("get", path="/metrics"), policy).allowed
    replaced = {"metadata": {"name": "system:discovery"}, "rules": []}
    assert not authorize(req("get", path="/apis"), Policy.of([replaced])).allowed


def test_rules_for_a_user_are_its_cluster_bindings_then_those_of_the_namespace():
    policy = policy_of(manifests("readonly", "probe"))
    cluster_wide = [("selfsubjectaccessreviews", "selfsubjectrulesreviews"), ("selfsubjectreviews",), ("nodes",),
                    ("nicclusterpolicies",), ("nodemaintenances",)]

    def resources(namespace: str) -> list[tuple[str, ...]]:
        rules, errors = rules_for(SA, namespace, policy)
        assert errors == []
        return [tuple(r["resources"]) for r in rules if r.get("resources")]

    states = ("sriovnetworknodestates", "sriovnetworknodepolicies", "sriovibnetworks", "sriovoperatorconfigs",
              "sriovnetworkpoolconfigs")
    assert resources(NS) == [*cluster_wide, ("pods",), states, ("ippools", "cidrpools")]
    assert resources("default") == [*cluster_wide, ("pods",), ("pods/log",), ("events",)]
    assert resources("kube-system") == cluster_wide
    non_resource = [r for r in rules_for(SA, NS, policy)[0] if r.get("nonResourceURLs")]
    assert "/apis" in non_resource[0]["nonResourceURLs"] and non_resource[0]["verbs"] == ["get"]
    dangling = [d for d in manifests("readonly") if d["kind"] != "Role"]
    assert rules_for(SA, NS, policy_of(dangling))[1] == ['role.rbac.authorization.k8s.io "ibconform-readonly" not found']


@pytest.mark.parametrize(("name", "groups", "uid", "wanted"), [
    ("system:serviceaccount:network-operator:ibconform", [], "",
     [("serviceaccounts", "", NS, "ibconform")]),
    ("jane", ["ops", "audit"], "",
     [("users", "", "", "jane"), ("groups", "", "", "ops"), ("groups", "", "", "audit")]),
    ("jane", [], "1234", [("users", "", "", "jane"), ("uids", "authentication.k8s.io", "", "1234")]),
])
def test_impersonation_asks_for_the_impersonate_verb_on_each(name, groups, uid, wanted):
    asked = impersonation_requests(SA, name, groups, uid)
    assert {r.verb for r in asked} == {"impersonate"}
    assert [(r.resource, r.api_group, r.namespace, r.name) for r in asked] == wanted


@pytest.mark.parametrize(("name", "groups", "shown"), [
    ("system:serviceaccount:network-operator:ibconform", [],
     ("system:serviceaccounts", "system:serviceaccounts:network-operator", "system:authenticated")),
    ("system:serviceaccount:network-operator:ibconform", ["only"], ("only", "system:authenticated")),
    ("jane", [], ("system:authenticated",)),
    ("system:anonymous", ["system:unauthenticated"], ("system:unauthenticated",)),
])
def test_the_impersonated_user_gets_kube_apiservers_groups(name, groups, shown):
    assert impersonated(name, groups).groups == shown


@pytest.mark.parametrize(("request_", "reason", "message"), [
    (req("create", "pods", "default"), "",
     'pods is forbidden: User "system:serviceaccount:network-operator:ibconform" cannot create resource "pods" '
     'in API group "" in the namespace "default"'),
    (req("list", "nicclusterpolicies", group="mellanox.com"), "",
     'nicclusterpolicies.mellanox.com is forbidden: User "system:serviceaccount:network-operator:ibconform" '
     'cannot list resource "nicclusterpolicies" in API group "mellanox.com" at the cluster scope'),
    (req("get", "pods", "default", name="p", subresource="log"), 'RBAC: role.rbac.authorization.k8s.io "r" not found',
     'pods "p" is forbidden: User "system:serviceaccount:network-operator:ibconform" cannot get resource '
     '"pods/log" in API group "" in the namespace "default": RBAC: role.rbac.authorization.k8s.io "r" not found'),
    (req("get", path="/metrics"), "",
     'forbidden: User "system:serviceaccount:network-operator:ibconform" cannot get path "/metrics"'),
])
def test_forbidden_message(request_, reason, message):
    assert forbidden_message(request_, reason) == message


# ------------------------------------------------------------------------- through HTTP, official client

@pytest.fixture
def twin():
    with ApiTwin(token=ADMIN_TOKEN) as api:
        api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        api.add_user(SA_TOKEN, SA)
        yield api
        assert api.internal_errors == []


def client_for(twin: ApiTwin, path: Path, token: str | None = None) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(twin.write_kubeconfig(path, token=token)),
                            client_configuration=configuration)
    return client.ApiClient(configuration)


def test_a_service_account_gets_what_its_roles_grant_and_a_real_403_otherwise(twin, tmp_path):
    with client_for(twin, tmp_path / "sa", SA_TOKEN) as sa, client_for(twin, tmp_path / "admin") as admin:
        core, admin_core = client.CoreV1Api(sa), client.CoreV1Api(admin)
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod(NS)
        assert err.value.status == 403
        assert json.loads(err.value.body) == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
            "message": 'pods is forbidden: User "system:serviceaccount:network-operator:ibconform" cannot list '
                       'resource "pods" in API group "" in the namespace "network-operator"',
            "details": {"kind": "pods"}, "code": 403}
        assert admin_core.list_namespaced_pod(NS).items == []             # the admin token stays allowed
        assert client.VersionApi(sa).get_code().git_version               # discovery: system:authenticated

        for doc in manifests("readonly", "probe"):
            twin.put(doc)
        assert core.list_namespaced_pod(NS).items == []
        assert core.list_node().items == []
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
        assert core.create_namespaced_pod("default", pod).metadata.name == "p"
        for w in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1):
            assert w["object"].metadata.name == "p"
            break
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod(NS, pod)
        assert (err.value.status, json.loads(err.value.body)["message"]) == (
            403, 'pods is forbidden: User "system:serviceaccount:network-operator:ibconform" cannot create '
                 'resource "pods" in API group "" in the namespace "network-operator"')
        with pytest.raises(ApiException) as err:
            core.read_namespaced_pod_log("p", NS)          # pods/log only in the probe namespace
        assert json.loads(err.value.body)["details"] == {"name": "p", "kind": "pods"}
        with pytest.raises(ApiException) as err:
            core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}})
        assert "cannot patch resource" in json.loads(err.value.body)["message"]
        with pytest.raises(ApiException) as err:
            core.delete_collection_namespaced_pod("default")
        assert "cannot deletecollection resource" in json.loads(err.value.body)["message"]
        core.delete_namespaced_pod("p", "default")
        assert twin.get("v1", "pods", "p", "default") is None
        with pytest.raises(ApiException) as err:
            client.CustomObjectsApi(sa).list_cluster_custom_object("sriovnetwork.openshift.io", "v1",
                                                                   "sriovnetworknodestates")
        assert json.loads(err.value.body)["details"] == {"group": "sriovnetwork.openshift.io",
                                                         "kind": "sriovnetworknodestates"}

    users = {(r.user, r.status) for r in twin.requests if r.resource == "pods" and r.verb == "create"}
    assert users == {(SA.name, 201), (SA.name, 403)}


def test_self_subject_access_review_answers_for_the_asking_user(twin, tmp_path):
    def can_i(api: client.ApiClient, verb: str, namespace: str) -> tuple[bool, str | None]:
        review = {"spec": {"resourceAttributes": {"verb": verb, "resource": "pods", "namespace": namespace}}}
        status = client.AuthorizationV1Api(api).create_self_subject_access_review(review).status
        return status.allowed, status.reason

    for doc in manifests("readonly"):
        twin.put(doc)
    with client_for(twin, tmp_path / "sa", SA_TOKEN) as sa, client_for(twin, tmp_path / "admin") as admin:
        assert can_i(sa, "list", NS) == (True, 'RBAC: allowed by RoleBinding "ibconform-readonly/network-operator" '
                                               'of Role "ibconform-readonly" to ServiceAccount '
                                               '"ibconform/network-operator"')
        assert can_i(sa, "create", "default") == (False, None)
        assert can_i(admin, "create", "default") == (True, None)


def test_tokens_unknown_removed_or_reused_are_refused(twin, tmp_path):
    with client_for(twin, tmp_path / "sa", SA_TOKEN) as sa:
        twin.remove_user(SA_TOKEN)
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(sa).list_node()
        assert err.value.status == 401
    with pytest.raises(ValueError, match="add_user first"):
        twin.write_kubeconfig(tmp_path / "x", token="nobody")
    with pytest.raises(ValueError, match="admin token"):
        twin.add_user(ADMIN_TOKEN, "mallory")
    assert twin.add_user("u-token", "u", ["team"]).groups == ("team", "system:authenticated")
    kubeconfig = yaml.safe_load(twin.write_kubeconfig(tmp_path / "u", token="u-token").read_text())
    assert kubeconfig["users"] == [{"name": "u", "user": {"token": "u-token"}}]
    assert (tmp_path / "u").stat().st_mode & 0o777 == 0o600


def test_rules_review_lists_what_the_asking_user_may_do_in_a_namespace(twin, tmp_path):
    for doc in manifests("readonly"):
        twin.put(doc)
    with client_for(twin, tmp_path / "sa", SA_TOKEN) as sa:
        status = client.AuthorizationV1Api(sa).create_self_subject_rules_review({"spec": {"namespace": NS}}).status
    assert not status.incomplete and status.evaluation_error is None
    granted = {(tuple(r.api_groups), tuple(r.resources), tuple(r.verbs)) for r in status.resource_rules}
    assert (("",), ("nodes",), ("get", "list")) in granted
    assert (("",), ("pods",), ("get", "list")) in granted
    assert {u for r in status.non_resource_rules for u in r.non_resource_urls} >= {"/api", "/apis", "/version"}
    with client_for(twin, tmp_path / "sa", SA_TOKEN) as sa, pytest.raises(ApiException) as err:
        client.AuthorizationV1Api(sa).create_self_subject_rules_review({"spec": {}})
    assert (err.value.status, json.loads(err.value.body)["message"]) == (400, "no namespace on request")


def test_impersonation_acts_as_the_service_account_only_for_who_may(twin, tmp_path):
    for doc in manifests("readonly"):
        twin.put(doc)
    with client_for(twin, tmp_path / "admin") as admin, client_for(twin, tmp_path / "sa", SA_TOKEN) as sa:
        admin.set_default_header("Impersonate-User", SA.name)
        core = client.CoreV1Api(admin)
        assert core.list_namespaced_pod(NS).items == []                    # the ServiceAccount may list pods here
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod("default")
        assert json.loads(err.value.body)["message"].startswith(f'pods is forbidden: User "{SA.name}" cannot list')
        who = client.AuthenticationV1Api(admin).create_self_subject_review({}).status.user_info
        assert (who.username, who.groups) == (SA.name, list(SA.groups))
        sa.set_default_header("Impersonate-User", "twin-admin")
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(sa).list_node()
        assert (err.value.status, json.loads(err.value.body)["message"]) == (
            403, f'users "twin-admin" is forbidden: User "{SA.name}" cannot impersonate resource "users" in API '
                 'group "" at the cluster scope')
    assert {r.user for r in twin.requests if r.resource == "pods" and r.namespace == NS} == {SA.name}
