"""Lambda's inbound firewall as it applies to soong's launches, and making it SSH-only.

What Lambda's API description (OpenAPI v1.8.3, ``shared/lambda-cloud-api/openapi-1.8.3.json``) says:

* ``/api/v1/firewall-rules`` (GET, PUT): the *global* inbound rules, "the inbound
  firewall rules currently active for your account's instances", with the note
  "Firewall rules do not apply to the **us-south-1** region". The same rules are the
  ``GlobalFirewallRuleset`` of ``/api/v1/firewall-rulesets/global`` (GET; PATCH with
  ``GlobalFirewallRulesetPatchRequest`` ``{"rules": [...]}``, which "allows updating
  the rules only"), whose ``id`` is the constant ``global``.
* ``/api/v1/firewall-rulesets`` (GET, POST) and ``/{id}`` (GET, PATCH, DELETE): named
  ``FirewallRuleset`` objects, each in one ``region``, that a launch may attach
  (``InstanceLaunchRequest.firewall_rulesets``: "The firewall rulesets must exist in
  the same region as the instance").

soong's launches attach no ruleset (``launch_body`` sends ``firewall_rulesets``
only when a request names some, and core never does), so the rules that apply to
them are the global ones, in every region but us-south-1, where none apply. The
description does not say how an attached ruleset combines with the global rules,
which is why soong does not attach one: it could not tell what the instance ends
up with. See docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from soong.core import errors as E
from soong.core.firewall import FirewallChange, FirewallRule, InboundFirewall, ssh_only_rules

if TYPE_CHECKING:
    from soong.plugins.lambda_cloud.client import LambdaClient

#: Where the global rules do not apply: the note on ``/api/v1/firewall-rules`` GET and PUT
#: (OpenAPI v1.8.3): "Firewall rules do not apply to the **us-south-1** region."
UNFILTERED_REGIONS = ("us-south-1",)
GLOBAL = "global"  # GlobalFirewallRuleset.id, a constant (OpenAPI v1.8.3)
GLOBAL_SCOPE = "the account's global firewall rules"


def global_firewall(client: "LambdaClient", *, max_attempts: int | None = None) -> InboundFirewall:
    """The global rules (``GET /firewall-rulesets/global`` -> ``data``: GlobalFirewallRuleset)."""
    from soong.plugins.lambda_cloud.parsing import parse_firewall_rules

    data = client.get_global_firewall(max_attempts=max_attempts)
    return InboundFirewall(GLOBAL_SCOPE, parse_firewall_rules(data, "data"))


def launch_firewall(client: "LambdaClient", region: str | None, *, max_attempts: int | None = None) -> InboundFirewall:
    """The inbound rules an instance soong launches in ``region`` gets (None: the global rules)."""
    if region in UNFILTERED_REGIONS:
        return InboundFirewall(f"Lambda's firewall rules do not apply in {region}", filtered=False)
    return global_firewall(client, max_attempts=max_attempts)


def rule_json(rule: FirewallRule) -> dict[str, Any]:
    """A ``FirewallRule`` request object (OpenAPI v1.8.3 components/schemas/FirewallRule).

    ``protocol`` and ``source_network`` are required; ``description`` too (at most 128
    characters); ``port_range`` ``[min, max]`` is sent for every protocol but icmp,
    for which it is not allowed.
    """
    body: dict[str, Any] = {"protocol": rule.protocol, "source_network": rule.source,
                            "description": rule.description[:128]}
    if rule.protocol != "icmp" and rule.ports is not None:
        body["port_range"] = [rule.ports[0], rule.ports[1]]
    return body


#: Which instances a change of the global rules reaches, and what it leaves alone.
GLOBAL_EFFECT = ("This replaces the account's global firewall rules (PATCH /firewall-rulesets/global), which apply "
                 "to the account's instances in every region but us-south-1, at once: the ones running now, "
                 "including those soong did not start, and every later launch. Named firewall rulesets are not "
                 "changed (for an instance launched with one, Lambda's API description does not say whether the "
                 "global rules apply too).")


def ssh_only_change(client: "LambdaClient") -> FirewallChange | None:
    """The change to the global rules that leaves only 22/tcp (and ICMP) open; None if they already do."""
    before = global_firewall(client)
    if before.ssh_only:
        return None
    return FirewallChange(target=GLOBAL, before=before, rules=ssh_only_rules(before.rules), effect=GLOBAL_EFFECT)


def apply_change(client: "LambdaClient", change: FirewallChange) -> InboundFirewall:
    """Make ``change`` (from :func:`ssh_only_change`) unless the global rules changed since it was read."""
    from soong.plugins.lambda_cloud.parsing import parse_firewall_rules

    if change.target != GLOBAL:
        raise E.UsageError(f"the Lambda provider cannot change firewall {change.target!r}")
    now = global_firewall(client)
    if set(now.rules) != set(change.before.rules):
        raise E.AbortedError("the account's global firewall rules changed since soong read them; nothing was changed",
                             hint="run the command again to see the rules as they are now")
    data = client.update_global_firewall([rule_json(rule) for rule in change.rules])
    return InboundFirewall(GLOBAL_SCOPE, parse_firewall_rules(data, "data"))
