"""Transports against the twin: strict host keys by default, opt-in acceptance recorded, a changed key
refused as a possible man-in-the-middle, a connection broken mid-exchange made once more, and a pytest-testinfra
hostspec behind the same interface."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest
import yaml

from ibconform import inventory
from ibconform.collect.nodes import collect_node
from tests.ssh_breaks import break_exchange


def _inventory(twin, tmp_path: Path, **ssh) -> inventory.Inventory:
    data = yaml.safe_load(twin.inventory_path.read_text())
    data["ssh"].update(ssh)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return inventory.load(path)


def test_known_host_key_connects(faults_twin, tmp_path):
    inv = _inventory(faults_twin, tmp_path)
    status, output = collect_node(inv.node("dgx001"), inv)
    assert status.reachable and status.error is None and status.notes == []
    assert output.hostname == "dgx001"
    assert output.files["/sys/class/net/ibp24s0/device/sriov_numvfs"].strip() == "8"


def test_unknown_host_key_is_refused_by_default(faults_twin, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = _inventory(faults_twin, tmp_path, knownHosts=str(empty))
    status, output = collect_node(inv.node("dgx001"), inv)
    assert not status.reachable and output is None
    assert "is not in known_hosts" in status.error and "acceptUnknownHostKeys" in status.error


def test_accepting_unknown_keys_is_opt_in_and_recorded(faults_twin, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = _inventory(faults_twin, tmp_path, knownHosts=str(empty), acceptUnknownHostKeys=True)
    status, _ = collect_node(inv.node("dgx001"), inv)
    assert status.reachable
    assert status.notes and status.notes[0].startswith("host key accepted without verification: ")


def test_changed_host_key_is_refused_as_possible_mitm(faults_twin, tmp_path):
    lines = faults_twin.known_hosts_path.read_text().splitlines()
    other = next(line for line in lines if line.startswith("dgx002,"))
    mine = next(line for line in lines if line.startswith("dgx001,"))
    forged = tmp_path / "known_hosts"
    forged.write_text(mine.split(" ", 1)[0] + " " + other.split(" ", 1)[1] + "\n")
    inv = _inventory(faults_twin, tmp_path, knownHosts=str(forged))
    status, _ = collect_node(inv.node("dgx001"), inv)
    assert not status.reachable
    assert "host key of" in status.error and "possible man-in-the-middle" in status.error


def test_testinfra_local_hostspec_runs_the_same_script(faults_twin, tmp_path):
    data = yaml.safe_load(faults_twin.inventory_path.read_text())
    data["transport"] = "local://"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    inv = inventory.load(path)
    status, output = collect_node(inv.node("dgx001"), inv)
    assert status.reachable and status.transport == "local"
    assert output.hostname == socket.gethostname()
    # this machine is no DGX: the script ran, and says so record by record
    text, code = output.mstconfig["0000:18:00.0"]
    assert code == 127 and "mstconfig" in text


@pytest.fixture
def breaks_first(faults_twin):
    """A loopback port in front of dgx001's sshd: its first connection gets a packet of impossible length after
    the banner; every later one is relayed to the node. Yields (port, connections)."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = faults_twin.addresses["dgx001"]
    accepted: list[int] = []

    def relay(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            if len(accepted) == 1:
                with conn:
                    break_exchange(conn, "garbage")
                continue
            upstream = socket.create_connection((address, 22), timeout=5)
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=relay, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], accepted
    listener.close()


def test_a_connection_broken_mid_exchange_is_made_once_more_and_noted(faults_twin, breaks_first, tmp_path):
    port, accepted = breaks_first
    key = next(line for line in faults_twin.known_hosts_path.read_text().splitlines() if line.startswith("dgx001,"))
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {key.split(' ', 1)[1]}\n")
    (tmp_path / "ssh_config").write_text("Host dgx001\n  HostName 127.0.0.1\n")
    inv = _inventory(faults_twin, tmp_path, port=port, config=str(tmp_path / "ssh_config"),
                     knownHosts=str(tmp_path / "known_hosts"))
    status, output = collect_node(inv.node("dgx001"), inv)
    assert status.reachable and status.error is None and output.hostname == "dgx001"
    assert len(accepted) == 2
    assert status.notes == [f"connected a second time: the first connection broke (ssh 127.0.0.1:{port}: "
                            "Invalid packet blocking)"]
