"""The evidence bundle (format ``ibconform-evidence/v3``): exactly what was seen, on disk.

Collectors write it; checks read only it, so a run can be re-evaluated offline. Layout (docs/bundle.md)::

    manifest.json  inventory.yaml  cluster/<plural>.json
    nodes/<node>/status.json  nodes/<node>/mstconfig/<pci>.out|.rc
    nodes/<node>/sysfs/...   (mirrors /sys)   nodes/<node>/proc/..., etc/...  (/proc, /etc)   nodes/<node>/links.json
    nodes/<node>/commands.json   (v3: the output and exit code of each command, ``ip link show <pf>``)
    nodes/<node>/vfs.json        (v3: the files read below each PF's virtfn<N>/ and sriov/, path -> content)

Bundles of an older format stay readable: :data:`FORMATS` says which facts each format holds, and a
fact a bundle lacks raises :class:`~ibconform.errors.MissingEvidence` (the check ends in error saying so).

A bundle can be read while it is written (``Bundle(root, follow=True)``): a node's files are complete
once its ``status.json`` exists (written last), a cluster document once its file exists, and the
whole bundle once the manifest has ``finished``. The writer holds an exclusive ``flock`` on the bundle
folder until then, so a reader also sees a writer that died (the lock is free, nothing more comes).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import fcntl
import fnmatch
import functools
import getpass
import itertools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ibconform import __version__
from ibconform import inventory as inventory_mod
from ibconform.collect.nodescript import NodeOutput
from ibconform.errors import MissingEvidence, UsageError

FORMAT = "ibconform-evidence/v3"
V2 = "ibconform-evidence/v2"
#: What the bundles of each format hold: the node facts (what the node script gathered) and the cluster Lists.
V1_NODE_FACTS = frozenset({"host", "mstconfig", "sysfs", "links"})
V1_CLUSTER_LISTS = frozenset({"nodes", "pods", "sriovnetworknodestates", "sriovnetworknodepolicies",
                              "sriovibnetworks", "nicclusterpolicies", "ippools"})
FORMATS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "ibconform-evidence/v1": (V1_NODE_FACTS, V1_CLUSTER_LISTS),
    # v2: the kernel's side (/proc/cmdline, lockdown, RDMA netns mode), /etc/machine-id, mstconfig asks each PF's
    # own port's LINK_TYPE_P<n>, and the operator's configuration and its other objects are listed
    V2: (V1_NODE_FACTS | {"kernel", "port-link-type", "machine-id"},
         V1_CLUSTER_LISTS | {"sriovoperatorconfigs", "sriovnetworkpoolconfigs", "cidrpools", "nodemaintenances"}),
}
# v3: each PF's VFs (virtfn<N>, their driver, RDMA devices, port states, uverbs/umad, mlx5's sriov/<N> GUIDs) and
# the VF lines of `ip link show <pf>` (commands.json)
FORMATS[FORMAT] = (FORMATS[V2][0] | {"vfs"}, FORMATS[V2][1])
FOLLOW_POLL_S = 0.02  # how often a following reader looks for what it waits for


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


_MIRRORS = (("/sys/", "sysfs/"), ("/proc/", "proc/"), ("/etc/", "etc/"))
#: Files of a PF's VFs (``virtfn<N>/...``) and its mlx5 ``sriov/<N>/`` GUIDs: hundreds per node, so kept in one
#: ``vfs.json`` per node, not as files of their own.
VF_FILE = re.compile(r"^/sys/class/net/[^/]+/device/(virtfn\d+|sriov)/")


def _glob_match(path: str, pattern: str) -> bool:
    """``path`` matches the shell-style ``pattern`` as glob matches it: segment by segment (``*`` stops at /), and a
    name starting with "." only by a segment that does."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) and (w[:1] == "." or p[:1] != ".")
                                             for p, w in zip(parts, wanted, strict=True))


def _evidence_relpath(path: str) -> str | None:
    """Where a node file is kept in its folder: ``/sys/class/net/x/device/sriov_numvfs`` ->
    ``sysfs/class/net/x/device/sriov_numvfs``, ``/proc/cmdline`` -> ``proc/cmdline``; None if unsafe
    (string operations: called for every file of every node)."""
    for prefix, folder in _MIRRORS:
        rel = path.removeprefix(prefix)
        if rel != path:
            return None if any(part in ("..", ".", "") for part in rel.split("/")) else folder + rel
    return None


class BundleWriter:
    """Writes one bundle directory; every method writes whole files, so a crash leaves valid ones."""

    def __init__(self, root: Path, inventory: inventory_mod.Inventory, read_only: bool,
                 nodes: str | None = None) -> None:
        self.root = root
        self.inventory = inventory
        (root / "nodes").mkdir(parents=True, exist_ok=True)
        self._lock = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # held until finish(): "still writing"
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        (root / "inventory.yaml").write_text(inventory.text)
        self.manifest = {
            "format": FORMAT, "created": now(), "tool": __version__, "cluster": inventory.cluster,
            "inventory_path": str(inventory.path), "read_only": read_only, "user": _user(),
            "complete": False, **({"nodes": nodes} if nodes else {}),
        }
        self._write_manifest()

    def _write_manifest(self) -> None:
        _write_json(self.root / "manifest.json", self.manifest)

    def node(self, name: str, status: NodeStatus, output: NodeOutput | None) -> None:
        base = os.path.join(self.root, "nodes", name)
        files: dict[str, str] = {}
        if output is not None:
            for pci, (text, code) in output.mstconfig.items():
                if "/" in pci or pci.startswith("."):  # the key comes from the node's output: untrusted
                    status.notes.append(f"ignored unsafe mstconfig device name {pci!r}")
                    continue
                files[f"mstconfig/{pci}.out"], files[f"mstconfig/{pci}.rc"] = text, f"{code}\n"
            vf_files = {path: text for path, text in output.files.items() if VF_FILE.match(path)}
            files["vfs.json"] = _json_text(vf_files)
            for path, text in output.files.items():
                if path in vf_files:
                    continue
                rel = _evidence_relpath(path)
                if rel is None:
                    status.notes.append(f"ignored unsafe file path {path!r}")
                    continue
                files[rel] = text
            files["links.json"] = _json_text(output.links)
            files["commands.json"] = _json_text({command: {"output": text, "exit": code}
                                                 for command, (text, code) in output.commands.items()})
            status.unreadable = dict(output.unreadable)
            status.hostname = output.hostname
        made = {str(self.root), os.path.join(self.root, "nodes")}
        _make_folder(base, made)
        for rel, text in files.items():
            path = os.path.join(base, rel)
            _make_folder(os.path.dirname(path), made)
            _write_file(path, text.encode())
        _write_json(Path(base) / "status.json", asdict(status))  # last: the node is complete once it exists

    def cluster(self, plural: str, document: dict) -> None:
        (self.root / "cluster").mkdir(exist_ok=True)
        _write_json(self.root / "cluster" / f"{plural}.json", document, compact=True)

    def finish(self, **extra: object) -> None:
        self.manifest.update({"complete": True, **extra}, finished=now())
        self._write_manifest()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def _make_folder(folder: str, made: set[str]) -> None:
    """``mkdir -p`` with one mkdir per folder not in ``made`` and nothing else (no stat of each parent)."""
    if folder in made:
        return
    _make_folder(os.path.dirname(folder), made)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder)
    made.add(folder)


def _write_file(path: str, data: bytes) -> None:
    """Write ``data`` to a new file in three system calls (Python's ``open`` adds fstat, isatty and lseek):
    the bundle of 256 nodes is 22,000 files, written beside 32 SSH sessions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _json_text(data: object, compact: bool = False) -> str:
    """Indented for people; ``compact`` for the large cluster Lists (json's C encoder is ~10x faster)."""
    if compact:
        return json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _write_json(path: Path, data: object, compact: bool = False) -> None:
    """Whole or not at all: written beside, then renamed into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(_json_text(data, compact))
    tmp.replace(path)


def _read_text(path: str) -> str | None:
    """The file's text; None if it cannot be read (not seen, or a folder)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _writer_alive(root: Path) -> bool:
    """Whether a BundleWriter still holds ``root``'s lock."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Bundle:
    """Read access to a bundle; every accessor returns None for what was not seen.

    With ``follow=True`` the bundle may still be being written: each accessor first waits until what it
    reads is complete, or until the bundle is finished (or its writer gone) without it.
    """

    def __init__(self, root: Path, follow: bool = False) -> None:
        self.root = Path(root)
        self.manifest = self._read_manifest()
        self.format = self.manifest.get("format")
        if self.format not in FORMATS:
            raise UsageError(f"{self.root}/manifest.json: format: expected one of {', '.join(FORMATS)}, "
                             f"got {self.format!r} (a newer ibconform wrote it? evaluate it with that version)")
        self.node_facts, self.cluster_lists = FORMATS[self.format]
        self.inventory = inventory_mod.load(self.root / "inventory.yaml")
        if self.manifest.get("nodes"):  # a shard: the inventory's nodes in this NodeSet
            self.inventory = self.inventory.only(str(self.manifest["nodes"]))
        self._settled = not follow or "finished" in self.manifest
        self._ready: set[str] = set()

    def _read_manifest(self) -> dict:
        try:
            return json.loads((self.root / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.root}: not an evidence bundle (manifest.json: {exc})") from None

    def settled(self) -> Bundle:
        """Wait until nothing more will be written (the writer finished or died); reload the manifest."""
        self._await(lambda: False)
        return self

    def _await(self, ready: Callable[[], bool]) -> bool:
        while not self._settled:
            if ready():
                return True
            manifest = self._read_manifest()
            if "finished" in manifest:
                self.manifest, self._settled = manifest, True
                break
            if not _writer_alive(self.root):  # died, or finished since the read above: read what it left
                self.manifest, self._settled = self._read_manifest(), True
                break
            time.sleep(FOLLOW_POLL_S)
        return ready()

    def _node(self, node: str) -> Path:
        base = self.root / "nodes" / node
        if node not in self._ready:
            self._await((base / "status.json").exists)
            self._ready.add(node)
        return base

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

    def written_by(self) -> str:
        """Which ibconform wrote the bundle, for messages about facts it lacks."""
        return f"ibconform {self.manifest.get('tool', '?')} (format {self.format})"

    def require_node_fact(self, node: str, fact: str, what: str) -> None:
        """MissingEvidence unless this bundle's format gathers node fact ``fact`` (``what``: its name for people)."""
        if fact not in self.node_facts:
            raise MissingEvidence(f"{what} of {node} is not in the bundle: {self.written_by()} did not collect it "
                                  "— run ibconform again to judge it")

    def sysfs(self, node: str, path: str) -> str | None:
        """The content of a node file seen under /sys, /proc or /etc (None: not seen or not readable)."""
        return self._files(node).get(path)

    @functools.cache  # noqa: B019  (a node's checks read its files dozens of times)
    def _files(self, node: str) -> dict[str, str]:
        """Every file the node showed, by its path there: its copies under sysfs/, proc/ and etc/, read in one walk,
        and its VF files (``vfs.json``)."""
        base, found = str(self._node(node)), {}
        for prefix, folder in _MIRRORS:
            top = os.path.join(base, folder)   # ends in "/": a folder below it is top + "class/net"...
            for where, _, names in os.walk(top):
                below = prefix + (where[len(top):] + "/" if where != top else "")
                for name in names:
                    text = _read_text(os.path.join(where, name))
                    if text is not None:
                        found[below + name] = text
        try:
            vfs = json.loads((self._node(node) / "vfs.json").read_text())
        except (OSError, ValueError):
            vfs = {}
        if isinstance(vfs, dict):
            found.update((k, v) for k, v in vfs.items() if isinstance(v, str) and VF_FILE.match(k))
        return found

    @functools.cache  # noqa: B019
    def _paths(self, node: str) -> list[str]:
        return sorted(self._files(node))

    def _files_under(self, node: str, prefix: str) -> dict[str, str]:
        """The node's files whose path starts with ``prefix``, in path order: found by bisecting the sorted
        paths, as a node holds thousands (its VF files) and a check asks for one PF's, or for none."""
        files, paths = self._files(node), self._paths(node)
        found = {}
        for path in itertools.islice(paths, bisect.bisect_left(paths, prefix), None):
            if not path.startswith(prefix):
                break
            found[path] = files[path]
        return found

    def sysfs_glob(self, node: str, pattern: str) -> dict[str, str]:
        """Every file seen whose /sys path matches the shell-style ``pattern``, in path order."""
        if _evidence_relpath(pattern) is None:
            return {}
        literal = re.split(r"[*?[]", pattern, maxsplit=1)[0]
        return {path: text for path, text in self._files_under(node, literal).items() if _glob_match(path, pattern)}

    def sysfs_under(self, node: str, folder: str) -> dict[str, str]:
        """Every file seen below the /sys ``folder``, path -> content (a PF's VF files)."""
        if _evidence_relpath(folder) is None:
            return {}
        return self._files_under(node, folder + "/")

    @functools.cache  # noqa: B019
    def _links(self, node: str) -> dict:
        path = self._node(node) / "links.json"
        try:
            links = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            reason = "absent" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
            raise MissingEvidence(f"nodes/{node}/links.json (where each interface's PCI function was seen) is "
                                  f"{reason} in the bundle: it was cut short or damaged — run ibconform again"
                                  ) from None
        if not isinstance(links, dict):
            raise MissingEvidence(f"nodes/{node}/links.json is not a JSON object: the bundle is damaged")
        return links

    def link(self, node: str, path: str) -> str | None:
        return self._links(node).get(path)

    def links_under(self, node: str, prefix: str) -> dict[str, str]:
        """Every link the node script read whose path starts with ``prefix``, path -> target."""
        return {path: str(target) for path, target in self._links(node).items() if path.startswith(prefix)}

    @functools.cache  # noqa: B019  (each HCA's checks read their PF's command)
    def _commands(self, node: str) -> dict:
        path = self._node(node) / "commands.json"
        try:
            commands = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            reason = "absent" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
            raise MissingEvidence(f"nodes/{node}/commands.json (the node's command outputs) is {reason} in the "
                                  "bundle: it was cut short or damaged — run ibconform again") from None
        return commands if isinstance(commands, dict) else {}

    def command(self, node: str, command: str) -> tuple[str, int] | None:
        """The output and exit code of ``command`` as the node script ran it; None when it did not run."""
        seen = self._commands(node).get(command)
        if not (isinstance(seen, dict) and isinstance(seen.get("output"), str) and isinstance(seen.get("exit"), int)):
            return None
        return seen["output"], seen["exit"]

    @functools.cache  # noqa: B019  (read by every cluster-side check: parsed once, never mutated)
    def cluster(self, plural: str) -> dict | None:
        path = self.root / "cluster" / f"{plural}.json"
        self._await(path.exists)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
