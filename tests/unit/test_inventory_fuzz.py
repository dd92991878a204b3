"""Inventory fuzzing: arbitrary and mutated inventories never raise anything but one InventoryError line
naming the file (and, for a structural mistake, the field)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibconform import inventory

EXAMPLE = yaml.safe_load((Path(__file__).resolve().parents[2] / "inventories" / "dgx-b200-example.yaml").read_text())
PATH = Path("fuzz.yaml")
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


ALL_PATHS = [p for p in _paths(EXAMPLE) if p]


def _mutate(doc, path, action, value):
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _assert_one_line(text: str) -> None:
    try:
        inventory.parse(text, PATH)
    except inventory.InventoryError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml:") and "\n" not in message, message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ALL_PATHS), action=st.sampled_from(["delete", "replace"]), value=VALUES)
def test_mutated_example_is_valid_or_one_line(path, action, value):
    _assert_one_line(yaml.safe_dump(_mutate(copy.deepcopy(EXAMPLE), path, action, value)))


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_one_line(text):
    _assert_one_line(text)


@settings(max_examples=100, deadline=None)
@given(doc=st.recursive(VALUES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=20))
def test_arbitrary_yaml_structures_are_one_line(doc):
    if isinstance(doc, dict):
        doc = {"format": "ibconform/v1", **doc}
    _assert_one_line(yaml.safe_dump(doc))
