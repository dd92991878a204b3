"""The evidence bundle (format ``ibconform-evidence/v1``): exactly what was seen, on disk.

Collectors write it; checks read only it, so a run can be re-evaluated offline. Layout::

    manifest.json  inventory.yaml  cluster/<plural>.json
    nodes/<node>/status.json  nodes/<node>/mstconfig/<pci>.out|.rc
    nodes/<node>/sysfs/...   (mirrors /sys)   nodes/<node>/links.json
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import getpass
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from ibconform import __version__
from ibconform import inventory as inventory_mod
from ibconform.collect.nodescript import NodeOutput
from ibconform.errors import UsageError

FORMAT = "ibconform-evidence/v1"


@dataclass
class NodeStatus:
    reachable: bool
    error: str | None
    transport: str
    seconds: float
    hostname: str | None = None
    notes: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _sysfs_relpath(path: str) -> PurePosixPath | None:
    """``/sys/class/net/x/device/sriov_numvfs`` -> ``class/net/x/device/sriov_numvfs``; None if unsafe."""
    p = PurePosixPath(path)
    if not p.is_absolute() or p.parts[:2] != ("/", "sys") or any(part in ("..", ".", "") for part in p.parts[2:]):
        return None
    return PurePosixPath(*p.parts[2:])


class BundleWriter:
    """Writes one bundle directory; every method writes whole files, so a crash leaves valid ones."""

    def __init__(self, root: Path, inventory: inventory_mod.Inventory, read_only: bool) -> None:
        self.root = root
        self.inventory = inventory
        root.mkdir(parents=True, exist_ok=True)
        (root / "inventory.yaml").write_text(inventory.text)
        self.manifest = {
            "format": FORMAT, "created": now(), "tool": __version__, "cluster": inventory.cluster,
            "inventory_path": str(inventory.path), "read_only": read_only, "user": _user(),
            "complete": False,
        }
        self._write_manifest()

    def _write_manifest(self) -> None:
        _write_json(self.root / "manifest.json", self.manifest)

    def node(self, name: str, status: NodeStatus, output: NodeOutput | None) -> None:
        base = self.root / "nodes" / name
        base.mkdir(parents=True, exist_ok=True)
        if output is not None:
            for pci, (text, code) in output.mstconfig.items():
                (base / "mstconfig").mkdir(exist_ok=True)
                (base / "mstconfig" / f"{pci}.out").write_text(text)
                (base / "mstconfig" / f"{pci}.rc").write_text(f"{code}\n")
            for path, text in output.files.items():
                rel = _sysfs_relpath(path)
                if rel is None:
                    status.notes.append(f"ignored unsafe sysfs path {path!r}")
                    continue
                target = base / "sysfs" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            _write_json(base / "links.json", output.links)
            status.unreadable = dict(output.unreadable)
            status.hostname = output.hostname
        _write_json(base / "status.json", asdict(status))

    def cluster(self, plural: str, document: dict) -> None:
        (self.root / "cluster").mkdir(exist_ok=True)
        _write_json(self.root / "cluster" / f"{plural}.json", document)

    def finish(self, **extra: object) -> None:
        self.manifest.update({"complete": True, **extra}, finished=now())
        self._write_manifest()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


class Bundle:
    """Read access to a bundle; every accessor returns None for what was not seen."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.manifest = json.loads((self.root / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.root}: not an evidence bundle (manifest.json: {exc})") from None
        if self.manifest.get("format") != FORMAT:
            raise UsageError(f"{self.root}/manifest.json: format: expected {FORMAT!r}, "
                             f"got {self.manifest.get('format')!r}")
        self.inventory = inventory_mod.load(self.root / "inventory.yaml")

    def _node(self, node: str) -> Path:
        return self.root / "nodes" / node

    @functools.cache  # noqa: B019  (one Bundle per run; its files never change once written)
    def _sysfs_index(self, node: str) -> dict[str, Path]:
        """Every sysfs file seen on ``node``: its /sys path -> the file in the bundle (one walk per node)."""
        base = self._node(node) / "sysfs"
        index = {}
        for folder, _, names in os.walk(base):
            for name in names:
                file = Path(folder, name)
                index["/sys/" + file.relative_to(base).as_posix()] = file
        return index

    @functools.cache  # noqa: B019
    def status(self, node: str) -> NodeStatus | None:
        try:
            data = json.loads((self._node(node) / "status.json").read_text())
            return NodeStatus(**data)
        except (OSError, ValueError, TypeError):
            return None

    @functools.cache  # noqa: B019  (four firmware checks read each device's output)
    def mstconfig(self, node: str, pci: str) -> tuple[str, int] | None:
        base = self._node(node) / "mstconfig"
        try:
            return (base / f"{pci}.out").read_text(), int((base / f"{pci}.rc").read_text())
        except (OSError, ValueError):
            return None

    def sysfs(self, node: str, path: str) -> str | None:
        file = self._sysfs_index(node).get(path)
        try:
            return file.read_text() if file else None
        except OSError:
            return None

    def sysfs_glob(self, node: str, pattern: str) -> dict[str, str]:
        """Every file seen whose /sys path matches the shell-style ``pattern``, in path order."""
        index = self._sysfs_index(node)
        return {path: index[path].read_text() for path in sorted(fnmatch.filter(index, pattern))}

    @functools.cache  # noqa: B019
    def _links(self, node: str) -> dict:
        try:
            links = json.loads((self._node(node) / "links.json").read_text())
        except (OSError, ValueError):
            return {}
        return links if isinstance(links, dict) else {}

    def link(self, node: str, path: str) -> str | None:
        return self._links(node).get(path)

    def cluster(self, plural: str) -> dict | None:
        try:
            return json.loads((self.root / "cluster" / f"{plural}.json").read_text())
        except (OSError, ValueError):
            return None
