"""Label and field selectors, parsed and applied the way the Kubernetes API server does.

>>> sel = parse_label_selector("app in (nv-ipam, sriov),tier!=web,!legacy")
>>> label_selector_matches(sel, {"app": "nv-ipam"})
True
>>> label_selector_matches(sel, {"app": "nv-ipam", "legacy": "1"})
False
>>> [(r.field, r.op, r.value) for r in parse_field_selector("spec.nodeName=dgx030,status.phase!=Failed")]
[('spec.nodeName', '=', 'dgx030'), ('status.phase', '!=', 'Failed')]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector the API server would refuse with 400 BadRequest; the message is the server's."""


_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"(!?)\s*({_KEY})")
_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\((.*)\)")
_NUMERIC = re.compile(rf"({_KEY})\s*([<>])\s*(-?\d+)")


@dataclass(frozen=True)
class LabelRequirement:
    """One comma-separated term of a label selector."""

    key: str
    op: str                      # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        try:  # gt / lt compare integers; a non-integer label never matches
            number = int(value) if present else None
        except (TypeError, ValueError):
            return False
        if number is None:
            return False
        return number > int(self.values[0]) if self.op == "gt" else number < int(self.values[0])


@dataclass(frozen=True)
class FieldRequirement:
    """One comma-separated term of a field selector."""

    field: str
    op: str                      # "=" or "!="
    value: str

    def matches(self, actual: str) -> bool:
        return (actual == self.value) == (self.op == "=")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` is two terms)."""
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term.strip() for term in terms]


def parse_label_selector(text: str | None) -> tuple[LabelRequirement, ...]:
    """Parse ``labelSelector``; raise SelectorError with the server's wording on bad input."""
    if not text or not text.strip():
        return ()
    requirements = []
    for term in _split_terms(text):
        if m := _SET.fullmatch(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values or not all(re.fullmatch(_VALUE, v) for v in values):
                raise SelectorError(f"unable to parse requirement: values in {term!r} are not valid label values")
            requirements.append(LabelRequirement(m.group(1), m.group(2), values))
        elif m := _EQUALITY.fullmatch(term):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(LabelRequirement(m.group(1), op, (m.group(3),)))
        elif m := _NUMERIC.fullmatch(term):
            requirements.append(LabelRequirement(m.group(1), "gt" if m.group(2) == ">" else "lt", (m.group(3),)))
        elif m := _EXISTS.fullmatch(term):
            requirements.append(LabelRequirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return tuple(requirements)


def label_selector_matches(selector: tuple[LabelRequirement, ...], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in selector)


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` unless backslash-escaped; keep escapes for the next pass."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None) -> tuple[FieldRequirement, ...]:
    """Parse ``fieldSelector`` (``a=b``, ``a==b``, ``a!=b``, comma-joined)."""
    if not text or not text.strip():
        return ()
    requirements = []
    for term in _split_escaped(text, ","):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)(.*)", term)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{_unescape(term)}'")
        op = "!=" if m.group(2) == "!=" else "="
        requirements.append(FieldRequirement(m.group(1), op, _unescape(m.group(3).strip())))
    return tuple(requirements)


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string the API server compares a field selector against (absent = "", bools lower-case)."""
    if field == "source":  # events: "source" selects source.component
        field = "source.component"
    value: Any = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "false" if field == "spec.hostNetwork" else ""
    return str(value)


def field_selector_matches(selector: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(field_value(obj, requirement.field)) for requirement in selector)
