"""Validate an evidence bundle's JSON files against docs/bundle.schema.json (the contract docs/bundle.md describes)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bundle.schema.json").read_text())


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{name}"},
                                           format_checker=jsonschema.FormatChecker())


def validate_bundle(root: Path) -> int:
    """Validate every manifest, status, links, commands, vfs and errors file of the bundle at ``root``; how many were checked."""
    files = [(root / "manifest.json", "manifest")]
    files += [(root / "cluster" / "errors.json", "errors")] if (root / "cluster" / "errors.json").exists() else []
    for node in sorted((root / "nodes").iterdir()):
        files.append((node / "status.json", "status"))
        files += [(node / f"{name}.json", name) for name in ("links", "commands", "vfs") if (node / f"{name}.json").exists()]
    for path, name in files:
        try:
            _validator(name).validate(json.loads(path.read_text()))
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{path.relative_to(root)} does not match $defs/{name}: {exc.message}") from None
    return len(files)
