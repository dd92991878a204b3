"""The three PATCH flavours of the Kubernetes API, for the simple cases a test suite meets.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): dicts merge, ``null`` deletes, lists replace.
- Strategic merge patch (``application/strategic-merge-patch+json``, built-in kinds only): like merge patch,
  but lists of named things (containers, env, conditions, ...) merge by their merge key, ``finalizers``
  merges as a set, and the ``$patch: delete|replace`` / ``$deleteFromPrimitiveList`` directives work.
  The merge keys come from a small table keyed by field name, not from the OpenAPI schema.
- JSON patch (RFC 6902, ``application/json-patch+json``), through the ``jsonpatch`` package.

>>> merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}})
{'a': {'c': 2, 'd': 3}}
>>> pod = {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}}
>>> strategic_merge_patch(pod, {"spec": {"containers": [{"name": "b", "image": "y:2"}]}})["spec"]["containers"]
[{'name': 'a', 'image': 'x:1'}, {'name': 'b', 'image': 'y:2'}]
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# patchMergeKey of the list fields met in pods, nodes, workloads and object metadata.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "volumes": ("name",), "env": ("name",), "imagePullSecrets": ("name",), "resourceClaims": ("name",),
    "ports": ("containerPort", "port"), "volumeMounts": ("mountPath",), "volumeDevices": ("devicePath",),
    "conditions": ("type",), "addresses": ("type",), "ownerReferences": ("uid",), "hostAliases": ("ip",),
}
PRIMITIVE_SET_LISTS = frozenset({"finalizers"})

_DELETE = object()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, never mutates its inputs."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(items: list[Any]) -> str | None:
    return next((key for key in ("name", "type") if all(isinstance(i, dict) and key in i for i in items)), None)


def _merge_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if field in PRIMITIVE_SET_LISTS:
        return list(current) + [copy.deepcopy(i) for i in patch if i not in current]
    keys = MERGE_KEYS.get(field)
    if not keys or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    key = next((k for k in keys if all(k in item for item in patch)), None)
    if key is None:
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for built-in kinds (see the module docstring for what is covered)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return copy.deepcopy(body)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
        elif key.startswith("$"):
            continue  # $setElementOrder, $retainKeys: ordering/pruning hints, not needed here
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, [], value)
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; raises ValueError on a malformed patch or a failed ``test``."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(copy.deepcopy(target), operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise ValueError(str(exc)) from None
