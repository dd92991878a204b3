"""The indexed ssh_config lookup gives paramiko's own result for every host."""

import paramiko
import pytest

from ibconform.transports.sshconfig import IndexedConfig

PER_NODE = "".join(f"Host dgx{i:03d}\n  HostName 10.0.0.{i}\n  Port {2200 + i}\n\n" for i in range(1, 6))

CONFIGS = {
    "one stanza per node": PER_NODE,
    "global options first and last": "User ops\nIdentityFile ~/.ssh/a\n\n" + PER_NODE
    + "Host *\n  User fallback\n  IdentityFile ~/.ssh/b\n  Port 22\n",
    "wildcards and negation": PER_NODE + "Host dgx00? !dgx002\n  User admin\n\nHost dgx[12]*\n  User bracket\n"
    "Host *\n  StrictHostKeyChecking yes\n",
    "several names and repeats": "Host dgx001 dgx003 dgx001\n  User pair\n  IdentityFile one\n\n"
    "Host dgx003\n  User later\n  IdentityFile two\n\nHost dgx001,dgx004\n  User comma\n",
    "match blocks": PER_NODE + "Match host dgx003\n  User matched\n\nMatch originalhost dgx004 user root\n"
    "  Port 2022\n\nMatch all\n  ConnectTimeout 7\n",
    "match localuser": "Match localuser nobody-here\n  User never\n\nHost dgx002\n  User two\n",
    "hostname tokens": "Host dgx001\n  HostName %h.mgmt\n  IdentityFile ~/.ssh/%h\n",
    "canonicalization": "CanonicalizeHostname yes\nCanonicalDomains localhost\n\nHost dgx001\n  User short\n\n"
    "Host dgx001.localhost\n  User canonical\n",
}
HOSTS = ["dgx001", "dgx002", "dgx003", "dgx004", "dgx005", "dgx1", "other", "10.0.0.1"]


@pytest.mark.parametrize("text", CONFIGS.values(), ids=CONFIGS.keys())
def test_lookup_is_paramikos(text):
    plain = paramiko.SSHConfig.from_text(text)
    indexed = IndexedConfig(paramiko.SSHConfig.from_text(text))
    for host in HOSTS:
        assert indexed.lookup(host) == plain.lookup(host), host


def test_a_lookup_reads_only_the_stanzas_that_can_apply(monkeypatch):
    """With a stanza per node, a lookup tests the node's own and the general ones, not the fleet's."""
    fleet = "".join(f"Host n{i}\n  Port {i}\n" for i in range(1000)) + "Host *\n  User ops\n"
    indexed = IndexedConfig(paramiko.SSHConfig.from_text(fleet))
    tested = []
    real = paramiko.SSHConfig._pattern_matches
    monkeypatch.setattr(paramiko.SSHConfig, "_pattern_matches", lambda self, p, t: tested.append(p) or real(self, p, t))
    assert indexed.lookup("n500") == {"hostname": "n500", "port": "500", "user": "ops"}
    assert 0 < len(tested) <= 6  # two passes (paramiko's lookup and its final one) over 3 stanzas, not 1,002
