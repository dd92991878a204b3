"""The twin: an emulated DGX cluster on this machine that the real suite talks to over real SSH and HTTPS.

Each node is its own ``sshd`` on its own loopback address, in its own mount and UTS namespace, serving
that node's hostname, sysfs and ``mstconfig`` as a scenario describes them (``scenario.py``). The
cluster's Kubernetes API is an ``ApiTwin`` (``apiserver/api_twin.py``) on the block's service address,
any free port, with a random bearer token, filled and kept up to date by the cluster emulation
(``controllers/cluster.py``)::

    with Twin("faults", tmp_path) as twin:
        inventory = twin.inventory_path            # ibconform/v1, ssh via twin.ssh_config_path
        twin.addresses["dgx001"]                   # '127.100.0.1' (by host name, the scenario's)
        twin.node_names["dgx001"]                  # its Node's name: 'dgx001' (with nodeName: address, '127.100.0.1')
        twin.kubeconfig_path                       # the API: https://127.100.255.254:<port>, CA and token in it
        twin.scenario.nodes["dgx002"].hcas["ibp24s0"].num_of_vfs.current

Needs root (namespaces, binding :22). Several twins run side by side, each on its own address block
(``block.py``). ``commands.up``/``commands.down`` run one in a detached supervisor process.

Layout: here, the scenario model (``scenario.py``; its cluster side ``kube.py``; ``faults.py``), ``Twin``,
``block.py``, ``errors.py`` and ``commands.py``/``supervisor.py``; the emulated parts in three subpackages:

- ``apiserver/``: the Kubernetes API server (HTTP, store, RBAC, selectors, patch, exec, logs, tables, TLS, CRDs);
- ``controllers/``: what the operators, the scheduler and the kubelets make of the scenario (``cluster.py``
  wires them to the API server);
- ``machines/``: the nodes: their hardware, what they serve (sysfs, ``mstconfig``, ``ibstat``), their sshd
  processes and CPU group.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import yaml

from ibconform.errors import InventoryError
from ibconform.inventory import parse as parse_inventory
from ibconform.twin import block as blocks
from ibconform.twin.apiserver.api_twin import ApiTwin
from ibconform.twin.apiserver.pod_exec import Kubelet
from ibconform.twin.controllers.cluster import ClusterEmulation
from ibconform.twin.errors import ScenarioError, TwinError
from ibconform.twin.machines import cpu, render
from ibconform.twin.machines import nodes as node_procs
from ibconform.twin.machines.keys import write_keypair
from ibconform.twin.scenario import Scenario
from ibconform.twin.scenario import load as load_scenario

__all__ = ["ScenarioError", "Twin", "TwinError", "load_scenario", "sweep"]

STATE = "twin.json"
STATE_FORMAT = "ibconform-twin-state/v1"


def sweep(workdir: Path) -> None:
    """Kill what a twin that died without ``down()`` left inside its nodes; drop its state file.

    A safety net: a node's whole PID namespace dies with the twin's process (PR_SET_PDEATHSIG, then
    unshare --kill-child), so normally nothing is left. Refuses (TwinError) while that twin still runs.
    """
    path = Path(workdir) / STATE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    owner, started = state.get("pid"), state.get("started")
    if owner and started and node_procs.process_start_time(owner) == started:
        raise TwinError(f"a twin is already up in {workdir} (process {owner}): take it down first")
    node_procs.kill_all([], node_procs.identities([Path(p) for p in state.get("hardwareDirs", [])]))
    block = blocks.try_lock(state["block"]) if isinstance(state.get("block"), int) else None
    if block is not None:                       # its hardware trees, unless a live twin took the block since
        try:
            node_procs.remove_hardware_root(node_procs.hardware_root_path(block.index, Path(workdir)), Path(workdir))
        finally:
            block.release()
    path.unlink(missing_ok=True)


class Twin:
    """An emulated cluster's nodes; a context manager (``up()`` on enter, ``down()`` on exit).

    Nodes die with the thread that ran ``up()`` (PR_SET_PDEATHSIG follows the thread that forked), so
    call it from a thread that lives as long as the twin: the main thread, a pytest fixture.
    ``api_tls``: the API serves HTTPS (its CA in the kubeconfig and ``api.ca_pem``); False: plain HTTP.
    """

    def __init__(self, scenario: str | Path | Scenario, workdir: str | Path, *, start_timeout: float = 30.0,
                 api_tls: bool = True):
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.workdir = Path(workdir).absolute()
        self.start_timeout = start_timeout
        self.api_tls = api_tls
        self.addresses: dict[str, str] = {}
        self.node_names: dict[str, str] = {}        # host name -> its Kubernetes Node's name (known once up)
        self.block: int | None = None
        self.startup_seconds: float | None = None
        self._block: blocks.Block | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._silent: list[socket.socket] = []
        self._ids: set[tuple[int, int]] = set()
        self._owns_state = False
        self._hardware_root: Path | None = None
        self._cpu_group: Path | None = None
        self.api: ApiTwin | None = None
        self.cluster: ClusterEmulation | None = None

    # -- paths ------------------------------------------------------------------------------------
    @property
    def inventory_path(self) -> Path:
        return self.workdir / "inventory.yaml"

    @property
    def ssh_config_path(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def known_hosts_path(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def identity_path(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE

    @property
    def kubeconfig_path(self) -> Path:
        """The kubeconfig of the twin's API (mode 0600: it holds the bearer token)."""
        return self.workdir / "kubeconfig"

    def node_dir(self, name: str) -> Path:
        """The node's own files: host key, sshd_config, sshd.log, and in ``host/`` its kernel's files and machine-id."""
        return self.workdir / "nodes" / name

    def hardware_dir(self, name: str) -> Path:
        """What the node's hardware serves: ``sys/`` (bound over /sys/class and /sys/bus/pci/devices),
        ``bin/`` (bound over /usr/local/bin: mstconfig, ibstat, sudo), ``mst/``, ``ibstat/`` and ``sudo/``
        (their answers).

        On tmpfs (/dev/shm) when there is one: ten times faster to write than a disk. Gone after down().
        """
        if self._hardware_root is None:
            raise TwinError("the twin has no hardware tree before up()")
        return self._hardware_root / node_procs.hardware_key(self.scenario.nodes[name])

    @property
    def service_address(self) -> str:
        """A loopback address of this twin's block kept free for its services (the Kubernetes API)."""
        if self._block is None:
            raise TwinError("the twin is not up: no address block yet")
        return self._block.service_address

    @property
    def running(self) -> bool:
        return self._block is not None

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Twin:
        return self.up()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def up(self) -> Twin:
        """Start the API and every node; return once each reachable node accepts on :22 (else raise, torn down)."""
        if self._block is not None:
            raise TwinError(f"twin in {self.workdir} is already up")
        if os.geteuid() != 0:
            raise TwinError("the twin needs root (mount namespaces, binding port 22)")
        started = time.monotonic()
        try:
            sweep(self.workdir)
            self._block = blocks.claim(len(self.scenario.nodes))
            self.block = self._block.index
            self.addresses = {name: self._block.address(i) for i, name in enumerate(self.scenario.nodes)}
            self.node_names = {name: node.node_name(self.addresses[name]) for name, node in self.scenario.nodes.items()}
            self._start_api()
            self._write_files()
            self._start()
            self._write_state()
        except BaseException:
            self.down()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def down(self) -> None:
        """Kill everything the twin started (also after a failed ``up``); free its addresses. Idempotent."""
        try:
            if self.api is not None:
                self.api.stop()
            node_procs.kill_all(list(self._procs.values()), self._ids)
            cpu.remove_group(self._cpu_group)
        finally:
            self._cpu_group = None
            self.api, self.cluster = None, None
            self._procs.clear()
            for s in self._silent:
                s.close()
            self._silent.clear()
            if self._hardware_root is not None:       # before the block goes: the root is the block's
                node_procs.remove_hardware_root(self._hardware_root, self.workdir)
            if self._block is not None:
                self._block.release()
                self._block = None
            if self._owns_state:
                self.state_path.unlink(missing_ok=True)
                self._owns_state = False

    # -- internals --------------------------------------------------------------------------------
    def _start_api(self) -> None:
        """The cluster's API on the service address (any free port, a fresh token), then its kubeconfig."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api = ApiTwin(host=self.service_address, token=secrets.token_urlsafe(32), tls=self.api_tls)
        self.api.set_kubelets(self.kubelet)
        self.cluster = ClusterEmulation(self.api, self.scenario, self.addresses).install()
        self.api.start()
        self.api.write_kubeconfig(self.kubeconfig_path, context=self.scenario.cluster)

    def kubelet(self, name: str) -> Kubelet | None:
        """How the API's ``pods/exec`` reaches Node ``name``: into its host's namespaces while it runs, else failing
        as its address fails (refused, or hung); None for a Node the twin does not have."""
        host = next((h for h, node_name in self.node_names.items() if node_name == name), None)
        if host is None:
            return None
        address = self.addresses[host]
        proc = self._procs.get(host)
        pid = node_procs.first_process(proc) if proc is not None else None
        if pid is None:
            return Kubelet(address, fault="hung" if self.scenario.nodes[host].ssh == "hung" else "refused")
        return Kubelet(address, enter=node_procs.enter_command(pid), cpu_group=self._cpu_procs)

    @property
    def _cpu_procs(self) -> bytes | None:
        """The file a process writes to join the nodes' CPU group (``machines.cpu``)."""
        return bytes(self._cpu_group / "cgroup.procs") if self._cpu_group else None

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "empty").write_text("")
        client_public = write_keypair(self.identity_path, "ibconform-twin-client")
        (self.workdir / "authorized_keys").write_text(client_public + "\n")
        link = self.workdir / "hardware"
        if link.is_symlink():
            link.unlink()
        for old in (self.workdir / "nodes", link):
            if old.exists():
                shutil.rmtree(old)
        self._hardware_root = node_procs.hardware_root(self.block, self.workdir)
        if self._hardware_root != link:
            link.symlink_to(self._hardware_root)
        host_keys = {}
        for name, node in self.scenario.nodes.items():
            hardware = self.hardware_dir(name)
            if not hardware.exists():
                node_procs.write_hardware(hardware, node)
            folder = self.node_dir(name)
            folder.mkdir(parents=True)
            node_procs.write_host(folder, node)
            public = write_keypair(folder / "ssh_host_ed25519_key", f"root@{name}")
            host_keys[self.node_names[name]] = (self.addresses[name], public)
            authorized = self.workdir / "authorized_keys"
            if not node.host.authorized:        # fault key-refused: the suite's key is not there
                authorized = folder / "authorized_keys"
                authorized.write_text("# the suite's key is not authorized on this node\n")
            (folder / "sshd_config").write_text(render.sshd_config(
                self.addresses[name], str(folder / "ssh_host_ed25519_key"), str(authorized)))
        self.known_hosts_path.write_text(render.known_hosts(host_keys))
        self.ssh_config_path.write_text(render.ssh_config(
            {self.node_names[n]: a for n, a in self.addresses.items()}, str(self.identity_path),
            str(self.known_hosts_path)))
        ssh = {"user": "root", "port": 22, "config": str(self.ssh_config_path),
               "knownHosts": str(self.known_hosts_path), "identityFile": str(self.identity_path),
               "connectTimeout": 3, "commandTimeout": 20}
        inventory = render.inventory(self.scenario.cluster, self.scenario.nodes.values(), self.node_names,
                                     self.scenario.expect, ssh, self.scenario.profiles, self.scenario.inventory,
                                     kubeconfig=str(self.kubeconfig_path))
        header = (f"# Inventory of the ibconform twin for scenario {self.scenario.name} "
                  f"(written by the twin; regenerated on every 'twin up').\n")
        text = header + yaml.safe_dump(inventory, sort_keys=False, width=120)
        try:
            parse_inventory(text, self.inventory_path)     # a bad expect:/inventory: fails now, not in the suite
        except InventoryError as exc:
            raise ScenarioError(f"{self.scenario.source}: the inventory it makes is invalid: {exc}") from None
        self.inventory_path.write_text(text)

    def _start(self) -> None:
        self._ids = node_procs.identities(self._hardware_dirs())
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation directory
        empty = self.workdir / "empty"
        self._cpu_group = cpu.make_group(f"ibconform-twin-{self.block}")
        for name, node in self.scenario.nodes.items():
            if node.ssh == "up":
                self._procs[name] = node_procs.start(name, self.node_dir(name), self.hardware_dir(name), empty,
                                                     self._cpu_procs)
            elif node.ssh == "hung":
                self._silent.append(node_procs.hold_silent(self.addresses[name]))
        node_procs.wait_accepting(self._procs, self.addresses,
                                  {n: self.node_dir(n) for n in self._procs}, self.start_timeout)

    def _hardware_dirs(self) -> list[Path]:
        return list(dict.fromkeys(self.hardware_dir(n) for n in self.scenario.nodes))

    def _write_state(self) -> None:
        state = {
            "format": STATE_FORMAT,
            "pid": os.getpid(),
            "started": node_procs.process_start_time(os.getpid()),
            "scenario": self.scenario.name,
            "cluster": self.scenario.cluster,
            "block": self.block,
            "addresses": self.addresses,
            "nodeNames": self.node_names,
            "sshd": {name: proc.pid for name, proc in self._procs.items()},
            "hardwareDirs": [str(p) for p in self._hardware_dirs()],
            "inventory": str(self.inventory_path),
            "api": self.api.url if self.api is not None else None,
            "kubeconfig": str(self.kubeconfig_path),
        }
        self.state_path.write_text(json.dumps(state, indent=2) + "\n")
        self._owns_state = True
