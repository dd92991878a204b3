"""InfiniBand GUIDs as the tools print them, normalised to one form.

Each tool prints the same 64-bit GUID its own way:

- ``ip link`` (``NODE_GUID``/``PORT_GUID``), the SR-IOV operator and ``ip link set ... node_guid``:
  8 colon-separated bytes, ``11:00:af:21:cb:05:11:00``;
- sysfs ``node_guid``/``sys_image_guid`` and ``ibv_devinfo``: 4 groups of 16 bits, ``1100:af21:cb05:1100``;
- ``ibstat``: ``0x1100af21cb051100``;
- ``ibv_devices``: 16 hex digits, ``1100af21cb051100``.

``normalize_guid`` turns any of them into the canonical form, 8 lower-case colon-separated bytes.

>>> normalize_guid("0x9AECDDE4E1E642BA")
'9a:ec:dd:e4:e1:e6:42:ba'
>>> normalize_guid("58a2:e103:002a:09b8") == normalize_guid("58a2e103002a09b8")
True
"""

from __future__ import annotations

import re

from ibconform.errors import ParseError

_HEX = "[0-9A-Fa-f]"
_BYTES = re.compile(rf"{_HEX}{{2}}(?::{_HEX}{{2}}){{7}}")
_GROUPS = re.compile(rf"{_HEX}{{4}}(?::{_HEX}{{4}}){{3}}")
_PREFIXED = re.compile(rf"0[xX]({_HEX}{{16}})")
_DIGITS = re.compile(rf"{_HEX}{{16}}")
# An IPoIB hardware address: 4 bytes (flags and QPN) then the port's 16-byte GID, 20 bytes in all.
_IPOIB_ADDRESS = re.compile(rf"{_HEX}{{2}}(?::{_HEX}{{2}}){{19}}")

#: The canonical all-zero GUID: what an unset VF GUID reads as.
ZERO_GUID = "00:00:00:00:00:00:00:00"


def normalize_guid(text: str) -> str:
    """Any printed form of a GUID -> ``'xx:xx:xx:xx:xx:xx:xx:xx'`` (lower case).

    Accepts 8 colon-separated bytes, 4 colon-separated 16-bit groups, ``0x`` and 16 hex digits, or
    16 bare hex digits; surrounding whitespace is ignored. Anything else raises ``ParseError``.

    >>> normalize_guid("1100:af21:cb05:1100")
    '11:00:af:21:cb:05:11:00'
    """
    value = text.strip()
    if _BYTES.fullmatch(value) or _GROUPS.fullmatch(value):
        digits = value.replace(":", "")
    elif prefixed := _PREFIXED.fullmatch(value):
        digits = prefixed[1]
    elif _DIGITS.fullmatch(value):
        digits = value
    else:
        raise ParseError("GUID: expected xx:xx:xx:xx:xx:xx:xx:xx, xxxx:xxxx:xxxx:xxxx, 0x and 16 hex digits or "
                         f"16 hex digits, got {value[:60]!r}", raw=text)
    digits = digits.lower()
    return ":".join(digits[i:i + 2] for i in range(0, 16, 2))


def is_zero_guid(guid: str) -> bool:
    """Whether a GUID (any printed form) is all zero: on a VF, nobody set it.

    >>> is_zero_guid("0000:0000:0000:0000"), is_zero_guid("0x9aecdde4e1e642ba")
    (True, False)
    """
    return normalize_guid(guid) == ZERO_GUID


def parse_sysfs_guid(text: str) -> str:
    """``/sys/class/infiniband/<dev>/node_guid`` or ``sys_image_guid`` (``"%04x:%04x:%04x:%04x\\n"``).

    Only the kernel's 4-group form is accepted; the result is canonical.

    >>> parse_sysfs_guid("58a2:e103:002a:09b8\\n")
    '58:a2:e1:03:00:2a:09:b8'
    """
    value = text.strip()
    if not _GROUPS.fullmatch(value):
        raise ParseError(f"sysfs GUID: expected xxxx:xxxx:xxxx:xxxx, got {value[:60]!r}", raw=text)
    return normalize_guid(value)


def reverse_guid(guid: str) -> str:
    """The GUID with its 8 bytes in the opposite order (canonical form).

    >>> reverse_guid("79:71:c1:54:97:e6:6a:a8")
    'a8:6a:e6:97:54:c1:71:79'
    """
    return ":".join(reversed(normalize_guid(guid).split(":")))


def ipoib_address_guid(address: str) -> str:
    """The last 8 bytes of a 20-byte IPoIB hardware address, in the order printed (canonical form).

    The address is 4 bytes of flags and queue pair number, then the port's GID: an 8-byte subnet prefix
    and the 8-byte port GUID. A PF's address ends with its port GUID as ``ibstat`` prints it; the GUID the
    SR-IOV operator reports for a VF reads as these bytes REVERSED (compare with ``reverse_guid``).

    >>> ipoib_address_guid("00:00:01:27:fe:80:00:00:00:00:00:00:a8:6a:e6:97:54:c1:71:79")
    'a8:6a:e6:97:54:c1:71:79'
    """
    value = address.strip()
    if not _IPOIB_ADDRESS.fullmatch(value):
        raise ParseError(f"IPoIB address: expected 20 colon-separated bytes, got {value[:80]!r}", raw=address)
    return normalize_guid(value[-23:])
