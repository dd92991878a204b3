"""Look up the remediation for a failed check in the catalogue (ibconform/data/remediation.yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml


@dataclass(frozen=True)
class Remedy:
    id: str
    checks: tuple[str, ...]
    pattern: re.Pattern
    action: str
    reference: str


@cache
def catalogue() -> tuple[Remedy, ...]:
    entries = yaml.safe_load(files("ibconform").joinpath("data/remediation.yaml").read_text())
    return tuple(Remedy(e["id"], tuple(e["checks"]), re.compile(e["pattern"]), e["action"], e["reference"])
                 for e in entries)


def lookup(check: str, message: str) -> Remedy | None:
    """The first catalogue entry for ``check`` whose pattern occurs in ``message``."""
    for remedy in catalogue():
        if (check in remedy.checks or "*" in remedy.checks) and remedy.pattern.search(message):
            return remedy
    return None
