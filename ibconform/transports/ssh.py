"""SSH transport over paramiko: one connection (a second only when the first breaks mid-exchange), one exec,
strict host keys.

Host keys are checked against the inventory's known_hosts; an unknown key is refused unless
``ssh.acceptUnknownHostKeys`` is set, and a changed key is always refused. An ssh_config file
(``ssh.config``) supplies HostName, Port, User and IdentityFile per host, as on real sites.
Both files are parsed once per run, not once per node: paramiko's own loading is quadratic in the number
of hosts listed (each known_hosts line is checked against all before it), so per-node loading made a
256-node collection spend seconds of CPU re-reading them; ssh_config lookups read only the stanzas that
can apply (``sshconfig``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ibconform.errors import TransportError
from ibconform.inventory import Inventory, Node
from ibconform.transports import CommandResult, register
from ibconform.transports.sshconfig import IndexedConfig

# paramiko logs connection failures with tracebacks from its own threads; the transport reports them as
# one line per node instead (a NullHandler keeps Python's last-resort handler from printing them)
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Target:
    """Where and how to connect, after ssh_config and inventory are merged."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]


_READERS = {
    paramiko.SSHConfig: lambda path: IndexedConfig(paramiko.SSHConfig.from_path(path)),
    paramiko.HostKeys: paramiko.HostKeys,
    paramiko.PKey: paramiko.PKey.from_path,
}


@functools.lru_cache(maxsize=8)
def _parsed(kind: type, path: str, mtime_ns: int) -> IndexedConfig | paramiko.HostKeys | paramiko.PKey:
    """``path`` parsed as ``kind`` (SSHConfig, HostKeys or PKey), once per version of the file."""
    return _READERS[kind](path)


_PARSING = threading.Lock()
#: How often a session drains what its node printed, instead of waking at each packet: a node's output is hundreds
#: of packets, each a wakeup (and GIL hand-off) beside 32 sessions (the collector's user CPU at 256 nodes: 5.2 s
#: waking per packet, 4.6 s draining). The channel's window (2 MB) holds what arrives meanwhile; the exit status
#: wakes it at once.
DRAIN_S = 0.05


def parsed_file(kind: type, path: Path) -> IndexedConfig | paramiko.HostKeys | paramiko.PKey:
    """An ssh_config (``paramiko.SSHConfig``: an ``IndexedConfig``), known_hosts (``paramiko.HostKeys``) or
    private key (``paramiko.PKey``) file, parsed once (the lock: a run's first connections all ask at once,
    and would each parse it)."""
    mtime_ns = path.stat().st_mtime_ns
    with _PARSING:
        return _parsed(kind, str(path), mtime_ns)


def add_known_keys(client: paramiko.SSHClient, known: paramiko.HostKeys, hostname: str, port: int) -> None:
    """Give ``client`` the known keys of the host it will connect to (the name paramiko checks)."""
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    for key_type, key in (known.lookup(name) or {}).items():
        client.get_host_keys().add(name, key_type, key)


def resolve_target(node: str, inventory: Inventory) -> Target:
    """Merge the ssh_config entry for ``node`` with the inventory (inventory keys win)."""
    ssh = inventory.model.ssh
    entry: dict = {}
    if ssh.config:
        path = _expand(ssh.config, inventory)
        try:
            entry = parsed_file(paramiko.SSHConfig, path).lookup(node)
        except OSError as exc:
            raise TransportError(f"cannot read ssh config {path}: {exc.strerror or exc}") from None
    identities = [ssh.identity_file] if ssh.identity_file else entry.get("identityfile", [])
    return Target(
        hostname=entry.get("hostname", node),
        port=ssh.port or int(entry.get("port", 22)),
        user=ssh.user or entry.get("user") or "root",
        identity_files=tuple(str(_expand(i, inventory)) for i in identities),
    )


def _expand(path: str, inventory: Inventory) -> Path:
    """``~`` expanded; a relative path is relative to the inventory file."""
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() else inventory.path.parent / expanded


def _identity(path: Path) -> paramiko.PKey:
    """The private key in ``path``, of whatever type it holds (paramiko's ``key_filename`` tries each type in
    turn and reports the last type's parse error, hiding the server's answer to the key that parsed)."""
    try:
        return parsed_file(paramiko.PKey, path)
    except OSError as exc:
        raise TransportError(f"identity file {path} cannot be read ({exc.strerror or exc})") from None
    except (paramiko.PasswordRequiredException, TypeError):     # TypeError: cryptography's, for an encrypted PEM
        raise TransportError(f"identity file {path} is passphrase-protected and ibconform does not prompt: "
                             "use a key without a passphrase, or ssh-agent with no identityFile set") from None
    except (paramiko.SSHException, paramiko.UnknownKeyType, ValueError) as exc:
        raise TransportError(f"identity file {path} is not a private key paramiko can read ({exc})") from None


def _timed_out(exc: paramiko.AuthenticationException) -> bool:
    return str(exc).startswith("Authentication timeout")     # paramiko's auth_timeout, not a refusal


def _login(client: paramiko.SSHClient, t: Target, keys: list[paramiko.PKey], timeout: float) -> None:
    """Connect and log in with the identity files in order on one connection, as ssh does with several
    IdentityFile lines (with none: the agent and ~/.ssh keys, paramiko's defaults)."""
    try:
        client.connect(
            t.hostname, port=t.port, username=t.user, pkey=keys[0] if keys else None,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
            look_for_keys=not keys, allow_agent=not keys)
    except paramiko.AuthenticationException as refused:
        transport = client.get_transport()
        if len(keys) < 2 or _timed_out(refused) or transport is None or not transport.is_active():
            raise
        for key in keys[1:]:
            try:
                transport.auth_publickey(t.user, key)
                return
            except paramiko.AuthenticationException as exc:
                if _timed_out(exc):
                    raise
        raise


class _Broken(TransportError):
    """The connection broke during the key exchange or login: worth one more connection."""


def _login_error(exc: Exception, t: Target, timeout: float, got_banner: bool) -> TransportError:
    """The one-line TransportError for what connecting and logging in to ``t`` raised (``_Broken``: worth one
    more connection); ``got_banner``: the node's SSH banner had arrived."""
    where = f"ssh {t.hostname}:{t.port}"
    overloaded = (f"did not finish within {timeout:g} s (sshd overloaded or stalled): check the node's load, or "
                  "raise ssh.connectTimeout")
    if isinstance(exc, TransportError):             # the host key policy's refusal
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        return TransportError(f"host key of {t.hostname} changed (got {exc.key.get_name()} {exc.key.fingerprint}): "
                              "possible man-in-the-middle, refusing to connect; verify the node and update known_hosts")
    if isinstance(exc, paramiko.AuthenticationException):
        if _timed_out(exc):
            return TransportError(f"ssh {t.user}@{t.hostname}:{t.port}: authentication {overloaded}")
        return TransportError(f"ssh {t.user}@{t.hostname}:{t.port} refused authentication ({exc})")
    if isinstance(exc, TimeoutError):
        return TransportError(f"{where} did not answer within {timeout:g} s")
    if isinstance(exc, paramiko.SSHException):
        if "banner" in str(exc) or not got_banner:
            return TransportError(f"{where}: no SSH banner within {timeout:g} s "
                                  "(the port accepts TCP but sshd does not answer)")
        if "No existing session" in str(exc) or "Negotiation timed out" in str(exc):
            return TransportError(f"{where}: the key exchange {overloaded}")
        return _Broken(f"{where}: {exc}")
    if isinstance(exc, EOFError):                   # paramiko's, writing to a connection closed after the banner
        return _Broken(f"{where}: the node closed the connection during the key exchange")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reasons = sorted({os.strerror(e.errno).lower() for e in exc.errors.values() if e.errno})
        return TransportError(f"{where}: {', '.join(reasons) or exc}")
    if isinstance(exc, OSError):
        broken = _Broken if isinstance(exc, ConnectionResetError | ConnectionAbortedError) else TransportError
        return broken(f"{where}: {exc.strerror or exc}")
    # paramiko re-raises what its reader thread hit: an empty packet is an IndexError
    return _Broken(f"{where}: malformed SSH exchange ({type(exc).__name__}: {exc})")


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise TransportError(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in known_hosts: "
            "add it (ssh-keyscan, verified out of band) or set ssh.acceptUnknownHostKeys")


class _AcceptUnknown(paramiko.MissingHostKeyPolicy):
    """Opt-in only: accepts the key for this run and says so in the node's status."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    def missing_host_key(self, client, hostname, key):
        self.accepted.append(f"{hostname} {key.get_name()} {key.fingerprint}")


@register("ssh")
class SshTransport:
    """Runs the node script as ``sh -s`` (or ``sudo -n sh -s``) over one SSH session."""

    name = "ssh"

    def __init__(self, node: Node, inventory: Inventory) -> None:
        self.node = node
        self.settings = inventory.model.ssh
        self.target = resolve_target(node.name, inventory)
        self.known_hosts = _expand(self.settings.known_hosts, inventory)
        self.client: paramiko.SSHClient | None = None
        self.notes: list[str] = []

    def _connect(self) -> paramiko.SSHClient:
        """Connect and log in; a connection broken mid-exchange (a corrupt or malformed packet, closed after the
        banner, a reset: paramiko#941 sees such breaks under load) is made once more, noted. A refusal, a changed
        host key or a timeout is not retried."""
        try:
            return self._connect_once()
        except _Broken as exc:
            self.notes.append(f"connected a second time: the first connection broke ({exc})")
            return self._connect_once()

    def _connect_once(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        t = self.target
        try:
            add_known_keys(client, parsed_file(paramiko.HostKeys, self.known_hosts), t.hostname, t.port)
        except OSError as exc:
            if not self.settings.accept_unknown_host_keys:
                raise TransportError(f"known_hosts file {self.known_hosts} cannot be read ({exc.strerror or exc}): "
                                     "host keys cannot be verified") from None
        except paramiko.hostkeys.InvalidHostKey as exc:
            raise TransportError(f"known_hosts file {self.known_hosts} has an unreadable key line ({exc.line[:80]!r}): "
                                 "fix or remove it") from None
        policy = _AcceptUnknown() if self.settings.accept_unknown_host_keys else _RefuseUnknown()
        client.set_missing_host_key_policy(policy)
        timeout = self.settings.connect_timeout
        keys = [_identity(Path(path)) for path in t.identity_files]
        try:
            _login(client, t, keys, timeout)
        except Exception as exc:
            transport = client.get_transport()
            got_banner = transport is not None and bool(transport.remote_version)
            client.close()
            raise _login_error(exc, t, timeout, got_banner) from None
        if isinstance(policy, _AcceptUnknown) and policy.accepted:
            self.notes.append("host key accepted without verification: " + "; ".join(policy.accepted))
        return client

    def run(self, script: str, timeout: float) -> CommandResult:
        """Run ``script`` with ``sh -s`` on the node; TransportError if the node does not finish in time."""
        deadline = time.monotonic() + timeout
        client = self.client = self.client or self._connect()
        command = "sudo -n sh -s" if self.settings.sudo else "sh -s"
        transport = client.get_transport()
        if transport is None:   # closed meanwhile by an interrupt
            raise TransportError(f"ssh session to {self.target.hostname} closed before the node script ran")
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(command)
            try:
                chan.sendall(script.encode())
                chan.shutdown_write()
            except OSError:  # the command ended before reading all of its script (sudo -n refusing): its exit
                pass         # status and stderr, read below, say why; a lost connection is told apart there too
            out, err = bytearray(), bytearray()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    chan.close()
                    raise TransportError(f"node script did not finish within {timeout:g} s (command timeout)")
                finished = chan.status_event.wait(min(remaining, DRAIN_S))  # set by the exit status or a close
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if not finished or chan.recv_ready() or chan.recv_stderr_ready():
                    continue
                if chan.eof_received or chan.closed:
                    break
                time.sleep(min(remaining, DRAIN_S))  # sshd may send the exit status before the last output and EOF
            status = chan.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__    # EOFError: the transport's, the connection closed
            raise TransportError(f"ssh session to {self.target.hostname} failed: {reason}") from None
        if status == -1 and not chan.eof_received:  # closed with neither exit status nor EOF: the connection went
            raise TransportError(f"ssh connection to {self.target.hostname} lost before the node script finished: "
                                 "the node rebooted or sshd died — check its uptime and journal, then run again")
        stderr = err.decode(errors="replace")
        if self.settings.sudo and status == 1 and not out and stderr.startswith("sudo:"):
            raise TransportError(f"sudo -n on {self.target.hostname} refused to run the node script "
                                 f"({stderr.strip().splitlines()[0]}): give {self.target.user} passwordless sudo "
                                 "(NOPASSWD), or set ssh.sudo false and log in as root")
        return CommandResult(status, out.decode(errors="replace"), stderr)

    def close(self) -> None:
        """Close the connection now: shutdown() first, as paramiko's reader thread would otherwise keep the
        socket open (and the node's session alive) until its next read times out."""
        client, self.client = self.client, None   # an interrupt may close it from another thread
        if client is not None:
            transport = client.get_transport()
            with contextlib.suppress(OSError, AttributeError):
                transport.sock.shutdown(socket.SHUT_RDWR)
            client.close()
