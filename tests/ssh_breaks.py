"""A fake SSH server's ways to break the exchange mid-way, for the tests of what the SSH transport and the fleet
benchmark do then (each once the client has sent its first packet, so the client is reading the server's
whatever the timing)."""

from __future__ import annotations

import contextlib
import socket
import struct

BANNER = b"SSH-2.0-OpenSSH_9.2p1\r\n"
PACKETS = {
    "garbage": b"\x00\x00\x00\x0b" + b"x" * 16,           # a packet of impossible length: "Invalid packet blocking"
    "malformed": b"\x00\x00\x00\x0c\xff" + b"\x00" * 11,   # padding longer than the packet: an empty payload
}


def break_exchange(conn: socket.socket, how: str) -> None:
    """Send a banner, then break the exchange: one of ``PACKETS``, "close" (after the banner) or "reset"."""
    conn.sendall(BANNER)
    seen = b""
    while not seen.partition(b"\r\n")[2] and (chunk := conn.recv(4096)):
        seen += chunk
    if how == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close sends RST
        return
    if how == "close":
        conn.shutdown(socket.SHUT_WR)
    else:
        conn.sendall(PACKETS[how])
    with contextlib.suppress(ConnectionResetError):     # the client may close with our packet unread
        while conn.recv(4096):  # until the client closes: no RST from data it sent that we left unread
            pass
