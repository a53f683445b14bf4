"""Telling systemd that a ``Type=notify`` service is ready, without libsystemd.

The protocol, as systemd's own manual states it (``man/sd_notify.xml``, Notes,
systemd/systemd at 019123a6): one datagram with the state string as payload,
sent to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``; a value starting
with ``@`` is a Linux abstract-namespace socket (the ``@`` stands for the
leading NUL byte). ``READY=1`` reports that start-up is finished; systemd reads
it for ``Type=notify`` units only. Outside systemd the variable is unset and
nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("soong_daemon")


def notify(state: str) -> bool:
    """Send ``state`` (``KEY=value`` lines) to systemd; True if sent, False without ``$NOTIFY_SOCKET`` or on failure."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), target)
    except OSError as exc:
        log.warning("could not notify systemd (%s)", exc.strerror or exc)
        return False
    return True
