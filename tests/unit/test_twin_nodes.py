"""The twin's nodes, for real: sshd per node on loopback, reached with paramiko and strict host keys.

Needs root, /usr/sbin/sshd and unshare (as the e2e tests do). One ``faults`` twin serves the table of
commands; the life-cycle tests bring up their own small twins.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from ibconform.inventory import load as load_inventory
from ibconform.twin import ScenarioError, Twin, TwinError, commands
from ibconform.twin.faults import FAULTS, NV_ACCESS_ERROR
from ibconform.twin.machines import nodes as node_procs
from ibconform.twin.machines import render
from ibconform.twin.scenario import builtin_names
from ibconform.twin.scenario import load as load_scenario
from ibconform.twin.scenario import parse as parse_scenario

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(node_procs.SSHD).exists(), reason="the twin needs root and openssh-server")

QUERY = "mstconfig -d 0000:18:00.0 -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1"


def connect(twin: Twin, node: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(twin.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(twin.addresses[node], port=22, username="root", key_filename=str(twin.identity_path),
                   look_for_keys=False, allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(command, timeout=15)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory):
    twin = Twin("faults", tmp_path_factory.mktemp("twin-faults"))
    with twin:
        yield twin


@pytest.fixture(scope="module")
def clients(twin: Twin):
    opened: dict[str, paramiko.SSHClient] = {}

    def client(node: str) -> paramiko.SSHClient:
        if node not in opened:
            opened[node] = connect(twin, node)
        return opened[node]

    yield client
    for c in opened.values():
        c.close()


# node, command, exit code, a regex the output must match (MULTILINE), at least this many seconds
ANSWERS = [
    ("dgx001", "hostname", 0, r"\Adgx001\n\Z", 0),
    ("dgx001", "cat /sys/class/net/ibp24s0/device/sriov_numvfs", 0, r"\A8\n\Z", 0),
    ("dgx001", "cat /sys/class/net/ibp24s0/device/sriov_totalvfs", 0, r"\A8\n\Z", 0),
    ("dgx001", "readlink /sys/class/net/ibp24s0/device", 0, r"/0000:18:00\.0\n\Z", 0),
    ("dgx001", "basename $(readlink /sys/class/infiniband/mlx5_4/device)", 0, r"\A0000:18:00\.0\n\Z", 0),
    ("dgx001", "cat /sys/class/net/ibp24s0/device/infiniband/*/fw_ver", 0, r"\A28\.41\.1000\n\Z", 0),
    ("dgx001", "cat /sys/class/net/ibp24s0/device/infiniband/mlx5_4/ports/1/state", 0, r"\A4: ACTIVE\n\Z", 0),
    ("dgx001", "cat /sys/class/infiniband/mlx5_4/ports/1/rate", 0, r"\A400 Gb/sec \(4X NDR\)\n\Z", 0),
    ("dgx001", "cat /sys/bus/pci/devices/0000:29:00.0/sriov_numvfs", 0, r"\A0\n\Z", 0),
    ("dgx001", QUERY, 0, r"^\*\s+NUM_OF_VFS\s+0\s+8\s+8\s*$", 0),
    ("dgx001", QUERY, 0, r"^Device:\s+0000:18:00\.0\s*$", 0),
    ("dgx001", "mstconfig -e -d 18:00.0 q", 0, r"^Device:\s+18:00\.0\s*$", 0),
    ("dgx001", "mstconfig -d 0000:18:00.0 q SRIOV_EN", 0, r"^Configurations:\s+Next Boot\n\s+SRIOV_EN\s+True\(1\)\s*\Z", 0),
    ("dgx001", "mstconfig -d 0000:99:00.0 -e q", 3, r"\A-E- Failed to open the device\n\Z", 0),
    ("dgx002", QUERY, 0, r"^\*\s+NUM_OF_VFS\s+0\s+16\s+8\s*$", 0),
    ("dgx002", QUERY, 0, r"^The '\*' shows parameters with next value different", 0),
    ("dgx002", "cat /sys/class/net/ibp220s0/device/sriov_numvfs", 0, r"\A0\n\Z", 0),
    ("dgx002", "cat /sys/class/net/ibp220s0/device/sriov_totalvfs", 0, r"\A16\n\Z", 0),
    ("dgx003", QUERY, 3, rf"\A{re.escape(NV_ACCESS_ERROR)}\n\Z", 0),
    ("dgx004", "cat /sys/class/net/ibp64s0/device/sriov_numvfs", 0, r"\A0\n\Z", 0),
    ("dgx004", "cat /sys/class/net/ibp24s0/device/sriov_numvfs", 0, r"\A8\n\Z", 0),
    ("dgx005", "cat /sys/bus/pci/devices/0000:29:00.0/sriov_numvfs", 0, r"\A8\n\Z", 0),
    ("dgx006", "cat /sys/class/infiniband/mlx5_15/ports/1/state", 0, r"\A1: DOWN\n\Z", 0),
    ("dgx009", QUERY, 0, r"^\*\s+NUM_OF_VFS\s+0\s+8\s+8\s*$", 2.0),
    ("dgx010", f"timeout 1 {QUERY}", 124, r"\A\Z", 1.0),
    ("dgx015", "cat /sys/class/infiniband/mlx5_8/ports/1/link_layer", 0, r"\AEthernet\n\Z", 0),
    ("dgx001", "ibstat", 0, r"^CA 'mlx5_4'\n\tCA type: MT4129\n\tNumber of ports: 1\n\tFirmware version: 28\.41\.1000$", 0),
    ("dgx006", "ibstat mlx5_15 1", 0, r"\ACA: 'mlx5_15'\nPort 1:\nState: Down\nPhysical state: Polling\nRate: 10\n", 0),
    ("dgx001", "ibstat mlx5_99 2>&1", 255, r"^ibpanic: \[\d+\] main: stat of IB device 'mlx5_99' failed", 0),
]


# (the suite's plugin owns parameters named node/hca/excluded/cluster, hence "host")
@pytest.mark.parametrize(("host", "command", "rc", "pattern", "seconds"), ANSWERS,
                         ids=[f"{r[0]}-{r[1].split()[0]}-{i}" for i, r in enumerate(ANSWERS)])
def test_node_answers(clients, host, command, rc, pattern, seconds):
    started = time.monotonic()
    got_rc, out = run(clients(host), command)
    took = time.monotonic() - started
    assert (got_rc, bool(re.search(pattern, out, re.MULTILINE))) == (rc, True), f"{command!r} on {host}:\n{out}"
    assert took >= seconds


@pytest.mark.parametrize("args", [
    ["-d", "0000:18:00.0", "-e", "q", "NUM_OF_VFS", "SRIOV_EN", "LINK_TYPE_P1"],
    ["-e", "-d", "0000:18:00.0", "q", "LINK_TYPE_P1", "NUM_OF_VFS"],
    ["-d", "0000:18:00.0", "q"],
    ["-d", "mlx5_4", "-e", "query"],
    ["-d", "0000:18:00.0", "-e", "q", "NUM_OF_VFS", "NO_SUCH_PARAM"],
    ["-d", "0000:77:00.0", "q"],
])
@pytest.mark.parametrize("host", ["dgx001", "dgx002", "dgx003", "dgx015"])
def test_mstconfig_script_prints_what_the_renderer_renders(twin, host, args):
    """The node's sh script and render.mstconfig_query agree byte for byte (no SSH needed)."""
    script = twin.hardware_dir(host) / "bin" / "mstconfig"
    got = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=10)
    dev = args[args.index("-d") + 1]
    verb = next(i for i, a in enumerate(args) if a in ("q", "query"))
    node = twin.scenario.nodes[host]
    devices = {d.pci: d for d in node.devices.values()}
    devices.update({d.rdma: d for d in node.devices.values()})
    device = devices.get(dev)
    want, rc = render.mstconfig_query(device, node.link_types(device) if device else {}, device_arg=dev,
                                      params=args[verb + 1:] or None, verbose="-e" in args)
    assert (got.stdout, got.returncode, got.stderr) == (want, rc, "")


def test_a_second_twin_in_a_live_twins_workdir_is_refused_and_harms_nothing(twin, clients):
    with pytest.raises(TwinError, match=r"a twin is already up in .*: take it down first"):
        Twin("demo", twin.workdir).up()
    assert twin.state_path.exists()
    assert run(clients("dgx001"), "hostname") == (0, "dgx001\n")


def test_unreachable_node_refuses(twin):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((twin.addresses["dgx007"], 22), timeout=2).close()


def test_hung_node_accepts_tcp_but_sends_no_banner(twin):
    with socket.create_connection((twin.addresses["dgx008"], 22), timeout=2) as s:
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):
            s.recv(1)


def test_healthy_node_sends_an_ssh_banner(twin):
    with socket.create_connection((twin.addresses["dgx001"], 22), timeout=2) as s:
        s.settimeout(2.0)
        assert s.recv(8).startswith(b"SSH-2.0-")


def test_inventory_names_every_node_and_how_to_reach_it(twin):
    inventory = load_inventory(twin.inventory_path)
    assert [n.name for n in inventory.nodes] == list(twin.scenario.nodes)
    assert inventory.model.ssh.config == str(twin.ssh_config_path)
    assert inventory.model.collect.mstconfig_timeout == 5
    assert [h.pci for h in inventory.node("dgx001").hcas][:2] == ["0000:18:00.0", "0000:40:00.0"]
    assert {d.pci for d in inventory.node("dgx001").excluded} >= {"0000:29:00.0", "0000:aa:00.0"}
    known = twin.known_hosts_path.read_text().splitlines()
    assert len(known) == len(twin.scenario.nodes)
    assert known[0].startswith(f"dgx001,{twin.addresses['dgx001']} ssh-ed25519 AAAA")


def test_ssh_config_resolves_names_and_host_keys_match(twin):
    config = paramiko.SSHConfig.from_path(str(twin.ssh_config_path)).lookup("dgx002")
    assert (config["hostname"], config["user"], config["identityfile"]) == (
        twin.addresses["dgx002"], "root", [str(twin.identity_path)])
    client = paramiko.SSHClient()
    client.load_host_keys(str(twin.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(config["hostname"], username="root", key_filename=str(twin.identity_path),
                   look_for_keys=False, allow_agent=False, timeout=5)
    try:
        assert run(client, "uname -n") == (0, "dgx002\n")
    finally:
        client.close()


def test_a_node_presents_only_its_own_host_key(twin):
    """dgx001's key is not dgx002's: a swapped address fails strict host key checking."""
    client = paramiko.SSHClient()
    keys = paramiko.HostKeys(str(twin.known_hosts_path))
    client.get_host_keys().add(twin.addresses["dgx002"], "ssh-ed25519", keys.lookup("dgx001")["ssh-ed25519"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(twin.addresses["dgx002"], username="root", key_filename=str(twin.identity_path),
                       look_for_keys=False, allow_agent=False, timeout=5)
    client.close()


# ---------------------------------------------------------------------------------------------- life cycle

def _inside(workdir: Path, ids: set[tuple[int, int]]) -> list[int]:
    """Live processes of a twin: inside one of its nodes (``ids``: node_procs.identities of its hardware
    trees, taken while it ran), or naming its workdir (sshd -f <workdir>/nodes/...)."""
    pids = set(node_procs.processes_in(ids))
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(workdir) in cmdline and "pytest" not in cmdline and state != "Z":
            pids.add(int(entry.name))
    return sorted(pids)


def _ids(twin: Twin) -> set[tuple[int, int]]:
    ids = node_procs.identities([twin.hardware_dir(n) for n in twin.scenario.nodes])
    assert ids
    return ids


def _refuses(address: str) -> bool:
    try:
        socket.create_connection((address, 22), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_down_kills_every_process_and_frees_the_addresses(tmp_path):
    twin = Twin("demo", tmp_path / "demo").up()
    try:
        client = connect(twin, "dgx031")
        session = client.exec_command("sleep 300")            # a session in flight at teardown
        assert run(connect(twin, "dgx030"), "hostname") == (0, "dgx030\n")
        ids = _ids(twin)
        assert len(_inside(twin.workdir, ids)) >= 4            # two sshds, a session, its sleep
    finally:
        twin.down()
    assert _inside(twin.workdir, ids) == []
    assert all(_refuses(a) for a in twin.addresses.values())
    twin.down()                                                # idempotent
    session[1].channel.close()
    client.close()


def test_two_twins_at_once_get_disjoint_address_blocks(tmp_path):
    with Twin("demo", tmp_path / "a") as a, Twin("demo", tmp_path / "b") as b:
        assert a.block != b.block
        assert set(a.addresses.values()).isdisjoint(b.addresses.values())
        for twin in (a, b):
            assert run(connect(twin, "dgx030"), "hostname") == (0, "dgx030\n")


def test_sigkill_of_a_supervisor_leaves_no_sshd_and_the_next_up_succeeds(tmp_path):
    workdir = commands.up("demo", tmp_path / "supervised")
    state = commands.status(workdir)
    assert state is not None and set(state["addresses"]) == {"dgx030", "dgx031"}
    ids = node_procs.identities([Path(p) for p in state["hardwareDirs"]])
    assert ids and _inside(workdir, ids)
    os.kill(commands.supervisor_pid(workdir), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _inside(workdir, ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _inside(workdir, ids) == []
    assert commands.status(workdir) is None
    try:
        again = commands.up("demo", workdir)
        assert commands.status(again) is not None
        ids |= node_procs.identities([Path(p) for p in commands.status(again)["hardwareDirs"]])
    finally:
        commands.down(workdir)
    assert _inside(workdir, ids) == []
    commands.down(workdir)                                     # idempotent


def test_a_twin_that_does_not_come_up_in_time_tears_down_and_says_which_node(tmp_path):
    twin = Twin("demo", tmp_path / "late", start_timeout=0)
    with pytest.raises(TwinError, match=r"node dgx03[01]: sshd not accepting on 127\.\d+\.\d+\.\d+:22 after 0 s"):
        twin.up()
    assert not twin.running and _inside(twin.workdir, set()) == []


# ---------------------------------------------------------------------------------------------- scenarios

GOOD = "format: ibconform-twin/v1\ncluster: c\nnodes:\n"
BAD_SCENARIOS = [
    ("format: other\n", r"format: expected 'ibconform-twin/v1', got 'other'"),
    (GOOD + "  - {names: 'dgx[1-2'}\n", r"nodes\[0\]\.names: expected a NodeSet"),
    (GOOD + "  - {names: a, faults: [{kind: meltdown}]}\n", r"nodes\[0\]\.faults\[0\]\.kind: unknown fault 'meltdown'"),
    (GOOD + "  - {names: a, faults: [{kind: no-vfs, hcas: [ibp99s0]}]}\n",
     r"nodes\[0\]\.faults\[0\]\.hcas: unknown device 'ibp99s0' on a"),
    (GOOD + "  - {names: a, faults: [{kind: mst-delay, seconds: soon}]}\n",
     r"nodes\[0\]\.faults\[0\]\.seconds: expected a non-negative float, got 'soon'"),
    (GOOD + "  - {names: a, faults: [{kind: hung, hcas: [ibp24s0]}]}\n",
     r"nodes\[0\]\.faults\[0\]\.hcas: fault hung concerns the whole node"),
    (GOOD + "  - {names: a, faults: [{kind: port-down, speed: 1}]}\n",
     r"nodes\[0\]\.faults\[0\]\.speed: unknown parameter of fault port-down"),
    (GOOD + "  - {names: a}\ndefaults: {numOfVfs: many}\n", r"defaults\.numOfVfs: .*'many'"),
    (GOOD + "  - {names: a}\n  - {names: 'a'}\n", r"nodes\[1\]\.names: node a is listed twice"),
    (GOOD + "  - {names: a, profile: dgx-h100}\n", r"nodes\[0\]\.profile: unknown profile 'dgx-h100'"),
    (GOOD + "  - {names: a, colour: red}\n", r"nodes\[0\]\.colour: unknown key"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SCENARIOS, ids=[m.split(":")[0] for _, m in BAD_SCENARIOS])
def test_scenario_errors_are_one_line_naming_the_field(text, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "bad.yaml")
    assert "\n" not in str(exc.value)
    assert re.match(r"bad\.yaml: " + message, str(exc.value)), str(exc.value)


def test_a_scenario_whose_inventory_is_invalid_fails_before_any_node_starts(tmp_path):
    scenario = parse_scenario(GOOD + "  - {names: a}\nexpect: {vfsPerHca: lots}\n", "bad.yaml")
    with pytest.raises(ScenarioError, match=r"^bad\.yaml: the inventory it makes is invalid: .*expect\.vfsPerHca"):
        Twin(scenario, tmp_path / "bad").up()


def test_builtin_scenarios_cover_every_fault_kind():
    applied = set()
    for name in builtin_names():
        scenario = load_scenario(name)
        applied |= {kind for node in scenario.nodes.values() for kind in node.faults} | set(scenario.kubernetes.faults)
    assert applied == set(FAULTS)
    demo = load_scenario("demo")
    pending = demo.nodes["dgx031"].hcas
    assert len(pending) == 8 and all(h.num_of_vfs.pending and h.sriov_numvfs == 0 for h in pending.values())
    assert not any(h.num_of_vfs.pending for h in demo.nodes["dgx030"].hcas.values())
    with pytest.raises(ScenarioError, match="expected a path or one of: cidrpool, demo, environment, faults, "
                                            "ip-named, ipam-image, kernel, kernel-args, mellanox-disabled, "
                                            "operator-external-drainer, operator-legacy, partitioned, pooled, "
                                            "split-namespaces, vpi"):
        load_scenario("no-such-scenario")
