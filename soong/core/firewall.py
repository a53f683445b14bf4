"""Inbound firewall rules as core sees them: what a rule set opens beyond SSH, and its SSH-only form.

A provider that can read its firewall returns an :class:`InboundFirewall` from
:meth:`~soong.core.interfaces.Provider.inbound_firewall`; core only compares it
with what soong needs from the outside, which is SSH (22/tcp) and nothing else:
SGLang, n8n and the status daemon listen on 127.0.0.1 and are reached through
the SSH tunnel (docs/security.md). ICMP (ping) carries no port and opens no
service, so it is not counted.
"""

from __future__ import annotations

import dataclasses

SSH_PORT = 22
ANYWHERE = "0.0.0.0/0"
#: Protocols whose rules carry a port range.
PORT_PROTOCOLS = ("tcp", "udp", "all")


@dataclasses.dataclass(frozen=True)
class FirewallRule:
    """One inbound allow rule: a protocol, an inclusive port range (None for ICMP), a source CIDR."""

    protocol: str
    ports: tuple[int, int] | None
    source: str
    description: str = ""

    def covers_ssh(self) -> bool:
        """True when the rule lets TCP port 22 in (a tcp or ``all`` rule whose range holds 22)."""
        return (self.protocol in ("tcp", "all") and self.ports is not None
                and self.ports[0] <= SSH_PORT <= self.ports[1])

    def is_ssh_only(self) -> bool:
        """True for a rule that opens exactly 22/tcp."""
        return self.protocol == "tcp" and self.ports == (SSH_PORT, SSH_PORT)

    def describe(self) -> str:
        """The rule in words: ``tcp port 22 from anywhere``, ``every protocol ports 1-65535 from 10.0.0.0/8``."""
        where = "from anywhere" if self.source == ANYWHERE else f"from {self.source}"
        if self.protocol == "icmp":
            return f"icmp {where}"
        if self.protocol not in PORT_PROTOCOLS:
            return f"protocol {self.protocol!r} {where}"
        low, high = self.ports if self.ports is not None else (1, 65535)
        ports = f"port {low}" if low == high else f"ports {low}-{high}"
        what = "every protocol" if self.protocol == "all" else self.protocol
        return f"{what} {ports} {where}"

    def opening(self) -> str | None:
        """What the rule lets in beyond SSH, in words (None: nothing beyond 22/tcp, or ICMP)."""
        if self.protocol == "icmp" or self.is_ssh_only():
            return None
        return self.describe()


@dataclasses.dataclass(frozen=True)
class InboundFirewall:
    """The inbound rules an instance gets, and where they come from.

    ``scope`` names them for the user ("the account's global firewall rules").
    ``filtered`` is False where the provider's firewall does not apply at all:
    then every port the instance listens on is reachable, whatever ``rules`` say.
    """

    scope: str
    rules: tuple[FirewallRule, ...] = ()
    filtered: bool = True

    def openings(self) -> list[str]:
        """Everything the rules let in beyond 22/tcp, one phrase each (empty: SSH only)."""
        if not self.filtered:
            return [f"every port ({self.scope})"]
        seen: list[str] = []
        for rule in self.rules:
            phrase = rule.opening()
            if phrase and phrase not in seen:
                seen.append(phrase)
        return seen

    @property
    def ssh_only(self) -> bool:
        """True when nothing beyond 22/tcp (and ICMP) is let in."""
        return not self.openings()


@dataclasses.dataclass(frozen=True)
class FirewallChange:
    """A change to make a provider's inbound rules SSH-only, described before it is made.

    ``target`` is the provider's own handle for what is changed (e.g. ``global``);
    ``effect`` says, in full sentences, which instances the change reaches.
    """

    target: str
    before: InboundFirewall
    rules: tuple[FirewallRule, ...]
    effect: str

    def removed(self) -> list[str]:
        """The openings the change closes."""
        return self.before.openings()


def ssh_only_rules(rules: tuple[FirewallRule, ...] | list[FirewallRule]) -> tuple[FirewallRule, ...]:
    """``rules`` reduced to 22/tcp: from the sources that could reach port 22 before (else from anywhere).

    ICMP rules and exact 22/tcp rules are kept as they are; a wider rule that held
    port 22 (``tcp 1-65535 from 203.0.113.0/24``) becomes 22/tcp from the same
    source; everything else goes. With no rule that let SSH in, SSH is opened from
    anywhere, since soong reaches the instance over SSH (with keys only).
    """
    kept: list[FirewallRule] = []
    sources: list[str] = []
    for rule in rules:
        if rule.protocol == "icmp":
            kept.append(rule)
        elif rule.is_ssh_only():
            if rule.source not in sources:
                sources.append(rule.source)
                kept.append(rule)
        elif rule.covers_ssh() and rule.source not in sources:
            sources.append(rule.source)
            kept.append(FirewallRule("tcp", (SSH_PORT, SSH_PORT), rule.source, "SSH (soong)"))
    if not sources:
        kept.append(FirewallRule("tcp", (SSH_PORT, SSH_PORT), ANYWHERE, "SSH (soong)"))
    if ANYWHERE in sources:  # SSH from anywhere already: narrower SSH rules add nothing
        kept = [r for r in kept if r.protocol == "icmp" or r.source == ANYWHERE]
    return tuple(kept)
