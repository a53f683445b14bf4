"""Lambda's firewall over real sockets: the emulator's endpoints and validation, and the provider reading and changing it.

The emulator answers as Lambda's OpenAPI description v1.8.3 says (bodies checked
with the description's own schemas); where v1.8.3 lists no 400 for an operation
(PUT /firewall-rules, PATCH /firewall-rulesets/global and /{id}) an invalid rule is
still refused with 400 ``global/invalid-parameters``, as v1.10.0 of the
description documents for those operations (ApiErrorInvalidParameters under 400;
copy in github.com/api-evangelist/lambda-labs, openapi/lambda-labs-firewalls-api-openapi.yml).
"""

from __future__ import annotations

import pytest
import requests

from soong.core import errors as E
from soong.core.firewall import InboundFirewall
from soong.plugins.lambda_cloud.emulator import RateLimit, create_app
from soong.plugins.lambda_cloud.emulator.seed import load_seed
from soong.testing.emulator import serve_in_thread
from tests.lambda_cloud.spec_check import SpecChecker

GLOBAL = "/firewall-rulesets/global"
SSH = {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "SSH"}
WEB = {"protocol": "tcp", "port_range": [8000, 8001], "source_network": "0.0.0.0/0", "description": "web"}
PING = {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "ping"}


def rule(**changes):
    out = dict(SSH)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


BAD_RULES = {
    "port 0": rule(port_range=[0, 22]),
    "port past 65535": rule(port_range=[22, 65536]),
    "range reversed": rule(port_range=[23, 22]),
    "one port": rule(port_range=[22]),
    "ports as text": rule(port_range=["22", "22"]),
    "a boolean port": rule(port_range=[True, 22]),
    "tcp without ports": rule(port_range=None),
    "icmp with ports": rule(protocol="icmp"),
    "unknown protocol": rule(protocol="sctp"),
    "no protocol": rule(protocol=None),
    "not a CIDR": rule(source_network="anywhere"),
    "bad address": rule(source_network="300.1.1.1/8"),
    "no source": rule(source_network=None),
    "no description": rule(description=None),
    "long description": rule(description="x" * 129),
}


@pytest.fixture
def checker(spec):
    return SpecChecker(spec)


def global_rules(emu):
    return emu.api("GET", GLOBAL).json()["data"]["rules"]


@pytest.mark.parametrize("case", sorted(BAD_RULES))
def test_every_rule_writing_operation_refuses_a_bad_rule_and_changes_nothing(emu, case):
    bad = BAD_RULES[case]
    created = emu.api("POST", "/firewall-rulesets", {"name": "ok", "region": "us-east-1", "rules": [SSH]}).json()["data"]
    writes = [("PATCH", GLOBAL, {"rules": [bad]}), ("PUT", "/firewall-rules", {"data": [SSH, bad]}),
              ("POST", "/firewall-rulesets", {"name": "x", "region": "us-east-1", "rules": [bad]}),
              ("PATCH", f"/firewall-rulesets/{created['id']}", {"rules": [bad]})]
    for method, path, body in writes:
        resp = emu.api(method, path, body)
        assert resp.status_code == 400, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "global/invalid-parameters"
        assert resp.json()["error"]["message"]
    assert global_rules(emu) == [SSH]
    assert [r["name"] for r in emu.api("GET", "/firewall-rulesets").json()["data"]] == ["ok"]
    assert emu.api("GET", f"/firewall-rulesets/{created['id']}").json()["data"]["rules"] == [SSH]


@pytest.mark.parametrize("body", [[SSH], {"rules": "all"}, {"rules": [SSH, "x"]}, None])
def test_a_body_that_is_not_a_ruleset_request_is_refused(emu, body):
    resp = emu.api("PATCH", GLOBAL, body)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "global/invalid-parameters"
    broken = requests.patch(emu.url + GLOBAL, data=b"{not json", timeout=10,
                            headers={"Authorization": f"Bearer {emu.api_key}"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "global/invalid-parameters"


def test_create_needs_name_region_and_rules(emu):
    for body in ({"region": "us-east-1", "rules": []}, {"name": "n", "rules": []}, {"name": "n", "region": "us-east-1"},
                 {"name": "n" * 65, "region": "us-east-1", "rules": []}, {"name": "n", "region": "mars-1", "rules": []}):
        resp = emu.api("POST", "/firewall-rulesets", body)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "global/invalid-parameters", body


def test_valid_calls_answer_as_the_description_says(emu, checker):
    answers = [
        ("GET", GLOBAL, None), ("GET", "/firewall-rules", None), ("GET", "/firewall-rulesets", None),
        ("PATCH", GLOBAL, {"rules": [SSH, WEB, PING]}), ("PATCH", GLOBAL, {}),
        ("PUT", "/firewall-rules", {"data": [SSH]}),
        ("POST", "/firewall-rulesets", {"name": "ssh-only", "region": "us-east-1", "rules": [SSH, PING]}),
        ("GET", "/firewall-rulesets/nope", None), ("PATCH", "/firewall-rulesets/nope", {"name": "x"}),
        ("DELETE", "/firewall-rulesets/nope", None),
    ]
    for method, path, body in answers:
        resp = emu.api(method, path, body)
        assert checker.problems(method, "/api/v1" + path, resp.status_code, resp.json(),
                                resp.headers.get("content-type")) == [], (method, path, resp.text)
    assert emu.api("GET", "/firewall-rulesets/nope").json()["error"]["code"] == "global/object-does-not-exist"
    unauthenticated = requests.get(emu.url + GLOBAL, timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "global/invalid-api-key"
    assert checker.problems("GET", "/api/v1" + GLOBAL, 401, unauthenticated.json()) == []


def test_global_rules_are_one_state_through_both_paths_and_a_patch_without_rules_keeps_them(emu):
    data = emu.api("PATCH", GLOBAL, {"rules": [SSH, WEB]}).json()["data"]
    assert data == {"id": "global", "name": "Global Firewall Rules", "rules": [SSH, WEB]}
    assert emu.api("GET", "/firewall-rules").json()["data"] == [SSH, WEB]
    assert emu.api("PATCH", GLOBAL, {}).json()["data"]["rules"] == [SSH, WEB]  # "If not provided, ... not updated"
    emu.api("PUT", "/firewall-rules", {"data": [PING]})
    assert global_rules(emu) == [PING]


def test_a_ruleset_is_regional_attached_at_launch_and_kept_while_in_use(emu):
    emu.add_ssh_key("me")
    ruleset = emu.api("POST", "/firewall-rulesets", {"name": "ssh", "region": "us-east-1", "rules": [SSH]}).json()["data"]
    launch = {"instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"], "firewall_rulesets": [{"id": ruleset["id"]}]}
    elsewhere = emu.api("POST", "/instance-operations/launch", {**launch, "region_name": "us-west-1"})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"]["code"] == "global/invalid-parameters"
    [inst] = emu.api("POST", "/instance-operations/launch", {**launch, "region_name": "us-east-1"}).json()["data"][
        "instance_ids"]
    assert emu.api("GET", f"/firewall-rulesets/{ruleset['id']}").json()["data"]["instance_ids"] == [inst]
    assert emu.api("GET", f"/instances/{inst}").json()["data"]["firewall_rulesets"] == [{"id": ruleset["id"]}]
    in_use = emu.api("DELETE", f"/firewall-rulesets/{ruleset['id']}")
    assert in_use.status_code == 400 and in_use.json()["error"]["code"] == "firewall-rulesets/firewall-ruleset-in-use"


def test_a_seed_sets_the_global_rules():
    app = create_app(api_key="k", seed=load_seed(extra={"firewall_rules": [SSH, WEB]}),
                     general_limit=RateLimit(0, 0), launch_limit=RateLimit(0, 0))
    with serve_in_thread(app) as handle:
        assert global_rules(handle) == [SSH, WEB]
    with pytest.raises(Exception, match="port range"):
        create_app(api_key="k", seed=load_seed(extra={"firewall_rules": [rule(port_range=[0, 1])]}))


# -- the provider ------------------------------------------------------------------------------------

def test_the_provider_reads_what_a_launch_gets(provider, emu):
    assert provider.inbound_firewall("us-east-1") == InboundFirewall(
        "the account's global firewall rules", provider.inbound_firewall(None).rules)
    assert provider.inbound_firewall("us-east-1").ssh_only
    emu.api("PATCH", GLOBAL, {"rules": [SSH, WEB, PING, {**WEB, "protocol": "all", "port_range": [22, 22]}]})
    assert provider.inbound_firewall("us-west-1").openings() == ["tcp ports 8000-8001 from anywhere",
                                                                 "every protocol port 22 from anywhere"]
    emu.clear_requests()
    south = provider.inbound_firewall("us-south-1")  # the global rules do not apply there: nothing to read
    assert not south.filtered and not south.ssh_only and "us-south-1" in south.scope
    assert emu.requests() == []


def test_the_firewall_read_before_a_launch_is_tried_once(provider, emu):
    emu.add_fault(path=GLOBAL, action="error", status=500)
    emu.clear_requests()
    with pytest.raises(E.TransientError):
        provider.inbound_firewall("us-east-1")
    assert len([e for e in emu.requests() if e["path"] == GLOBAL]) == 1


def test_the_ssh_only_change_keeps_ssh_sources_and_icmp_and_is_refused_if_the_rules_moved(provider, emu):
    narrow_ssh = {**SSH, "source_network": "203.0.113.0/24"}
    emu.api("PATCH", GLOBAL, {"rules": [narrow_ssh, WEB, PING]})
    change = provider.ssh_only_change("us-east-1")
    assert change.removed() == ["tcp ports 8000-8001 from anywhere"]
    assert "every region but us-south-1" in change.effect and "running now" in change.effect
    emu.api("PATCH", GLOBAL, {"rules": [narrow_ssh, WEB, PING, {**WEB, "port_range": [9000, 9000]}]})
    with pytest.raises(E.AbortedError, match="changed since"):
        provider.apply_firewall_change(change)
    assert len(global_rules(emu)) == 4  # nothing was changed

    change = provider.ssh_only_change("us-east-1")
    after = provider.apply_firewall_change(change)
    assert after.ssh_only and global_rules(emu) == [narrow_ssh, PING]
    assert provider.ssh_only_change("us-east-1") is None


def test_the_ssh_only_change_opens_ssh_when_no_rule_let_it_in(provider, emu):
    emu.api("PATCH", GLOBAL, {"rules": [WEB]})
    provider.apply_firewall_change(provider.ssh_only_change(None))
    assert global_rules(emu) == [{**SSH, "description": "SSH (soong)"}]
