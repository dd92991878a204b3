"""Headless Chromium that stays offline: the flags the report's browser test and the fleet benchmark share.

The host resolver maps every name to nowhere and the browser's own background traffic (component updates,
sync, QUIC probes) is off, so rendering a report never reaches past the machine.
"""

from __future__ import annotations

import shutil

NAMES = ("chromium", "chromium-browser")
OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0")


def binary() -> str | None:
    """Debian's chromium on PATH, or None."""
    return next((path for path in map(shutil.which, NAMES) if path), None)
