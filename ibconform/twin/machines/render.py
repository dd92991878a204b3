"""Text the twin serves, rendered from hardware state: mstconfig output, sysfs files, SSH and inventory files.

Pure functions: state in, text out; writing it to disk is ``nodes.py``'s job. The mstconfig text is
the current mstflint format (20-column labels and values with trailing spaces, ``Default  Current
Next Boot`` with ``-e``, ``*`` in column 0 and the legend line), as docs/formats.md#mstconfig-query describes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

from ClusterShell.NodeSet import NodeSet

from ibconform.twin.machines.hardware import FirmwareParam, Hca, Node, Vf
from ibconform.twin.machines.hardware import vf_address as vf_address  # where it always was

# ---------------------------------------------------------------------------------------------- mstconfig

LEGEND = "The '*' shows parameters with next value different from default/current value."
_LINK_TYPES = {"IB": "IB(1)", "ETH": "ETH(2)"}
#: Parameters a query without names prints besides the suite's, unchanged from their defaults (the models have
#: at most two ports).
_FIXED = {"MEMIC_BAR_SIZE": "0", "MEMIC_SIZE_LIMIT": "_256KB(1)", "PF_NUM_OF_VF_VALID": "False(0)",
          "SRIOV_IB_ROUTING_MODE_P1": "LID(1)", "SRIOV_IB_ROUTING_MODE_P2": "LID(1)"}


def query_params(port: int) -> tuple[str, ...]:
    """What the suite asks about a PF: ``mstconfig -d <pci> -e q NUM_OF_VFS SRIOV_EN LINK_TYPE_P<port>``."""
    return ("NUM_OF_VFS", "SRIOV_EN", f"LINK_TYPE_P{port}")


def full_query(ports: int) -> tuple[str, ...]:
    """The parameters a query without names prints on a card with ``ports`` ports, in order (an approximation
    of a ConnectX-7's long table: per-port parameters of port 1, then of port 2)."""
    return ("MEMIC_BAR_SIZE", "MEMIC_SIZE_LIMIT", "PF_NUM_OF_VF_VALID", "NUM_OF_VFS", "SRIOV_EN",
            *(f"SRIOV_IB_ROUTING_MODE_P{p}" for p in range(1, ports + 1)),
            *(f"LINK_TYPE_P{p}" for p in range(1, ports + 1)))


def _value(name: str, value: int | bool | str) -> str:
    if name == "SRIOV_EN":
        return "True(1)" if value else "False(0)"
    if name.startswith("LINK_TYPE_P"):
        return _LINK_TYPES[str(value)]
    return str(value)


def mstconfig_values(hca: Hca, link_types: dict[int, FirmwareParam]) -> dict[str, tuple[str, str, str]]:
    """Each parameter's (Default, Current, Next Boot) as mstconfig prints them, in full-query order.

    ``link_types``: the card's ``LINK_TYPE_P<n>`` by port (``Node.link_types``). NUM_OF_VFS and SRIOV_EN are the
    PF's own here (on a real multi-port card they are the card's, shared by its PFs: the twin keeps them apart).
    """
    params: dict[str, FirmwareParam] = {"NUM_OF_VFS": hca.num_of_vfs, "SRIOV_EN": hca.sriov_en}
    params.update({f"LINK_TYPE_P{port}": p for port, p in link_types.items()})
    out = {}
    for name in full_query(len(link_types)):
        if name in params:
            p = params[name]
            out[name] = (_value(name, p.default), _value(name, p.current), _value(name, p.next_boot))
        else:
            out[name] = (_FIXED[name],) * 3
    return out


def _line(label: str, value: str) -> str:
    return f"{label:<20}{value:<20}"


def mstconfig_head(hca: Hca) -> str:
    """The lines before ``Device:``."""
    t = hca.type
    return "\n".join(["", "Device #1:", "----------", "", _line("Device type:", t.name),
                      _line("Name:", t.part_number), _line("Description:", t.description), ""])


def mstconfig_device_header(hca: Hca, device_arg: str) -> str:
    """The lines before ``Configurations:`` (``device_arg`` is echoed as ``-d`` gave it)."""
    return mstconfig_head(hca) + _line("Device:", device_arg) + "\n\n"


def mstconfig_table_header(verbose: bool) -> str:
    if verbose:
        return f"{'Configurations:':<57}{'Default':<20}{'Current':<16}Next Boot\n"
    return f"{'Configurations:':<57}Next Boot\n"


def mstconfig_row(name: str, values: tuple[str, str, str], verbose: bool) -> str:
    """One table row; with ``-e`` a ``*`` in column 0 when Next Boot differs from Default or Current."""
    default, current, next_boot = values
    if verbose:
        star = "*" if next_boot != default or next_boot != current else " "
        shown: Iterable[str] = values
    else:
        star, shown = " ", (next_boot,)
    return f"{star}{'':7}{name:<44}" + " ".join(f"{v:<20}" for v in shown) + "\n"


def unsupported_param(name: str) -> str:
    return f"-E- The Device doesn't support {name} parameter\n"


def mstconfig_query(hca: Hca | None, link_types: dict[int, FirmwareParam], *, device_arg: str,
                    params: Iterable[str] | None = None, verbose: bool = True) -> tuple[str, int]:
    """What ``mstconfig -d <device_arg> [-e] q [params]`` prints on this device, and its exit code.

    ``hca`` None is a device the node does not have; ``link_types`` as for :func:`mstconfig_values`.
    """
    if hca is None:
        return "-E- Failed to open the device\n", 3
    if hca.mst_error is not None:
        return hca.mst_error + "\n", 3
    values = mstconfig_values(hca, link_types)
    names = list(params) if params else list(values)
    out = mstconfig_device_header(hca, device_arg)
    rows = []
    for name in names:
        if name not in values:
            return out + unsupported_param(name), 3
        rows.append(mstconfig_row(name, values[name], verbose))
    out += mstconfig_table_header(verbose) + "".join(rows)
    if any(r.startswith("*") for r in rows):
        out += LEGEND + "\n"
    return out, 0


# ---------------------------------------------------------------------------------------------- sysfs

#: The attributes of a PF's PCI function folder (``/sys/bus/pci/devices/<pci>/``) the twin serves.
PF_ATTRIBUTES = ("vendor", "device", "class", "numa_node", "sriov_numvfs", "sriov_totalvfs", "sriov_offset",
                 "sriov_stride", "sriov_vf_device", "sriov_drivers_autoprobe")
_PORT_STATES = {"DOWN": "1: DOWN", "INIT": "2: INIT", "ARMED": "3: ARMED", "ACTIVE": "4: ACTIVE"}


def guid(pci: str) -> str:
    """A stable made-up port GUID for a device (NVIDIA OUI a088c2), ``xxxx:xxxx:xxxx:xxxx``."""
    tail = hashlib.sha256(pci.encode()).hexdigest()[:10]
    raw = "a088c2" + tail
    return ":".join(raw[i:i + 4] for i in range(0, 16, 4))


def netdev_address(hca: Hca) -> str:
    """The PF netdev's hardware address: 20 bytes (QPN, GID prefix, port GUID) on IB, a MAC on Ethernet."""
    octets = [guid(hca.pci).replace(":", "")[i:i + 2] for i in range(0, 16, 2)]
    if hca.link_type.current == "IB":
        return "00:00:10:29:fe:80:00:00:00:00:00:00:" + ":".join(octets)
    return ":".join(octets[i] for i in (0, 1, 2, 5, 6, 7))


def sysfs_tree(node: Node) -> tuple[dict[str, str], dict[str, str]]:
    """The node's sysfs as (files, symlinks), paths relative to ``/sys``.

    PCI functions live in ``bus/pci/devices/<pci>``; ``class/net/<iface>`` and
    ``class/infiniband/<mlx5_N>`` link into them, and each ``device`` link is ``../../../<pci>`` as on
    real hardware, so ``readlink /sys/class/net/<iface>/device`` ends in the PCI address.
    """
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    for hca in node.devices.values():
        pf = f"bus/pci/devices/{hca.pci}"
        ib = hca.link_type.current == "IB"
        bus = int(hca.pci.split(":")[1], 16)
        attributes = {
            "vendor": "0x15b3\n",
            "device": f"{hca.type.pci_device}\n",
            "class": "0x020700\n" if ib else "0x020000\n",
            "numa_node": f"{0 if bus < 0x80 else 1}\n",
            "sriov_numvfs": f"{hca.sriov_numvfs}\n",
            "sriov_totalvfs": f"{hca.sriov_totalvfs}\n",
            "sriov_offset": "1\n",
            "sriov_stride": "1\n",
            "sriov_vf_device": "101e\n",
            "sriov_drivers_autoprobe": "1\n",
        }
        files.update({f"{pf}/{name}": text for name, text in attributes.items() if name not in hca.sysfs_missing})
        port_guid = guid(hca.pci)
        up = hca.port_state == "ACTIVE"
        net = f"{pf}/net/{hca.iface}"
        links[f"class/net/{hca.iface}"] = f"../../{net}"
        links[f"{net}/device"] = f"../../../{hca.pci}"
        files.update({
            f"{net}/type": "32\n" if ib else "1\n",
            f"{net}/operstate": "up\n" if up else "down\n",
            f"{net}/carrier": "1\n" if up else "0\n",
            f"{net}/mtu": "4092\n" if ib else "1500\n",
            f"{net}/address": f"{netdev_address(hca)}\n",
        })
        rdma = f"{pf}/infiniband/{hca.rdma}"
        links[f"class/infiniband/{hca.rdma}"] = f"../../{rdma}"
        links[f"{rdma}/device"] = f"../../../{hca.pci}"
        files.update({
            f"{rdma}/fw_ver": f"{hca.fw_ver}\n",
            f"{rdma}/hca_type": f"{hca.type.hca_type}\n",
            f"{rdma}/board_id": f"{hca.type.board_id}\n",
            f"{rdma}/node_type": "1: CA\n",
            f"{rdma}/node_guid": f"{port_guid}\n",
            f"{rdma}/sys_image_guid": f"{port_guid}\n",
            f"{rdma}/ports/1/state": f"{_PORT_STATES[hca.port_state]}\n",
            f"{rdma}/ports/1/phys_state": f"{hca.phys_state}\n",
            f"{rdma}/ports/1/rate": f"{hca.rate}\n",
            f"{rdma}/ports/1/link_layer": "InfiniBand\n" if ib else "Ethernet\n",
        })
        for vf in node.vfs(hca.iface):
            vf_files, vf_links = vf_tree(hca, vf)
            files.update(vf_files)
            links.update(vf_links)
    return files, links


#: Where a device's driver link points from its folder: /sys/devices/pci<root>/<port>/<device>/driver.
DRIVER_LINK = "../../../../bus/pci/drivers/mlx5_core"
VF_HCA_TYPE = "MT4126"      # a ConnectX-6 Dx/7 VF's device id (0x101e) as ibv_devinfo and sysfs print it
UVERBS_MINOR, UMAD_MINOR = 192, 0   # /dev/infiniband/uverbsN is char 231:192+N, umadN 231:N


def vf_tree(hca: Hca, vf: Vf) -> tuple[dict[str, str], dict[str, str]]:
    """One VF's sysfs (files, links) as real sysfs shows it, but for its GUIDs (per node: :func:`guid_files`):
    the PF's ``virtfn<N>`` and ``sriov/<N>/policy``, the VF's ``physfn`` and ids, and when its driver is bound the
    ``driver`` link, its RDMA device (ports, ids) and its ``uverbs``/``umad`` class devices."""
    pf, base = f"bus/pci/devices/{hca.pci}", f"bus/pci/devices/{vf.pci}"
    files = {f"{base}/vendor": "0x15b3\n", f"{base}/device": "0x101e\n", f"{pf}/sriov/{vf.index}/policy": "Follow\n"}
    links = {f"{pf}/virtfn{vf.index}": f"../{vf.pci}", f"{base}/physfn": f"../{hca.pci}"}
    if not vf.bound:
        return files, links
    ib = hca.link_type.current == "IB"
    rdma = f"{base}/infiniband/{vf.rdma}"
    verbs, mad = f"{base}/infiniband_verbs/uverbs{vf.uverbs}", f"{base}/infiniband_mad/umad{vf.uverbs}"
    links.update({f"{base}/driver": DRIVER_LINK, f"class/infiniband/{vf.rdma}": f"../../{rdma}",
                  f"{rdma}/device": f"../../../{vf.pci}", f"class/infiniband_verbs/uverbs{vf.uverbs}": f"../../{verbs}",
                  f"class/infiniband_mad/umad{vf.uverbs}": f"../../{mad}"})
    files.update({
        f"{rdma}/fw_ver": f"{hca.fw_ver}\n",
        f"{rdma}/hca_type": f"{VF_HCA_TYPE}\n",
        f"{rdma}/board_id": f"{hca.type.board_id}\n",
        f"{rdma}/node_type": "1: CA\n",
        f"{rdma}/sys_image_guid": f"{guid(hca.pci)}\n",
        f"{rdma}/ports/1/state": f"{_PORT_STATES[vf.port_state]}\n",
        f"{rdma}/ports/1/phys_state": f"{hca.phys_state}\n",
        f"{rdma}/ports/1/rate": f"{hca.rate}\n",
        f"{rdma}/ports/1/link_layer": "InfiniBand\n" if ib else "Ethernet\n",
        f"{verbs}/ibdev": f"{vf.rdma}\n",
        f"{verbs}/abi_version": "1\n",
        f"{verbs}/dev": f"231:{UVERBS_MINOR + vf.uverbs}\n",
        f"{mad}/ibdev": f"{vf.rdma}\n",
        f"{mad}/port": "1\n",
        f"{mad}/dev": f"231:{UMAD_MINOR + vf.uverbs}\n",
    })
    return files, links


def sysfs_guid(canonical: str) -> str:
    """A GUID as sysfs ``node_guid`` prints it (``%04x:%04x:%04x:%04x``) from its 8-byte form."""
    raw = canonical.replace(":", "")
    return ":".join(raw[i:i + 4] for i in range(0, 16, 4))


def guid_files(node: Node) -> dict[str, str]:
    """The node's own VF GUID files, paths relative to /sys/bus/pci/devices: each bound VF's RDMA ``node_guid``
    and mlx5's ``sriov/<N>/node`` and ``port`` of its PF (MLNX_OFED's ``sriov_sysfs.c``: 8 bytes, ``%02x:``)."""
    files = {}
    for hca in node.devices.values():
        for vf in node.vfs(hca.iface):
            files[f"{hca.pci}/sriov/{vf.index}/node"] = files[f"{hca.pci}/sriov/{vf.index}/port"] = f"{vf.guid}\n"
            if vf.bound:
                files[f"{vf.pci}/infiniband/{vf.rdma}/node_guid"] = f"{sysfs_guid(vf.guid)}\n"
    return files


# ---------------------------------------------------------------------------------------------- ip link

#: What follows a VF line's GUIDs (iproute2 ``print_vfinfo``: link state, trust, RSS query).
VF_LINE_TAIL = ", link-state auto, trust off, query_rss off"
IB_BROADCAST = "00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff"


def ip_link_head(node: Node, hca: Hca) -> str:
    """The first two lines of ``ip link show <pf>`` (iproute2): index, name, flags, MTU and state, then the
    link-layer address and broadcast."""
    index = 2 + sorted(d.pci for d in node.devices.values()).index(hca.pci)
    up = hca.port_state == "ACTIVE"
    flags = "BROADCAST,MULTICAST,UP,LOWER_UP" if up else "NO-CARRIER,BROADCAST,MULTICAST,UP"
    if hca.link_type.current == "IB":
        mtu, qlen, link = 4092, 256, f"link/infiniband {netdev_address(hca)} brd {IB_BROADCAST}"
    else:
        mtu, qlen, link = 1500, 1000, f"link/ether {netdev_address(hca)} brd ff:ff:ff:ff:ff:ff"
    return (f"{index}: {hca.iface}: <{flags}> mtu {mtu} qdisc mq state {'UP' if up else 'DOWN'} mode DEFAULT "
            f"group default qlen {qlen}\n    {link}\n")


def ip_link_vf_head(hca: Hca, index: int) -> str:
    """A VF line up to its GUIDs: on an IPoIB PF the PF's own address (IPoIB copies it), then spoof checking;
    an Ethernet PF's VF line carries no GUID."""
    if hca.link_type.current == "IB":
        return f"    vf {index}     link/infiniband {netdev_address(hca)} brd {IB_BROADCAST}, spoof checking off"
    return f"    vf {index}     link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff, spoof checking off"


def ip_link_show(node: Node, hca: Hca) -> str:
    """``ip link show <pf>`` as iproute2 5.5+ prints it on this node (the GUIDs are the VF's administrative ones,
    as ``sriov/<N>/node|port`` shows them)."""
    lines = [ip_link_head(node, hca)]
    for vf in node.vfs(hca.iface):
        guids = f", NODE_GUID {vf.guid}, PORT_GUID {vf.guid}" if hca.link_type.current == "IB" else ""
        lines.append(f"{ip_link_vf_head(hca, vf.index)}{guids}{VF_LINE_TAIL}\n")
    return "".join(lines)


# ---------------------------------------------------------------------------------------------- ibstat

_IBSTAT_STATES = {"DOWN": "Down", "INIT": "Initializing", "ARMED": "Armed", "ACTIVE": "Active"}


def ibstat_port(hca: Hca, indent: str = "\t\t") -> str:
    """The port lines of ``ibstat`` (rdma-core infiniband-diags): Rate is whole Gb/s only."""
    ib = hca.link_type.current == "IB"
    port_guid = "0x" + guid(hca.pci).replace(":", "")
    lid = int(guid(hca.pci)[-4:], 16) % 1000 + 1 if ib and hca.port_state == "ACTIVE" else 0
    rows = [("State", _IBSTAT_STATES[hca.port_state]), ("Physical state", hca.phys_state.split(": ", 1)[1]),
            ("Rate", hca.rate.split()[0]), ("Base lid", str(lid)), ("LMC", "0"),
            ("SM lid", "1" if lid else "0"), ("Capability mask", "0xa751e848" if ib else "0x00010000"),
            ("Port GUID", port_guid), ("Link layer", "InfiniBand" if ib else "Ethernet")]
    return "".join(f"{indent}{k}: {v}\n" for k, v in rows)


def ibstat_ca(hca: Hca) -> str:
    """One CA's block of ``ibstat``, TAB-indented as the real tool prints it."""
    node_guid = "0x" + guid(hca.pci).replace(":", "")
    return (f"CA '{hca.rdma}'\n\tCA type: {hca.type.hca_type}\n\tNumber of ports: 1\n"
            f"\tFirmware version: {hca.fw_ver}\n\tHardware version: {0 if hca.type.name == 'ConnectX7' else 1}\n"
            f"\tNode GUID: {node_guid}\n\tSystem image GUID: {node_guid}\n\tPort 1:\n" + ibstat_port(hca))


def ibstat_order(node: Node) -> list[str]:
    """CA names in the order ibstat lists them (sorted as strings: mlx5_0, mlx5_1, mlx5_10, ...)."""
    return sorted(h.rdma for h in node.devices.values())


# ---------------------------------------------------------------------------------------------- the host

#: The kernel a DGX node runs (DGX OS 6, Ubuntu 22.04): its Node's nodeInfo.kernelVersion too.
KERNEL_RELEASE = "5.15.0-1063-nvidia"
#: What DGX OS boots with after the root filesystem: its packages' defaults (serial console, no heap zeroing, PCI
#: resource reallocation, the IOMMU in pass-through mode as SR-IOV wants it, nouveau kept away).
BOOT_ARGS = ("ro", "console=tty0", "console=ttyS0,115200n8", "init_on_alloc=0", "pci=realloc", "intel_iommu=on",
             "iommu=pt", "rd.driver.blacklist=nouveau", "nouveau.modeset=0")
LOCKDOWN_MODES = ("none", "integrity", "confidentiality")


def stable_uuid(seed: str) -> str:
    """A made-up UUID that is always the same for ``seed``."""
    return str(uuid.UUID(hashlib.sha256(seed.encode()).hexdigest()[:32]))


def machine_id(host: str) -> str:
    """The host's ``/etc/machine-id`` (32 lowercase hex digits), which kubelet reports as its Node's
    ``status.nodeInfo.machineID``."""
    return hashlib.sha256(host.encode()).hexdigest()[:32]


def kernel_cmdline(host: str, args: Iterable[str]) -> str:
    """``/proc/cmdline`` of a DGX node booted by GRUB: the image, the root filesystem, DGX OS's arguments, then
    ``args``."""
    return " ".join([f"BOOT_IMAGE=/boot/vmlinuz-{KERNEL_RELEASE}", f"root=UUID={stable_uuid(host + '/root')}",
                     *BOOT_ARGS, *args]) + "\n"


def lockdown(mode: str) -> str:
    """``/sys/kernel/security/lockdown``: every mode, the active one in brackets (``[none] integrity
    confidentiality``)."""
    return " ".join(f"[{m}]" if m == mode else m for m in LOCKDOWN_MODES) + "\n"


def netns_mode(mode: str) -> str:
    """``/sys/module/ib_core/parameters/netns_mode``, a bool module parameter: ``Y`` shared, ``N`` exclusive."""
    return "Y\n" if mode == "shared" else "N\n"


# ---------------------------------------------------------------------------------------------- SSH files

def _arg(path: str) -> str:
    """A path as an ssh(d)_config argument: double-quoted when it holds a space."""
    return f'"{path}"' if any(c.isspace() for c in path) else path


def sshd_config(address: str, host_key: str, authorized_keys: str) -> str:
    """One node's sshd_config: key-only root login on its own address, no PAM; its log (LogLevel VERBOSE) has a
    line for each connection, login and session, so a test can count them."""
    return "\n".join([
        f"ListenAddress {address}:22",
        f"HostKey {_arg(host_key)}",
        f"AuthorizedKeysFile {_arg(authorized_keys)}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "LogLevel VERBOSE",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxStartups 200:30:400",
        "MaxSessions 100",
        "Subsystem sftp internal-sftp",
        "",
    ])


def ssh_config(addresses: dict[str, str], identity: str, known_hosts: str) -> str:
    """An ssh_config naming every node by its Node name (Host dgx030 -> HostName 127.x.y.z; a Node named by its
    address: Host 127.x.y.z -> HostName 127.x.y.z), as on a real cluster."""
    blocks = []
    for name, address in addresses.items():
        blocks.append("\n".join([
            f"Host {name}",
            f"  HostName {address}",
            "  Port 22",
            "  User root",
            f"  IdentityFile {_arg(identity)}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {_arg(known_hosts)}",
            "  StrictHostKeyChecking yes",
            "",
        ]))
    return "\n".join(blocks)


def known_hosts(host_keys: dict[str, tuple[str, str]]) -> str:
    """One line per node, valid for its name and its address: ``dgx030,127.x.y.z ssh-ed25519 AAAA...`` (a node
    named by its address: ``127.x.y.z ssh-ed25519 AAAA...``)."""
    return "".join(f"{','.join(dict.fromkeys((name, address)))} {public_key}\n"
                   for name, (address, public_key) in host_keys.items())


# ---------------------------------------------------------------------------------------------- inventory

def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


#: The probe settings of the twin's inventory: quick, and tolerating the maintenance operator's taint.
PROBE = {"namespace": "default", "timeout": 30,
         "tolerations": [{"key": "maintenance.nvidia.com/in-progress", "operator": "Exists", "effect": "NoSchedule"}]}


def inventory(cluster: str, nodes: Iterable[Node], names: dict[str, str], expect: dict[str, Any],
              ssh: dict[str, Any], profiles: dict[str, Any], extra: dict[str, Any] | None = None,
              kubeconfig: str | None = None) -> dict[str, Any]:
    """The ``ibconform/v1`` inventory of the twin: every node (reachable or not) by profile and by the name of its
    Kubernetes Node (``names``: host name -> Node name), the cluster reached through ``kubeconfig``.

    ``extra`` (a scenario's ``inventory:``) is merged in last, key by key.
    """
    nodes = list(nodes)
    used = list(dict.fromkeys(n.profile for n in nodes))
    inv_profiles = {}
    for pname in used:
        slots = profiles[pname]
        inv_profiles[pname] = {
            "hcas": [{"iface": s.iface, "pci": s.pci, **({"port": s.port} if s.port is not None else {})}
                     for s in slots if s.excluded is None],
            "excluded": [{"pci": s.pci, "iface": s.iface, "reason": s.excluded}
                         for s in slots if s.excluded is not None],
        }
    groups = [{"names": str(NodeSet.fromlist([names[n.name] for n in nodes if n.profile == p])), "profile": p}
              for p in used]
    return _merge({
        "format": "ibconform/v1",
        "cluster": cluster,
        "kubernetes": {"context": None, **({"kubeconfig": kubeconfig} if kubeconfig else {}),
                       "namespace": "network-operator", "resourcePrefix": "nvidia.com"},
        "expect": dict(expect),
        "ssh": dict(ssh),
        "probe": {**PROBE, "tolerations": [dict(t) for t in PROBE["tolerations"]]},
        "profiles": inv_profiles,
        "nodes": groups,
    }, extra or {})
