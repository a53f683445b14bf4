"""Emulated firewall rules: the global rules and regional rulesets, with the API's validation."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

from soong.plugins.lambda_cloud.emulator import errors as E
from soong.plugins.lambda_cloud.emulator import validation as V
from soong.plugins.lambda_cloud.emulator.seed import region_json

PROTOCOLS = ("tcp", "udp", "icmp", "all")


def ruleset_not_found() -> E.EmulatedError:
    """404 for an unknown ruleset."""
    return E.EmulatedError(404, "global/object-does-not-exist",
                           "Firewall ruleset does not exist or you do not have permission to access it.",
                           "Check your firewall ruleset ID and try again.")


def check_rules(raw: Any) -> list[dict[str, Any]]:
    """Validate a list of FirewallRule objects; return them normalised.

    The rules of components/schemas/FirewallRule (OpenAPI v1.8.3): ``protocol`` a
    NetworkProtocol; ``port_range`` two integers 1-65535, "not allowed for the icmp
    protocol but required for the others"; ``source_network`` an IPv4 CIDR (a bare
    address is /32); ``description`` at most 128 characters. A bad rule is a 400
    ``global/invalid-parameters`` on every operation that writes rules: v1.8.3 lists
    that 400 only for POST /firewall-rulesets, v1.10.0 also for PUT /firewall-rules
    and PATCH /firewall-rulesets/global and /{id}.
    """
    if not isinstance(raw, list):
        raise E.invalid_parameters("Field 'rules' must be a list of firewall rules.")
    out = []
    for rule in raw:
        if not isinstance(rule, dict):
            raise E.invalid_parameters("Each firewall rule must be an object.")
        protocol = rule.get("protocol")
        if protocol not in PROTOCOLS:
            raise E.invalid_parameters(f"Firewall rule protocol must be one of {', '.join(PROTOCOLS)}.")
        ports = rule.get("port_range")
        if protocol == "icmp":
            if ports is not None:
                raise E.invalid_parameters("A port range is not allowed for icmp rules.")
        else:
            if (not isinstance(ports, list) or len(ports) != 2
                    or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports)
                    or ports[0] > ports[1]):
                raise E.invalid_parameters("A port range must be [min, max] with ports 1-65535.")
        network = rule.get("source_network")
        try:
            parsed = ipaddress.IPv4Network(network, strict=False) if isinstance(network, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise E.invalid_parameters("Field 'source_network' must be an IPv4 CIDR block.")
        description = rule.get("description")
        if not isinstance(description, str) or len(description) > 128:
            raise E.invalid_parameters("Field 'description' must be a string of at most 128 characters.")
        entry = {"protocol": protocol, "source_network": str(parsed), "description": description}
        if ports is not None:
            entry["port_range"] = list(ports)
        out.append(entry)
    return out


class Firewall:
    """The account's global rules and rulesets. ``new_id`` and ``now_iso`` come from the state."""

    def __init__(self, new_id: Callable[[], str], now_iso: Callable[[], str]) -> None:
        self.new_id = new_id
        self.now_iso = now_iso
        self.global_rules: list[dict[str, Any]] = [
            {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "SSH"},
        ]
        self.rulesets: dict[str, dict[str, Any]] = {}

    def add(self, name: str, region: str, rules: list[dict[str, Any]], ruleset_id: str | None = None) -> dict[str, Any]:
        """Store a ruleset."""
        rid = ruleset_id or self.new_id()
        self.rulesets[rid] = {"id": rid, "name": name, "region": region_json(region), "rules": rules,
                              "created": self.now_iso(), "instance_ids": []}
        return self.rulesets[rid]

    def get(self, ruleset_id: str) -> dict[str, Any]:
        """One ruleset or 404."""
        if ruleset_id not in self.rulesets:
            raise ruleset_not_found()
        found = self.rulesets[ruleset_id]
        return dict(found, instance_ids=list(found["instance_ids"]))

    def create(self, body: Any) -> dict[str, Any]:
        """POST /firewall-rulesets."""
        body = V.body_object(body)
        name = V.string(body, "name", required=True, max_len=64)
        region = V.region(body, "region")
        if "rules" not in body:
            raise E.invalid_parameters("Missing required field 'rules'.")
        assert name is not None
        return dict(self.add(name, region, check_rules(body["rules"])))

    def patch(self, ruleset_id: str, body: Any) -> dict[str, Any]:
        """PATCH /firewall-rulesets/{id}."""
        body = V.body_object(body)
        current = self.get(ruleset_id)
        name = V.string(body, "name", max_len=64)
        rules = check_rules(body["rules"]) if body.get("rules") is not None else None
        stored = self.rulesets[current["id"]]
        if name is not None:
            stored["name"] = name
        if rules is not None:
            stored["rules"] = rules
        return self.get(ruleset_id)

    def delete(self, ruleset_id: str, live_ids: set[str]) -> dict[str, Any]:
        """DELETE /firewall-rulesets/{id}: refused while a live instance uses it."""
        found = self.get(ruleset_id)
        if set(found["instance_ids"]) & live_ids:
            raise E.EmulatedError(400, "firewall-rulesets/firewall-ruleset-in-use",
                                  "Firewall ruleset is in use by one or more instances.",
                                  "Terminate all instances that are using the ruleset before deleting it.")
        del self.rulesets[ruleset_id]
        return {}

    def global_json(self) -> dict[str, Any]:
        """GET /firewall-rulesets/global."""
        return {"id": "global", "name": "Global Firewall Rules", "rules": [dict(r) for r in self.global_rules]}

    def set_global(self, body: Any, envelope: bool) -> Any:
        """PUT /firewall-rules (``{"data": [...]}``) or PATCH /firewall-rulesets/global (``{"rules": [...]}``)."""
        body = V.body_object(body)
        key = "data" if envelope else "rules"
        if body.get(key) is not None:
            self.global_rules = check_rules(body[key])
        elif envelope:
            raise E.invalid_parameters("Missing required field 'data'.")
        return [dict(r) for r in self.global_rules] if envelope else self.global_json()
