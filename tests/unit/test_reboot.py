"""Why the config daemon waits for a reboot: pending firmware, then kernel arguments, else its log."""

import pytest

from ibconform.reboot import FirmwarePending, cause, kernel_args_missing

CMDLINE = "BOOT_IMAGE=/boot/vmlinuz-5.15.0-1063-nvidia root=UUID=9b0e ro intel_iommu=on iommu=pt quiet"
LOG = "kubectl logs -n network-operator sriov-network-config-daemon-x7k2p | grep -i reboot"


@pytest.mark.parametrize(("cmdline", "mode", "missing"), [
    (CMDLINE, None, ([], [])),
    (CMDLINE, "exclusive", (["ib_core.netns_mode=0"], [])),
    (CMDLINE + " ib_core.netns_mode=0", "exclusive", ([], [])),
    (CMDLINE + " ib_core.netns_mode=0", "shared", (["ib_core.netns_mode=1"], ["ib_core.netns_mode=0"])),
    (CMDLINE + " ib_core.netns_mode=1", None, ([], ["ib_core.netns_mode=1"])),
    (CMDLINE + " ib_core.netns_mode=00", "exclusive", (["ib_core.netns_mode=0"], [])),   # whole tokens only
])
def test_kernel_arguments_follow_the_rdma_mode(cmdline, mode, missing):
    assert kernel_args_missing(cmdline, mode) == missing


def test_pending_firmware_comes_first_when_the_operator_manages_it():
    firmware = FirmwarePending({f"ibp{i}s0": ["NUM_OF_VFS"] for i in range(8)}, 8)
    text = cause(firmware, True, CMDLINE, "exclusive", LOG)
    assert text.startswith("firmware change pending on 8/8 HCAs (ibp0s0 NUM_OF_VFS, ibp1s0 NUM_OF_VFS, ibp2s0 "
                           "NUM_OF_VFS and 5 more): power-cycle the node")


def test_kernel_arguments_when_the_firmware_is_settled_or_not_the_operators():
    settled = FirmwarePending({}, 8)
    assert cause(settled, True, CMDLINE, "exclusive", LOG).startswith(
        "reboot the node to apply kernel arguments (add ib_core.netns_mode=0: the operator asks RDMA netns mode "
        "exclusive, /proc/cmdline differs)")
    pending = FirmwarePending({"ibp24s0": ["NUM_OF_VFS"]}, 8)
    assert cause(pending, False, CMDLINE, "exclusive", LOG).startswith("reboot the node to apply kernel arguments")


def test_otherwise_the_daemons_log_by_name():
    assert cause(FirmwarePending({}, 8), True, CMDLINE, None, LOG) == (
        f"the evidence does not show why (no firmware change pending, kernel arguments as asked): read the config "
        f"daemon's log: {LOG}")
    assert cause(None, True, None, "exclusive", LOG).startswith(
        "the evidence does not show why (firmware not read, kernel arguments not collected)")
