"""ssh_config lookups that read only the stanzas that can apply to a host.

paramiko's ``SSHConfig.lookup`` tests every stanza against the host, and looks the local user up again
for each one that is not a plain ``Host`` match: with a stanza per node, as fleet configs are often
generated, a run's lookups are quadratic in the nodes (1.6 s of CPU for 256 nodes, hours at 10,000).
Here ``Host`` stanzas that name hosts literally are indexed by name; wildcard, negated and ``Match``
stanzas take part in every lookup, in file order, so each result is paramiko's own.
"""

from __future__ import annotations

import paramiko

_PATTERN_CHARS = frozenset("*?[!,")


class IndexedConfig:
    """A parsed ssh_config whose ``lookup`` gives what ``paramiko.SSHConfig.lookup`` gives."""

    def __init__(self, config: paramiko.SSHConfig) -> None:
        self._config = config
        self._stanzas: list[dict] = config._config  # paramiko's parsed stanzas in file order (no public accessor)
        # a canonicalized name is looked up again under a name the index cannot know in advance
        self._indexed = not any("canonicalizehostname" in s.get("config", {}) for s in self._stanzas)
        self._general: list[int] = []
        self._by_host: dict[str, list[int]] = {}
        for i, stanza in enumerate(self._stanzas):
            hosts = stanza.get("host")
            if hosts and "matches" not in stanza and not any(_PATTERN_CHARS & set(h) for h in hosts):
                for host in dict.fromkeys(hosts):
                    self._by_host.setdefault(host, []).append(i)
            else:
                self._general.append(i)

    def lookup(self, host: str) -> paramiko.SSHConfigDict:
        if not self._indexed:
            return self._config.lookup(host)
        applicable = paramiko.SSHConfig()
        applicable._config = [self._stanzas[i] for i in sorted(self._general + self._by_host.get(host, []))]
        return applicable.lookup(host)
