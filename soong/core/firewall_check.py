"""The firewall check of ``start`` and ``configure``: read the provider's inbound rules, say what is open.

``start`` calls :func:`launch_warning` before each launch: one line when the rules
let in more than SSH, or when they cannot be read. It never raises and never asks:
reading the firewall must not stop a launch. A provider without the optional
:meth:`~soong.core.interfaces.Provider.inbound_firewall` capability is skipped
with a debug line only.
"""

from __future__ import annotations

import logging
from typing import Any

from soong.core.firewall import FirewallChange, InboundFirewall

LOG = logging.getLogger(__name__)

#: The command that makes the provider's inbound rules SSH-only (named in the warning).
FIX_COMMAND = "soong configure --ssh-only-firewall"
#: Most openings named in one warning line.
MAX_NAMED = 4


def read_firewall(provider: Any, region: str | None) -> InboundFirewall | None:
    """The provider's answer, or None (with a debug line) when it has no firewall capability."""
    firewall = provider.inbound_firewall(region)
    if firewall is None:
        LOG.debug("provider %r cannot read its inbound firewall; the firewall check is skipped", provider.name)
    return firewall


def openings_text(firewall: InboundFirewall) -> str:
    """The openings, at most :data:`MAX_NAMED` of them named."""
    openings = firewall.openings()
    text = "; ".join(openings[:MAX_NAMED])
    if len(openings) > MAX_NAMED:
        text += f"; and {len(openings) - MAX_NAMED} more"
    return text


def warning_text(firewall: InboundFirewall, region: str | None) -> str | None:
    """The warning for a launch in ``region`` behind ``firewall`` (None: only SSH is open)."""
    if firewall.ssh_only:
        return None
    where = f"in {region}" if region else "now"
    if not firewall.filtered:
        return (f"an instance launched {where} is not behind a provider firewall ({firewall.scope}): every port it "
                "listens on is reachable from anywhere; choose another region with --region to keep only SSH open")
    return (f"{firewall.scope} let in more than SSH for an instance launched {where}: {openings_text(firewall)}; "
            f"'{FIX_COMMAND}' leaves only 22/tcp open")


def launch_warning(provider: Any, region: str | None) -> str | None:
    """One warning line about the inbound rules of a launch in ``region``, or None. Never raises."""
    try:
        firewall = read_firewall(provider, region)
    except Exception as exc:  # noqa: BLE001 - a firewall read must never stop a launch
        LOG.debug("reading the inbound firewall failed", exc_info=True)
        return f"could not read the provider's inbound firewall rules ({exc}); launching without checking them"
    if firewall is None:
        return None
    return warning_text(firewall, region)


def change_lines(change: FirewallChange) -> list[str]:
    """What ``configure`` shows before making ``change``: what closes, what stays open, whom it reaches."""
    return [f"closes: {'; '.join(change.removed())}",
            f"keeps open: {'; '.join(r.describe() for r in change.rules)}",
            change.effect]
