"""Loading a versioned YAML document (inventory, twin scenario) into a pydantic model, with every mistake
as one line: ``SOURCE: FIELD: what was expected, what was found``."""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "string_type": "a string",
    "bool_parsing": "true or false", "bool_type": "true or false", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


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
