"""The twin's machines: each emulated node's hardware, what it serves, and the processes that serve it.

- ``hardware``: each node's devices and their state (the hardware half of a scenario's truth);
- ``render``: that state as text: sysfs files, ``mstconfig`` and ``ibstat`` output, SSH and inventory files;
- ``nodes``: each node as an ``sshd`` in its own namespaces, with its files on disk; ``bin/``: the
  ``mstconfig``, ``ibstat`` and ``sudo`` scripts a node serves from ``/usr/local/bin``;
- ``cpu``: the low-weight CPU group the node processes run in; ``keys``: their SSH key pairs.
"""
