"""The SSH transport's login against a real paramiko server on loopback: a refused key, a login the sshd did not
finish in time (a load problem: raise ssh.connectTimeout), several identity files offered in order on one
connection, and identity files that cannot be used, each named in one line; a connection broken mid-exchange is
made once more, and twice broken is named. Running the node script: output sshd sends after the exit status is
kept."""

import socket
import threading
import time

import paramiko
import pytest

from ibconform import inventory
from ibconform.errors import TransportError
from ibconform.transports.ssh import SshTransport
from tests.ssh_breaks import break_exchange

HCAS = '    hcas: [{iface: ibp24s0, pci: "0000:18:00.0"}]\n'


class _Sshd(paramiko.ServerInterface):
    """Answers each public-key login after ``delay`` s: accepted for the keys in ``accepted``; a command runs
    ``reply(channel)`` in a thread of its own."""

    def __init__(self, delay: float, accepted: set[str], reply=None) -> None:
        self.delay, self.accepted, self.offered, self.reply = delay, accepted, 0, reply

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        if self.reply is None:
            return False
        threading.Thread(target=self.reply, args=(channel,), daemon=True).start()
        return True

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        self.offered += 1
        time.sleep(self.delay)
        return paramiko.AUTH_SUCCESSFUL if key.get_base64() in self.accepted else paramiko.AUTH_FAILED


@pytest.fixture
def sshd(tmp_path):
    """A one-connection paramiko server on 127.0.0.1, after a connection broken mid-exchange for each of
    ``broken`` (``tests.ssh_breaks.break_exchange``'s ways), and RSA keys ``one`` and ``two``
    written as PEM files; yields ``serve(delay, accepted, identities, broken) -> (inventory, server)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    host_key = paramiko.RSAKey.generate(2048)
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    keys = {name: paramiko.RSAKey.generate(2048) for name in ("one", "two")}
    for name, key in keys.items():
        key.write_private_key_file(str(tmp_path / name))
    servers: list[paramiko.Transport] = []

    def accept(server: paramiko.ServerInterface, broken: tuple[str, ...]) -> None:
        try:
            for how in broken:
                with listener.accept()[0] as conn:
                    break_exchange(conn, how)
            conn, _ = listener.accept()
        except OSError:         # closed: the transport gave up before connecting
            return
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        servers.append(transport)
        transport.start_server(server=server)

    def serve(delay: float, accepted: tuple[str, ...], identities: tuple[str, ...], broken: tuple[str, ...] = (),
              reply=None):
        server = _Sshd(delay, {keys[name].get_base64() for name in accepted}, reply)
        threading.Thread(target=accept, args=(server, broken), daemon=True).start()
        (tmp_path / "ssh_config").write_text("Host 127.0.0.1\n" + "".join(f"  IdentityFile {i}\n" for i in identities))
        text = (f"format: ibconform/v1\ncluster: c1\nssh: {{user: root, port: {port}, config: ssh_config,"
                f" knownHosts: known_hosts, connectTimeout: 0.5}}\nprofiles:\n  p:\n{HCAS}"
                "nodes:\n  - {names: 127.0.0.1, profile: p}\n")
        return inventory.parse(text, tmp_path / "inv.yaml"), server

    yield serve
    for transport in servers:
        transport.close()
    listener.close()


def connect(inv: inventory.Inventory) -> str:
    with pytest.raises(TransportError) as caught:
        SshTransport(inv.nodes[0], inv)._connect()
    return str(caught.value)


def test_a_refused_key_says_refused(sshd):
    # a PEM RSA key: paramiko's key_filename would report the last key type's parse error instead
    inv, _ = sshd(delay=0.0, accepted=(), identities=("one",))
    message = connect(inv)
    assert message.endswith("refused authentication (Authentication failed.)"), message


def test_a_stalled_authentication_says_timeout_not_refused(sshd):
    inv, _ = sshd(delay=2.0, accepted=("one",), identities=("one",))
    message = connect(inv)
    assert message.endswith("authentication did not finish within 0.5 s (sshd overloaded or stalled): "
                            "check the node's load, or raise ssh.connectTimeout"), message


def test_identity_files_are_offered_in_order_on_one_connection(sshd):
    inv, server = sshd(delay=0.0, accepted=("two",), identities=("one", "two"))
    client = SshTransport(inv.nodes[0], inv)._connect()
    try:
        assert client.get_transport().is_authenticated() and server.offered == 2
    finally:
        client.close()


def test_none_of_several_identity_files_accepted_says_refused(sshd):
    inv, server = sshd(delay=0.0, accepted=(), identities=("one", "two"))
    assert connect(inv).endswith("refused authentication (Authentication failed.)")
    assert server.offered == 2


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot be read (No such file or directory)"),
    ("not a key\n", "is not a private key paramiko can read"),
    ("encrypted", "is passphrase-protected and ibconform does not prompt"),
])
def test_an_unusable_identity_file_is_named(sshd, tmp_path, content, expected):
    if content == "encrypted":
        paramiko.RSAKey.generate(2048).write_private_key_file(str(tmp_path / "bad"), password="secret")
    elif content is not None:
        (tmp_path / "bad").write_text(content)
    inv, _ = sshd(delay=0.0, accepted=("one",), identities=("bad",))
    message = connect(inv)
    assert message.startswith(f"identity file {tmp_path / 'bad'} ") and expected in message, message


@pytest.mark.parametrize(("how", "error"), [
    ("garbage", "Invalid packet blocking"),
    ("close", "the node closed the connection during the key exchange"),
    ("reset", "Connection reset by peer"),
    ("malformed", "malformed SSH exchange (IndexError: index out of range)"),
])
def test_a_connection_broken_mid_exchange_is_made_once_more_and_noted(sshd, how, error):
    inv, server = sshd(delay=0.0, accepted=("one",), identities=("one",), broken=(how,))
    transport = SshTransport(inv.nodes[0], inv)
    client = transport._connect()
    try:
        assert client.get_transport().is_authenticated() and server.offered == 1
    finally:
        client.close()
    port = inv.model.ssh.port
    assert transport.notes == [f"connected a second time: the first connection broke (ssh 127.0.0.1:{port}: "
                               f"{error})"]


def test_a_connection_broken_twice_is_named(sshd):
    inv, _ = sshd(delay=0.0, accepted=("one",), identities=("one",), broken=("close", "garbage"))
    assert connect(inv) == f"ssh 127.0.0.1:{inv.model.ssh.port}: Invalid packet blocking"


def test_output_sent_after_the_exit_status_is_kept(sshd):
    # OpenSSH's sshd sends the exit status when the command exits, and may still be sending its output: the
    # output ends at the EOF. Read up to the exit status only, the node's output was "cut short" (a false failure).
    def reply(channel):
        while channel.recv(4096):    # the node script, until the client's EOF
            pass
        channel.sendall(b"one\n")
        channel.send_exit_status(0)
        for late in (b"two\n", b"three\n"):
            time.sleep(0.3)
            channel.sendall(late)
        channel.sendall_stderr(b"late warning\n")
        channel.shutdown_write()
        channel.close()

    inv, _ = sshd(delay=0.0, accepted=("one",), identities=("one",), reply=reply)
    transport = SshTransport(inv.nodes[0], inv)
    try:
        result = transport.run("echo", timeout=10)
    finally:
        transport.close()
    assert (result.exit_status, result.stdout, result.stderr) == (0, "one\ntwo\nthree\n", "late warning\n")
