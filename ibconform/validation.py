"""Loading a versioned YAML document (inventory, twin scenario) into a pydantic model, with every mistake
as one line: ``SOURCE: FIELD: what was expected, what was found``."""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

import yaml
from ClusterShell.NodeSet import NodeSet, NodeSetException
from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError

Model = TypeVar("Model", bound=BaseModel)

_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "string_type": "a string",
    "bool_parsing": "true or false", "bool_type": "true or false", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


_PCI = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def pci_address(value: object) -> str:
    """A full PCI address (domain:bus:slot.function), lower-cased."""
    if not isinstance(value, str):
        raise ValueError(f'expected a quoted PCI address like "0000:18:00.0", got {value!r} '
                         "(unquoted, YAML reads it as a number)")
    value = value.lower()
    if not _PCI.match(value):
        raise ValueError(f"expected a PCI address like 0000:18:00.0, got {value!r}")
    return value


def iface(value: str) -> str:
    if not _IFACE.match(value):
        raise ValueError(f"expected a Linux interface name like ibp24s0, got {value!r}")
    return value


def nodeset(value: str) -> str:
    """A non-empty ClusterShell NodeSet such as ``dgx[030-031]``."""
    try:
        names = NodeSet(value)
    except NodeSetException as exc:
        raise ValueError(f"expected a NodeSet like dgx[030-031], got {value!r} ({exc})") from None
    if len(names) == 0:
        raise ValueError(f"expected a NodeSet like dgx[030-031], got {value!r}")
    return value


PciAddress = Annotated[str, BeforeValidator(pci_address)]
Iface = Annotated[str, AfterValidator(iface)]
NodeSetText = Annotated[str, AfterValidator(nodeset)]


class DocumentError(Exception):
    """The document is not valid; the message is one line naming the source and the field."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def where(loc: tuple) -> str:
    """A pydantic error location as the document spells it: ``nodes[0].profile``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def first_error(exc: ValidationError, schema_doc: str) -> str:
    """The first validation error as ``FIELD: expected ..., got ...`` (and how many more there are)."""
    err = exc.errors(include_url=False)[0]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in _EXPECTED:
        msg = f"expected {_EXPECTED[err['type']]}, got {err.get('input')!r}"
    elif err["type"] == "missing":
        msg = "missing (required)"
    elif err["type"] == "extra_forbidden":
        msg = f"unknown key (check the spelling against {schema_doc})"
    elif err["type"] == "literal_error":
        msg = f"expected {msg.removeprefix('Input should be ')}, got {err.get('input')!r}"
    elif "input" in err and err["type"] != "value_error":
        msg = f"{msg}, got {err['input']!r}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where(err['loc'])}: {msg}{more}"


def load(text: str, source: str, fmt: str, model: type[Model], schema_doc: str) -> Model:
    """Parse YAML ``text`` whose ``format`` must be ``fmt`` into ``model``; DocumentError on any mistake."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise DocumentError(f"{source}:{at} not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(raw, dict):
        raise DocumentError(f"{source}: expected a YAML mapping with 'format: {fmt}', got {type(raw).__name__}")
    if raw.get("format") != fmt:
        raise DocumentError(f"{source}: format: expected {fmt!r}, got {raw.get('format')!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DocumentError(f"{source}: {first_error(exc, schema_doc)}") from None
