"""benchmarks/fleet.py: the paramiko floor that cannot finish the node script on a node ends the benchmark in
one line naming the nodes and the first one's error (a floor that missed a node is no floor), not a
traceback from a worker thread."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import paramiko
import pytest

from benchmarks import fleet
from ibconform import inventory
from tests.ssh_breaks import break_exchange

INVENTORY = """\
format: ibconform/v1
cluster: c1
ssh: {{user: root, config: {config}, knownHosts: {known_hosts}}}
profiles:
  p:
    hcas: [{{iface: ibp24s0, pci: "0000:18:00.0"}}]
nodes:
  - {{names: "dgx[001-002]", profile: p}}
"""


@pytest.fixture
def broken_sshd():
    """A loopback port whose every connection gets a packet of impossible length after the banner (what paramiko
    reported once in a 256-node floor: "Invalid packet blocking")."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                break_exchange(conn, "garbage")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_a_node_the_pool_could_not_finish_is_named_in_one_line(tmp_path, broken_sshd):
    (tmp_path / "ssh_config").write_text(f"Host dgx*\n  HostName 127.0.0.1\n  Port {broken_sshd}\n")
    (tmp_path / "known_hosts").write_text("")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.format(config=tmp_path / "ssh_config", known_hosts=tmp_path / "known_hosts"))
    inv = inventory.load(path)
    twin = SimpleNamespace(known_hosts_path=tmp_path / "known_hosts")
    logs = SimpleNamespace(mark=lambda: 0, since=lambda mark: [])
    with pytest.raises(SystemExit) as ended:
        fleet.measure_paramiko(twin, logs, inv, 2, "echo hi\n", "b0undary")
    message = str(ended.value)
    assert message == ("fleet: the paramiko pool did not finish the node script on 2 nodes (dgx[001-002]); "
                       "dgx001: SSHException: Invalid packet blocking")


def test_a_refused_connection_is_an_error_of_its_node():
    known = paramiko.HostKeys()
    target = SimpleNamespace(hostname="127.0.0.1", port=1, user="root", identity_files=())
    error = fleet._paramiko_one(target, known, b"")
    assert isinstance(error, str) and error.startswith("NoValidConnectionsError")
