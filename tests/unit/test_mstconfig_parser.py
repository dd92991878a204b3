"""Table-driven tests of ibconform.parsers.mstconfig: one row per captured sample, plus composed rows.

Captures live in tests/samples/ (line 1 is a '# source:' comment naming where each came from).
Rows marked "composed" are built here from the printf formats in mstflint's mlxcfg_ui.cpp because no
public capture of that variant exists (the rules are in docs/formats.md#mstconfig-query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibconform.errors import ParseError
from ibconform.parsers.mstconfig import MstconfigQuery, parse_query, value_number

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def sample(name: str) -> str:
    """The captured text of tests/samples/<name>.txt without its '# source:' line."""
    source, _, text = (SAMPLES / f"{name}.txt").read_text().partition("\n")
    assert source.startswith("# source:"), f"{name}.txt: line 1 should be its '# source:' comment"
    return text


def excerpt(name: str) -> str:
    """A sample with its excerpt marks ('[...]', '...') dropped: real output never prints them, and the
    parser rightly refuses them inside a table."""
    return "".join(line for line in sample(name).splitlines(keepends=True) if line.strip() not in ("[...]", "..."))


def daemon_log_output(name: str) -> str:
    """The mstconfig text inside the first sriov-network-config-daemon record of a JSON-escaped log capture.

    The parser does not read JSON-escaped logs; this undoes the escaping ('\\n') and the hard line break
    GitHub added inside the ALLOW_RD_COUNTERS row.
    """
    record = sample(name).split("\n[...]\n")[0].replace("\n", "")
    return record.split('{"output": "', 1)[1].replace("\\n", "\n")


def wrapped_errors(name: str) -> str:
    """The mstconfig output inside klog wrapper lines ('I0607 ... RunCommand(): -E- ...')."""
    return "".join(line[line.index("-E-"):] + "\n" for line in sample(name).splitlines() if "-E-" in line)


def cut_before_last_row(text: str) -> str:
    """Drop the last line: the issue #492 excerpt ends in a row cut after its name."""
    return "".join(text.splitlines(keepends=True)[:-1])


# -- composing output from mstflint's printf formats ---------------------------------------------------

# 16-wide format (mstflint <= 4.24): 'Configurations:' %-45s, values %-16s, row prefix '*' + 8 spaces, %-36s.
HEADER_16_E = f"{'Configurations:':<45}{'Default':<16}{'Current':<16}Next Boot"
# 20-wide format (4.26-4.35), byte for byte as in the issue #968 capture (the labels do not line up).
HEADER_20_E = f"{'Configurations:':<57}{'Default':<20}{'Current':<16}Next Boot"
HEADER_20 = f"{'Configurations:':<57}Next Boot"
# 33-wide format (4.36+ / 2026 master): %-56s then each label %-33s, one space between.
HEADER_33_E = f"{'Configurations:':<56}{'Default':<33} {'Current':<33} {'Next Boot':<33}"
STAR_LEGEND = "The '*' shows parameters with next value different from default/current value."
RO_LEGEND = "The 'RO' shows parameters which are for read only and cannot be changed"


def row16(name: str, *values: str, diff: str = " ") -> str:
    """A 16-wide row: a value that fills its column is followed by one space, so columns drift."""
    return f"{diff}        {name:<36}" + "".join(f"{value:<15} " for value in values).rstrip()


def row(name: str, *values: str, diff: str = " ", ro: str = "  ", name_width: int = 44, width: int = 20) -> str:
    """A row as printSingleParam prints it in 4.26+: diff, RO slot, 5 spaces, %-*s name, then each value
    %-*s with one space between (trailing spaces kept)."""
    return f"{diff}{ro}     {name:<{name_width}}" + " ".join(f"{value:<{width}}" for value in values)


def opening(device: str, device_type: str, name: str, description: str, index: int = 1) -> list[str]:
    """printOpening in 4.26+: label and value both %-20s, so short values carry trailing spaces."""
    return ["", f"Device #{index}:", "----------", "",
            *(f"{label:<20}{value:<20}" for label, value in
              (("Device type:", device_type), ("Name:", name), ("Description:", description), ("Device:", device))),
            ""]


def lines(*parts: str | list[str]) -> str:
    return "".join(f"{line}\n" for part in parts for line in ([part] if isinstance(part, str) else part))


CX7_DESCRIPTION = "NVIDIA ConnectX-7 Single Port Infiniband NDR OSFP Adapter"

# Composed: no public capture of a CX7 '-e' 3-column filtered query exists. This is what
# `mstconfig -e -d 0000:18:00.0 q NUM_OF_VFS SRIOV_EN LINK_TYPE_P1` prints on a 4.26-4.35 build after
# NUM_OF_VFS was set from 16 to 8 and the node was not power-cycled yet (Current 16, Next Boot 8).
CX7_E_FILTERED_PENDING = lines(
    opening("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION),
    HEADER_20_E,
    row("NUM_OF_VFS", "16", "16", "8", diff="*"),
    row("SRIOV_EN", "True(1)", "True(1)", "True(1)"),
    row("LINK_TYPE_P1", "IB(1)", "IB(1)", "IB(1)"),
    STAR_LEGEND,
)

# Composed: 4.36+ (33-wide values, name %-48s) with read-only rows; which params are RO depends on the
# firmware, the markers here are placed for the test. Device given by RDMA name, Name unreadable (N/A).
CX7_E_33WIDE_READ_ONLY = lines(
    opening("mlx5_4", "ConnectX7", "N/A", "N/A"),
    HEADER_33_E,
    row("NUM_OF_VFS", "8", "8", "8", name_width=48, width=33),
    row("CRYPTO_POLICY", "UNRESTRICTED(1)", "UNRESTRICTED(1)", "UNRESTRICTED(1)", ro="RO", name_width=48, width=33),
    row("DPA_AUTHENTICATION", "False(0)", "True(1)", "True(1)", diff="*", ro="RO", name_width=48, width=33),
    STAR_LEGEND,
    "",
    RO_LEGEND,
)

# Composed: '-e' on firmware that cannot read the default values (16-wide build): two columns and a note.
TWO_COLUMN_FALLBACK = lines(
    "", "Device #1:", "----------", "",
    "Device type:    ConnectX4LX",
    "Name:           MCX4121A-ACA_Ax",
    "Description:    ConnectX-4 Lx EN network interface card; 25GbE dual-port SFP28; PCIe3.0 x8; ROHS R6",
    "Device:         0000:3b:00.1",
    "",
    f"{'Configurations:':<45}{'Current':<16}Next Boot",
    row16("SRIOV_EN", "True(1)", "True(1)"),
    row16("NUM_OF_VFS", "8", "16", diff="*"),
    STAR_LEGEND,
    "Device Firmware does not support reading default configurations",
)

# Composed: '-e' on firmware that reads neither (e.g. ConnectX3): only Next Boot, and the note.
NEXT_BOOT_ONLY_FALLBACK = lines(
    "", "Device #1:", "----------", "",
    "Device type:    ConnectX3",
    "Device:         09:00.0",
    "",
    f"{'Configurations:':<45}Next Boot",
    row16("NUM_OF_VFS", "8"),
    "Device Firmware does not support reading default and current configurations",
)

# Composed: `mstconfig q` without -d walks every device: one 'Device #N:' block each.
TWO_DEVICES = lines(
    opening("/dev/mst/mt4129_pciconf0", "ConnectX7", "MCX755106AS-HEA_Ax", CX7_DESCRIPTION),
    HEADER_20, row("NUM_OF_VFS", "8"), row("SRIOV_EN", "True(1)"),
    opening("/dev/mst/mt4129_pciconf0.1", "ConnectX7", "MCX755106AS-HEA_Ax", CX7_DESCRIPTION, index=2),
    HEADER_20, row("NUM_OF_VFS", "16"), row("SRIOV_EN", "False(0)"),
)

# Composed: the header is printed before the query fails (queryDevCfg prints opening + header first).
ERROR_AFTER_HEADER = lines(
    opening("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION),
    HEADER_20_E,
    "-E- The Device doesn't support NUM_OF_VFS_X parameter",
)

# Composed: current mstflint prints '-E- Failed to open the device' twice (createCommander + queryDevsCfg).
ERROR_TWICE = lines("-E- Failed to open the device", "-E- Failed to open the device")

# Composed: checkFailedTLVsVector's message continues on indented lines after the table.
FAILED_TLVS = lines(
    opening("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION),
    HEADER_20_E,
    row("NUM_OF_VFS", "16", "16", "16"),
    "-E- Failed to query some of the TLVs:",
    "    Failed to query the current values of the following TLVs:",
    "    NV_SWITCH_CAP_PORT_CONF ",
    "",
)

# Composed: `q ESWITCH_HAIRPIN_DESCRIPTORS[0..2]` expands an array into indexed rows (16-wide build).
ARRAY_ROWS = lines(
    "", "Device #1:", "----------", "",
    "Device type:    ConnectX5",
    "Device:         0000:03:00.0",
    "",
    HEADER_16_E,
    *(row16(f"ESWITCH_HAIRPIN_DESCRIPTORS[{i}]", "128", "128", "128") for i in range(3)),
)


# -- expectations -----------------------------------------------------------------------------------------

def nb(next_boot: str, new: str | None = None) -> tuple:
    """(default, current, next_boot, new, modified, read_only) of a row printed without -e."""
    return (None, None, next_boot, new, False, False)


def e3(default: str, current: str, next_boot: str, *, modified: bool = False, read_only: bool = False) -> tuple:
    """(default, current, next_boot, new, modified, read_only) of a row printed with -e."""
    return (default, current, next_boot, None, modified, read_only)


E3 = ("Default", "Current", "Next Boot")
NEXT = ("Next Boot",)
SET = ("Next Boot", "New")


@dataclass(frozen=True)
class Dev:
    device: str | None = None
    device_type: str | None = None
    name: str | None = None
    description: str | None = None  # a prefix of the description
    columns: tuple[str, ...] = ()
    n_params: int = 0
    rows: dict[str, tuple] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def case(text: str, *devices: Dev, errors: tuple[str, ...] = (), id: str) -> object:
    return pytest.param(text, devices, errors, id=id)


CASES = [
    # --- real captures -------------------------------------------------------------------------------
    case(sample("mstconfig-q-cx3-xtremeownage-blog"),
         Dev("09:00.0", "ConnectX3", columns=NEXT, n_params=20,  # CX3 prints no Name/Description
             rows={"SRIOV_EN": nb("True(1)"), "NUM_OF_VFS": nb("8"), "LINK_TYPE_P1": nb("IB(1)"),
                   "LINK_TYPE_P2": nb("ETH(2)"), "CQ_TIMESTAMP": nb("True(1)")}),
         id="mstconfig-q-cx3-next-boot-only"),
    case(sample("mstconfig-set-cx3-xtremeownage-blog"),
         Dev("09:00.0", "ConnectX3", columns=SET, n_params=1, rows={"LINK_TYPE_P1": nb("IB(1)", new="ETH(2)")}),
         id="mstconfig-set-cx3-prompt-and-info-lines"),
    # The issue #492 excerpt lost its header: give it the 16-wide -e header its rows were printed under.
    case(cut_before_last_row(HEADER_16_E + "\n" + excerpt("mstconfig-e-q-cx5-sriov-operator-issue492")),
         Dev(columns=E3, n_params=37,
             rows={"MEMIC_SIZE_LIMIT": e3("_256KB(1)", "_256KB(1)", "_256KB(1)"),
                   "HOST_CHAINING_DESCRIPTORS": e3("Array[0..7]", "Array[0..7]", "Array[0..7]"),
                   "PF_NUM_OF_VF_VALID": e3("False(0)", "False(0)", "False(0)"),
                   "SRIOV_IB_ROUTING_MODE_P1": e3("LID(1)", "LID(1)", "LID(1)"),
                   "PHY_FEC_OVERRIDE_P1": e3("DEVICE_DEFAULT(0)", "DEVICE_DEFAULT(0)", "DEVICE_DEFAULT(0)"),
                   "PF_NUM_PF_MSIX": e3("63", "63", "63")}),
         id="mstconfig-e-q-cx5-16col-overflowing-values-issue492"),
    # Two turns merged: the header of a plain 'q' (the shell prompt after it ends that block), then the
    # daemon's 3-column table without its device header.
    case(excerpt("mstconfig-e-q-cx6lx-sriov-operator-pr358-mstflint4.19"),
         Dev("5e:00.0", "ConnectX6LX", "MCX631102AN-ADA_Ax", "ConnectX-6 Lx EN adapter card"),
         Dev(columns=E3, n_params=25,
             rows={"MEMIC_BAR_SIZE": e3("0", "0", "0"), "ROCE_NEXT_PROTOCOL": e3("254", "254", "254"),
                   "NUM_OF_VL_P2": e3("_4_VLs(3)", "_4_VLs(3)", "_4_VLs(3)"),
                   "SRIOV_IB_ROUTING_MODE_P2": e3("LID(1)", "LID(1)", "LID(1)")}),
         id="mstconfig-e-q-cx6lx-mstflint4.19-trailing-spaces-pr358"),
    case(daemon_log_output("mstconfig-e-q-cx6lx-sriov-operator-issue968-log"),
         Dev("0108:00:00.0", "ConnectX6LX", "MCX631102AC-ADA_Ax", "ConnectX-6 Lx EN adapter card; 25GbE",
             columns=E3, n_params=7,
             rows={"CRYPTO_POLICY": e3("UNRESTRICTED(1)", "UNRESTRICTED(1)", "UNRESTRICTED(1)"),
                   "ALLOW_RD_COUNTERS": e3("True(1)", "True(1)", "True(1)"),
                   "TRACER_ENABLE": e3("True(1)", "True(1)", "True(1)")}),
         id="mstconfig-e-q-cx6lx-20col-pci-domain-issue968"),
    # mlxfwmanager's own 'Device #1:' block (Device Type:, PCI Device Name:) is not an mstconfig device.
    case(excerpt("mlxconfig-e-q-star-marker-and-mlxfwmanager-cx5-hpe-shs-docs"),
         Dev("/dev/mst/mt4119_pciconf0", "ConnectX5", "MCX515A-CCA_Ax_Bx", "ConnectX-5 EN network interface card",
             columns=E3, n_params=5,
             rows={"MEMIC_SIZE_LIMIT": e3("_256KB(1)", "_256KB(1)", "_256KB(1)"),
                   "ADVANCED_PCI_SETTINGS": e3("False(0)", "True(1)", "True(1)", modified=True),
                   "SAFE_MODE_THRESHOLD": e3("10", "10", "10")}),
         id="mlxconfig-e-q-star-marker-after-mlxfwmanager-cx5-hpe"),
    # Decision: a table whose device header is missing (excerpt, grep) is kept as a device with no header.
    case(excerpt("mlxconfig-q-cx7-sriov-device-plugin-issue601"),
         Dev(columns=NEXT, n_params=53,
             rows={"MODULE_SPLIT_M0": nb("Array[0..15]"), "MEMIC_ATOMIC": nb("MEMIC_ATOMIC_ENABLE(2)"),
                   "MEMIC_ATOMIC_ENDIANESS": nb("DEVICE_DEFAULT(0)"), "DCR_LIFO_SIZE": nb("16384"),
                   "EXP_ROM_UEFI_x86_ENABLE": nb("True(1)"), "LINK_TYPE_P1": nb("IB(1)"),
                   "IB_CC_SHAPER_COALESCE_P1": nb("DEVICE_DEFAULT(0)")}),
         id="mlxconfig-q-cx7-20col-headerless-excerpt-issue601"),
    case(excerpt("mlxconfig-set-cx6-20col-maas-commissioning-pr2"),
         Dev("c2:00.0", "ConnectX6", "MCX653106A-HDA_Ax", "ConnectX-6 VPI adapter card", columns=SET, n_params=4,
             rows={"BOOT_VLAN": nb("1", new="0"), "BOOT_LACP_DIS": nb("True(1)", new="True(1)"),
                   "BOOT_UNDI_NETWORK_WAIT": nb("0", new="30")}),
         id="mlxconfig-set-cx6-20col-maas"),
    case(sample("mlxconfig-set-legacy-pci-device-header-and-cx4-jiegec-blog"),
         Dev("/dev/mst/mt4103_pci_cr0", "ConnectX3Pro", columns=SET, n_params=2,
             rows={"LINK_TYPE_P1": nb("ETH(2)", new="IB(1)"), "LINK_TYPE_P2": nb("ETH(2)", new="IB(1)")}),
         Dev("/dev/mst/mtxxxx_pciconf0", "ConnectX4", "REDACTED", "ConnectX-4 VPI adapter card", columns=SET,
             n_params=2, rows={"LINK_TYPE_P1": nb("IB(1)", new="ETH(2)")}),
         id="mlxconfig-set-legacy-pci-device-header-and-cx4-jiegec"),
    case(sample("mlxconfig-set-linktype-cx7-igx-p3740-holoscan-sdk"),
         Dev("0005:03:00.0", "ConnectX7", "P3740-B0-QSFP_Ax", "NVIDIA Prometheus P3740", columns=SET, n_params=2,
             rows={"LINK_TYPE_P1": nb("ETH(2)", new="ETH(2)"), "LINK_TYPE_P2": nb("IB(1)", new="ETH(2)")}),
         id="mlxconfig-set-cx7-indented-after-ibstat-holoscan"),
    # Blank lines lost in the paste; the 'q | grep' rows between the two sets belong to no table.
    case(sample("mlxconfig-set-numvfs-cx7-sigitp-aws-mft4.30"),
         Dev("05:00.0", "ConnectX7", "MCX755106AS-HEA_Ax", "NVIDIA ConnectX-7 HHHL", columns=SET, n_params=1,
             rows={"NUM_OF_VFS": nb("16", new="127")}),
         Dev("0001:05:00.0", "ConnectX7", "MCX755106AS-HEA_Ax", "NVIDIA ConnectX-7 HHHL", columns=SET, n_params=1,
             rows={"NUM_OF_VFS": nb("16", new="127")}),
         id="mlxconfig-set-numvfs-cx7-no-blank-lines-sigitp"),
    case(sample("mlxconfig-q-header-cx7-sigitp-aws-mft4.30"),
         Dev(None, "ConnectX7", "MCX755106AS-HEA_Ax", "NVIDIA ConnectX-7 HHHL Adapter Card", columns=NEXT),
         id="mlxconfig-q-header-only-grep-cx7-sigitp"),
    case(sample("mlxconfig-q-egrep-cx7-sriov-schmaustech-nvidia-tools"),
         Dev(None, "ConnectX7", "MCX715105AS-WEAT_Ax", "NVIDIA ConnectX-7 HHHL Adapter Card", columns=NEXT,
             n_params=3,
             rows={"NUM_OF_VFS": nb("8"), "SRIOV_EN": nb("True(1)"), "LINK_TYPE_P1": nb("ETH(2)")}),
         id="mlxconfig-q-egrep-cx7-between-mst-flint-mlxup-schmaustech"),
    # Hand-edited doc: no '*' although Next Boot != Current; the flag is reported as printed.
    case(sample("mlxconfig-e-q-pending-change-grep-kobibar-openai-recipe"),
         Dev(columns=E3, n_params=1, rows={"SRIOV_IB_ROUTING_MODE_P1": e3("LID(1)", "GID(1)", "GID(0)")}),
         Dev(columns=E3, n_params=1, rows={"SRIOV_IB_ROUTING_MODE_P1": e3("LID(1)", "GID(0)", "GID(0)")}),
         id="mlxconfig-e-q-grep-pending-then-applied-kobibar"),
    case(wrapped_errors("mstconfig-error-failed-open-cx4lx-coreos-openshift-issue696"),
         errors=("Failed to open the device",), id="mstconfig-error-failed-open-cx4lx-issue696"),
    case(wrapped_errors("mstconfig-error-failed-open-exit3-sriov-operator-issue317"),
         errors=("Failed to open the device",), id="mstconfig-error-failed-open-exit3-issue317"),
    case(sample("mlxconfig-error-nv-access-bf2-mstflint-issue1191"),
         errors=("Error when trying to check if NV access registers are supported",),
         id="mlxconfig-error-nv-access-bf2-issue1191"),
    # --- composed from the printf formats --------------------------------------------------------------
    case(CX7_E_FILTERED_PENDING,
         Dev("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION, columns=E3, n_params=3,
             rows={"NUM_OF_VFS": e3("16", "16", "8", modified=True), "SRIOV_EN": e3("True(1)", "True(1)", "True(1)"),
                   "LINK_TYPE_P1": e3("IB(1)", "IB(1)", "IB(1)")}),
         id="composed-cx7-e-filtered-20col-pending-numvfs"),
    case(CX7_E_33WIDE_READ_ONLY,
         Dev("mlx5_4", "ConnectX7", "N/A", "N/A", columns=E3, n_params=3,
             rows={"NUM_OF_VFS": e3("8", "8", "8"),
                   "CRYPTO_POLICY": e3("UNRESTRICTED(1)", "UNRESTRICTED(1)", "UNRESTRICTED(1)", read_only=True),
                   "DPA_AUTHENTICATION": e3("False(0)", "True(1)", "True(1)", modified=True, read_only=True)}),
         id="composed-cx7-e-33col-mstflint4.36-read-only"),
    case(TWO_COLUMN_FALLBACK,
         Dev("0000:3b:00.1", "ConnectX4LX", "MCX4121A-ACA_Ax", "ConnectX-4 Lx EN", columns=("Current", "Next Boot"),
             n_params=2,
             rows={"SRIOV_EN": (None, "True(1)", "True(1)", None, False, False),
                   "NUM_OF_VFS": (None, "8", "16", None, True, False)},
             notes=("Device Firmware does not support reading default configurations",)),
         id="composed-two-column-fallback-with-note"),
    case(NEXT_BOOT_ONLY_FALLBACK,
         Dev("09:00.0", "ConnectX3", columns=NEXT, n_params=1, rows={"NUM_OF_VFS": nb("8")},
             notes=("Device Firmware does not support reading default and current configurations",)),
         id="composed-e-next-boot-only-fallback-with-note"),
    case(TWO_DEVICES,
         Dev("/dev/mst/mt4129_pciconf0", "ConnectX7", "MCX755106AS-HEA_Ax", CX7_DESCRIPTION, columns=NEXT,
             n_params=2, rows={"NUM_OF_VFS": nb("8"), "SRIOV_EN": nb("True(1)")}),
         Dev("/dev/mst/mt4129_pciconf0.1", "ConnectX7", "MCX755106AS-HEA_Ax", CX7_DESCRIPTION, columns=NEXT,
             n_params=2, rows={"NUM_OF_VFS": nb("16"), "SRIOV_EN": nb("False(0)")}),
         id="composed-two-device-blocks"),
    case(ERROR_AFTER_HEADER,
         Dev("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION, columns=E3),
         errors=("The Device doesn't support NUM_OF_VFS_X parameter",), id="composed-error-after-header"),
    case(ERROR_TWICE, errors=("Failed to open the device", "Failed to open the device"),
         id="composed-error-printed-twice"),
    case(FAILED_TLVS,
         Dev("0000:18:00.0", "ConnectX7", "MCX75310AAS-NEAT", CX7_DESCRIPTION, columns=E3, n_params=1,
             rows={"NUM_OF_VFS": e3("16", "16", "16")}),
         errors=("Failed to query some of the TLVs: Failed to query the current values of the following TLVs: "
                 "NV_SWITCH_CAP_PORT_CONF",),
         id="composed-failed-tlvs-error-continues-on-indented-lines"),
    case(ARRAY_ROWS,
         Dev("0000:03:00.0", "ConnectX5", columns=E3, n_params=3,
             rows={f"ESWITCH_HAIRPIN_DESCRIPTORS[{i}]": e3("128", "128", "128") for i in range(3)}),
         id="composed-indexed-array-rows"),
    case(sample("mstconfig-q-cx3-xtremeownage-blog").replace("\n", "\r\n"),
         Dev("09:00.0", "ConnectX3", columns=NEXT, n_params=20, rows={"NUM_OF_VFS": nb("8")}),
         id="crlf-line-endings"),
]


@pytest.mark.parametrize(("text", "devices", "errors"), CASES)
def test_parse_query(text: str, devices: tuple[Dev, ...], errors: tuple[str, ...]) -> None:
    query = parse_query(text)

    assert query.errors == errors
    assert len(query.devices) == len(devices), [d.device for d in query.devices]
    for got, want in zip(query.devices, devices, strict=True):
        assert (got.device, got.device_type, got.name) == (want.device, want.device_type, want.name)
        if want.description is None:
            assert got.description is None
        else:
            assert got.description is not None and got.description.startswith(want.description)
        assert got.columns == want.columns
        assert len(got.params) == want.n_params
        assert got.notes == want.notes
        for name, values in want.rows.items():
            param = got.params[name]
            assert param.name == name
            assert (param.default, param.current, param.next_boot, param.new, param.modified,
                    param.read_only) == values, param.raw


def test_row_raw_is_the_line_as_printed_without_trailing_spaces() -> None:
    text = excerpt("mlxconfig-q-cx7-sriov-device-plugin-issue601")
    memic = parse_query(text).devices[0].params["MEMIC_ATOMIC"]
    assert memic.raw == "        MEMIC_ATOMIC                                MEMIC_ATOMIC_ENABLE(2)"
    size = parse_query(text).devices[0].params["MEMIC_SIZE_LIMIT"]
    assert size.raw == "        MEMIC_SIZE_LIMIT                            _256KB(1)"


def test_pending_numvfs_reads_as_numbers() -> None:
    """The composed CX7 case end to end: Current 16 vs Next Boot 8 is the 'power-cycle pending' signal."""
    num_of_vfs = parse_query(CX7_E_FILTERED_PENDING).devices[0].params["NUM_OF_VFS"]
    assert [value_number(v) for v in (num_of_vfs.default, num_of_vfs.current, num_of_vfs.next_boot)] == [16, 16, 8]
    assert num_of_vfs.modified


@pytest.mark.parametrize("text", [pytest.param(p.values[0], id=p.id) for p in CASES if p.values[1]])
def test_every_printed_value_is_understood_by_value_number(text: str) -> None:
    for device in parse_query(text).devices:
        for param in device.params.values():
            for value in (param.default, param.current, param.next_boot, param.new):
                number = value_number(value)  # raises ParseError on a token it does not understand
                assert number is None or number >= 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "no 'Configurations:' table", id="empty"),
        pytest.param("\n  \n\n", "no 'Configurations:' table", id="blank-lines"),
        pytest.param("bash: mstconfig: command not found\n", "no 'Configurations:' table", id="garbage"),
        pytest.param(sample("mlxfwmanager-query-cx7-sigitp-aws-mlxup4.30"), "no 'Configurations:' table",
                     id="mlxfwmanager-output-alone"),
        pytest.param(sample("mstconfig-q-cx3-xtremeownage-blog").split("Configurations:")[0],
                     "no 'Configurations:' table", id="truncated-before-configurations-header"),
        pytest.param(sample("mstconfig-q-cx3-xtremeownage-blog").split("NUM_OF_VFS")[0] + "NUM_OF_V",
                     "NUM_OF_V", id="truncated-mid-row"),
        # The real excerpt ends in '*        ROCE_CONTROL': a row cut after its name.
        pytest.param(HEADER_16_E + "\n" + excerpt("mstconfig-e-q-cx5-sriov-operator-issue492"), "ROCE_CONTROL",
                     id="issue492-cut-row-with-header"),
        # Excerpt marks left inside a table are not rows: the parser refuses them rather than skip rows.
        pytest.param(sample("mlxconfig-e-q-star-marker-and-mlxfwmanager-cx5-hpe-shs-docs"), "'...'",
                     id="hpe-excerpt-marks-inside-table"),
        pytest.param(lines(HEADER_16_E, row16("NUM_OF_VFS", "8", "8", "8", "8")), "4 value(s)",
                     id="more-values-than-columns"),
        pytest.param(lines(HEADER_20, row("NUM_OF_VFS", "8"), "[root@node ~]# exit"), "[root@node",
                     id="shell-prompt-glued-to-table"),
        # MFT 4.26 blog post: the author trimmed the column labels; mstflint always prints Next Boot.
        pytest.param(sample("mlxconfig-q-cx4-terrencemiao-blog-mft4.26"), "got 'Configurations:'",
                     id="header-without-labels-terrencemiao"),
        pytest.param(lines("Configurations:    Current", "        NUM_OF_VFS    8"), "Configurations:    Current",
                     id="synthetic-quiz-header-without-next-boot"),
        pytest.param(lines(HEADER_20, row("NUM_OF_VFS", "8"), row("NUM_OF_VFS", "16")), "appears twice",
                     id="duplicate-row"),
    ],
)
def test_parse_query_raises(text: str, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_query(text)
    assert message in str(raised.value)
    assert raised.value.raw == text


@pytest.mark.parametrize(
    ("token", "number"),
    [
        ("True(1)", 1), ("IB(1)", 1), ("False(0)", 0), ("ETH(2)", 2), ("16", 16), ("0x10", 16), ("0xff(255)", 255),
        ("N/A", None), (None, None), ("Array[0..7]", None), ("Array[0..15]", None),
        ("MEMIC_ATOMIC_ENABLE(2)", 2), ("DEVICE_DEFAULT(0)", 0), ("_256KB(1)", 1), ("_4_VLs(3)", 3),
        ("IPv4_IPv6(2)", 2), ("GID(0)", 0), ("16384", 16384), ("8\n", 8),
    ],
)
def test_value_number(token: str | None, number: int | None) -> None:
    assert value_number(token) == number


@pytest.mark.parametrize("token", ["abc", "", "-1", "1.5", "True", "True()", "(1)", "True(x)", "16 16", "0x", "١٦"])
def test_value_number_raises(token: str) -> None:
    with pytest.raises(ParseError) as raised:
        value_number(token)
    assert raised.value.raw == token


# -- properties ----------------------------------------------------------------------------------------

FRAGMENTS = sorted({line for name in (
    "mstconfig-q-cx3-xtremeownage-blog", "mlxconfig-set-cx6-20col-maas-commissioning-pr2",
    "mlxconfig-e-q-star-marker-and-mlxfwmanager-cx5-hpe-shs-docs", "mlxconfig-q-cx7-sriov-device-plugin-issue601",
    "mlxconfig-set-legacy-pci-device-header-and-cx4-jiegec-blog") for line in sample(name).splitlines()}
    | set(CX7_E_33WIDE_READ_ONLY.splitlines()) | set(FAILED_TLVS.splitlines()) | set(TWO_COLUMN_FALLBACK.splitlines()))


@settings(max_examples=300)
@given(st.one_of(st.text(), st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40))).map("\n".join)))
def test_parse_query_raises_only_parse_error(text: str) -> None:
    try:
        assert isinstance(parse_query(text), MstconfigQuery)
    except ParseError as exc:
        assert exc.raw == text


@given(st.one_of(st.none(), st.text(), st.from_regex(r"[A-Za-z_]{0,6}\((0x)?[0-9a-f]{0,4}\)?", fullmatch=True)))
def test_value_number_raises_only_parse_error(token: str | None) -> None:
    try:
        number = value_number(token)
    except ParseError:
        return
    assert number is None or number >= 0
