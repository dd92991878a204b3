"""Why the SR-IOV config daemon waits for a reboot, as far as the evidence shows.

The daemon asks for one (Node ``sriovnetwork.openshift.io/state`` Reboot_Required) when its mellanox plugin
wrote firmware (NUM_OF_VFS, SRIOV_EN, LINK_TYPE) that only a power cycle applies, and when its generic plugin
wants kernel arguments the running kernel lacks or has (sriov-network-operator ``pkg/plugins/generic``:
the RDMA netns mode of a SriovNetworkPoolConfig is ``ib_core.netns_mode=0`` exclusive, ``=1`` shared, neither
when unset), among others. Blame the first the evidence proves; say which log to read otherwise. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

RDMA_ARGS = {"exclusive": "ib_core.netns_mode=0", "shared": "ib_core.netns_mode=1"}
UNKNOWN = "the evidence does not show why"


@dataclass(frozen=True)
class FirmwarePending:
    """HCAs whose firmware Current differs from Next Boot (``params``: iface -> the parameters pending)."""

    params: dict[str, list[str]]
    total: int


def kernel_args_wanted(rdma_mode: str | None) -> tuple[list[str], list[str]]:
    """(arguments the daemon wants on the command line, arguments it wants gone) for the RDMA mode."""
    wanted = RDMA_ARGS.get(rdma_mode or "")
    return ([wanted] if wanted else []), [arg for arg in RDMA_ARGS.values() if arg != wanted]


def kernel_args_missing(cmdline: str, rdma_mode: str | None) -> tuple[list[str], list[str]]:
    """(wanted arguments /proc/cmdline lacks, unwanted arguments it has)."""
    args = cmdline.split()
    add, remove = kernel_args_wanted(rdma_mode)
    return [a for a in add if a not in args], [a for a in remove if a in args]


def cause(firmware: FirmwarePending | None, mellanox_managed: bool, cmdline: str | None, rdma_mode: str | None,
          log_hint: str) -> str:
    """The next step for a node whose daemon waits for a reboot, first proven cause first.

    ``firmware``: None when the node's firmware could not be read; ``cmdline``: None when not collected;
    ``log_hint``: how to read the daemon's log on that node.
    """
    if firmware is not None and firmware.params and mellanox_managed:
        shown = ", ".join(f"{iface} {'/'.join(p)}" for iface, p in list(firmware.params.items())[:3])
        more = f" and {len(firmware.params) - 3} more" if len(firmware.params) > 3 else ""
        return (f"firmware change pending on {len(firmware.params)}/{firmware.total} HCAs ({shown}{more}): "
                "power-cycle the node (cold reboot); a warm reboot does not apply NVRAM changes")
    if cmdline is not None:
        add, remove = kernel_args_missing(cmdline, rdma_mode)
        if add or remove:
            change = "; ".join(part for part in (f"add {' '.join(add)}" if add else "",
                                                 f"remove {' '.join(remove)}" if remove else "") if part)
            mode = f"RDMA netns mode {rdma_mode}" if rdma_mode else "no RDMA netns mode"
            return (f"reboot the node to apply kernel arguments ({change}: the operator asks {mode}, "
                    "/proc/cmdline differs); the config daemon writes them to the boot loader first")
    unknown = "firmware not read" if firmware is None else "no firmware change pending"
    unknown += ", kernel arguments not collected" if cmdline is None else ", kernel arguments as asked"
    return f"{UNKNOWN} ({unknown}): read the config daemon's log: {log_hint}"
