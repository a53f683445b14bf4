"""Core's reading of inbound rules: what counts as more than SSH, the SSH-only form, and a check that never raises."""

from __future__ import annotations

import logging

from soong.core.firewall import ANYWHERE, FirewallRule, InboundFirewall, ssh_only_rules
from soong.core.firewall_check import FIX_COMMAND, launch_warning, warning_text
from soong.core.interfaces import Provider

SSH = FirewallRule("tcp", (22, 22), ANYWHERE, "SSH")
PING = FirewallRule("icmp", None, ANYWHERE, "ping")


def test_only_exact_ssh_and_icmp_are_not_openings():
    firewall = InboundFirewall("rules", (SSH, PING, FirewallRule("tcp", (22, 22), "203.0.113.7/32")))
    assert firewall.ssh_only and firewall.openings() == []
    wider = [FirewallRule("tcp", (21, 22), ANYWHERE), FirewallRule("udp", (22, 22), ANYWHERE),
             FirewallRule("all", (22, 22), "10.0.0.0/8"), FirewallRule("gre", None, ANYWHERE)]
    assert InboundFirewall("rules", (SSH, *wider)).openings() == [
        "tcp ports 21-22 from anywhere", "udp port 22 from anywhere", "every protocol port 22 from 10.0.0.0/8",
        "protocol 'gre' from anywhere"]


def test_a_region_without_a_firewall_is_open_whatever_the_rules():
    firewall = InboundFirewall("no firewall in lab-1", (SSH,), filtered=False)
    assert not firewall.ssh_only
    assert "every port" in warning_text(firewall, "lab-1") and "--region" in warning_text(firewall, "lab-1")


def test_ssh_only_keeps_ssh_sources_icmp_and_narrows_wide_rules_holding_port_22():
    rules = (FirewallRule("tcp", (1, 65535), "198.51.100.0/24", "all tcp"), PING,
             FirewallRule("tcp", (8000, 8000), ANYWHERE), FirewallRule("tcp", (22, 22), "203.0.113.7/32", "mine"),
             FirewallRule("udp", (1, 65535), ANYWHERE))
    assert ssh_only_rules(rules) == (FirewallRule("tcp", (22, 22), "198.51.100.0/24", "SSH (soong)"), PING,
                                     FirewallRule("tcp", (22, 22), "203.0.113.7/32", "mine"))
    assert InboundFirewall("after", ssh_only_rules(rules)).ssh_only


def test_ssh_only_opens_ssh_from_anywhere_when_nothing_let_it_in_and_drops_narrower_duplicates():
    assert ssh_only_rules((FirewallRule("udp", (53, 53), ANYWHERE),)) == (
        FirewallRule("tcp", (22, 22), ANYWHERE, "SSH (soong)"),)
    rules = (FirewallRule("tcp", (22, 22), "203.0.113.7/32"), FirewallRule("all", (1, 65535), ANYWHERE), PING)
    assert ssh_only_rules(rules) == (FirewallRule("tcp", (22, 22), ANYWHERE, "SSH (soong)"), PING)


def test_the_warning_names_every_opening_up_to_four_and_the_fix():
    rules = tuple(FirewallRule("tcp", (p, p), ANYWHERE) for p in (80, 443, 8000, 8080, 5678, 9000))
    line = warning_text(InboundFirewall("the rules", (SSH, *rules)), "lab-1")
    assert "tcp port 80 from anywhere; tcp port 443" in line and "tcp port 8080 from anywhere; and 2 more" in line
    assert f"'{FIX_COMMAND}'" in line and "\n" not in line


class Minimal(Provider):
    """A third-party provider without the firewall capability."""

    name = "minimal"
    list_instance_types = list_instances = get_instance = launch = terminate = list_ssh_keys = list_file_systems = (
        lambda self, *a: [])


class Broken(Minimal):
    """A provider whose firewall read fails in a way it did not plan for."""

    def inbound_firewall(self, region=None):
        raise RuntimeError("socket exploded")


def test_a_provider_without_the_capability_is_skipped_with_only_a_debug_line(caplog):
    caplog.set_level(logging.DEBUG, logger="soong.core.firewall_check")
    assert launch_warning(Minimal(context=None), "lab-1") is None
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "firewall check is skipped" in caplog.records[0].getMessage()
    assert Minimal(context=None).ssh_only_change("lab-1") is None


def test_any_failure_to_read_is_a_warning_never_an_exception():
    line = launch_warning(Broken(context=None), "lab-1")
    assert line.startswith("could not read") and "socket exploded" in line and "launching without" in line
