"""LambdaProvider against the emulator: the contract, launch safety, terminate, errors shown to users."""

from __future__ import annotations

import pytest

from soong.core import errors as E
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.types import LaunchRequest
from soong.plugins.lambda_cloud.provider import LambdaProvider, instance_name
from soong.testing.provider_contract import ProviderContract
from tests.lambda_cloud.conftest import make_context

LAUNCH = "/instance-operations/launch"


def request(name="t", **kw):
    return LaunchRequest(kw.pop("instance_type", "gpu_1x_a10"), kw.pop("region", "us-east-1"), "me", name, **kw)


class TestLambdaContract(ProviderContract):
    """The generic provider contract, run against LambdaProvider and the in-process emulator."""

    @pytest.fixture
    def provider(self, emu):
        emu.add_ssh_key("me")
        prov = LambdaProvider(make_context(emu))
        prov.emulator = emu
        return prov

    def launch_request(self, provider):
        return request("contract")

    def exhaust_capacity(self, provider, req):
        provider.emulator.set_capacity(req.instance_type, req.region, 0)

    def fail_next_launch_ambiguously(self, provider):
        provider.emulator.add_fault(path=LAUNCH, action="ambiguous", then="error", status=502, times=1)

    def open_inbound_port(self, provider, port):
        rules = provider.emulator.api("GET", "/firewall-rules").json()["data"]
        rules.append({"protocol": "tcp", "port_range": [port, port], "source_network": "0.0.0.0/0", "description": "x"})
        assert provider.emulator.api("PUT", "/firewall-rules", {"data": rules}).status_code == 200


def test_registered_through_the_plugin_hook():
    import soong.plugins.lambda_cloud as plugin

    host = PluginHost(discover=False, env={})
    host.add_plugin(plugin, PluginInfo("lambda", builtin=True))
    assert host.providers()["lambda"] is LambdaProvider


@pytest.mark.parametrize("then", ["drop", "error", "timeout"])
def test_ambiguous_launch_is_resolved_by_name_not_resent(emu, then):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu, SOONG_LAMBDA_TIMEOUT_SECONDS="1"))
    emu.add_fault(path=LAUNCH, action="ambiguous", then=then, delay=1.5, times=1)
    inst = provider.launch(request("amb", token="abc123def456"))
    assert inst.name == "amb-abc123def456"
    assert [i["id"] for i in emu.instances()] == [inst.id]
    assert len([e for e in emu.requests() if e["launch"]]) == 1  # never re-sent


def test_failure_before_the_launch_took_effect_reports_nothing_launched(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    emu.add_fault(path=LAUNCH, action="error", status=503, times=1)
    with pytest.raises(E.TransientError) as info:
        provider.launch(request())
    assert "nothing was launched" in str(info.value) and info.value.launched is False
    assert emu.instances() == [] and len([e for e in emu.requests() if e["launch"]]) == 1


def test_lookup_keeps_looking_within_its_window(emu):
    """An instance that shows up late (e.g. a gateway timed out first) is still found."""
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu, SOONG_LAMBDA_LAUNCH_LOOKUP_SECONDS="30"),
                              sleep=lambda s: emu.api("POST", LAUNCH, {
                                  "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                  "ssh_key_names": ["me"], "name": "late-0123456789ab"}) if not emu.instances() else None)
    emu.add_fault(path=LAUNCH, action="error", status=504, times=1)
    inst = provider.launch(request("late", token="0123456789ab"))
    assert inst.name == "late-0123456789ab" and len(emu.instances()) == 1


def test_unresolvable_ambiguity_is_its_own_error(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu, SOONG_LAMBDA_RETRY_BUDGET_SECONDS="0.5"))
    emu.add_fault(path=LAUNCH, action="ambiguous", then="drop", times=1)
    emu.add_fault(method="GET", path="/instances", action="error", status=503)
    with pytest.raises(E.AmbiguousLaunchError) as info:
        provider.launch(request("lost", token="feedfacecafe"))
    assert info.value.exit_code == E.EXIT_UNCONFIRMED and "lost-feedfacecafe" in str(info.value)


def test_rate_limited_launch_waits_and_launches_once(emu):
    emu.add_ssh_key("me")
    emu.add_fault(path=LAUNCH, action="error", status=429, retry_after=0.1, times=1)
    provider = LambdaProvider(make_context(emu))
    provider.launch(request())
    assert len(emu.instances()) == 1
    assert [e["status"] for e in emu.requests() if e["launch"]] == [429, 200]


def test_no_capacity_and_quota_are_distinct_errors(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    emu.set_capacity("gpu_1x_a10", "us-east-1", 0)
    with pytest.raises(E.CapacityError) as cap:
        provider.launch(request())
    assert cap.value.exit_code == E.EXIT_CAPACITY
    emu.configure(quota=0)
    with pytest.raises(E.QuotaExceededError) as quota:
        provider.launch(request(region="us-west-1"))
    assert "Contact Support" in str(quota.value)


def test_terminate_after_the_instance_is_gone_counts_as_done(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    inst = provider.launch(request())
    provider.terminate([inst.id])
    emu.advance(10)  # gone
    result = provider.terminate([inst.id])
    assert [(i.id, i.status) for i in result] == [(inst.id, "terminated")]


def test_terminate_finishes_the_ones_still_running(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    first, second = provider.launch(request()), provider.launch(request())
    emu.add_fault(path="/instance-operations/terminate", action="error", status=404, code="global/object-does-not-exist",
                  times=1)
    result = provider.terminate([first.id, second.id])
    assert {i.status for i in result} == {"terminating"}
    assert {i["status"] for i in emu.instances()} == {"terminating"}


def test_terminate_failure_raises(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu, SOONG_LAMBDA_RETRY_BUDGET_SECONDS="0.3"))
    inst = provider.launch(request())
    emu.add_fault(path="/instance-operations/terminate", action="error", status=503)
    with pytest.raises(E.TransientError):
        provider.terminate([inst.id])
    assert emu.instances()[0]["status"] == "booting"


def test_the_rest_of_the_api(emu):
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    key, private = provider.add_ssh_key("generated")
    assert private and "PRIVATE KEY" in private and key.name == "generated"
    provider.delete_ssh_key(key.id)
    assert [k.name for k in provider.list_ssh_keys()] == ["me"]
    fs = provider.create_file_system("models", "us-east-1")
    assert fs.mount_point == "/lambda/nfs/models" and not fs.in_use
    inst = provider.launch(request(file_system_names=("models",), tags={"owner": "me"}))
    assert provider.list_file_systems()[0].in_use
    emu.advance(10)
    assert provider.rename_instance(inst.id, "renamed").name == "renamed"
    assert [i.status for i in provider.restart([inst.id])] == ["booting"]
    assert any(img.family == "lambda-stack-22-04" for img in provider.list_images())
    assert provider.list_firewall_rulesets() == []
    assert {e["action"] for e in provider.list_audit_events()} >= {"launch", "create", "delete"}
    provider.terminate([inst.id])
    emu.advance(10)
    assert provider.delete_file_system(fs.id) == [fs.id]


def test_permanent_error_reaches_the_user_as_one_line_with_its_suggestion(emu, run_soong):
    result = run_soong("available", env={"SOONG_LAMBDA_API_URL": emu.url, "LAMBDA_API_KEY": "not-the-key"})
    assert result.returncode == E.EXIT_API
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "global/invalid-api-key" in lines[0]
    assert "Check your API key" in lines[0] and "Traceback" not in result.stderr and "not-the-key" not in result.stderr


@pytest.mark.parametrize("name, token, expected", [
    ("soong-llama", "abcdef123456", "soong-llama-abcdef123456"),
    ("x" * 80, "abcdef123456", "x" * 51 + "-abcdef123456"),
    ("", "abcdef123456", "abcdef123456"),
])
def test_instance_names(name, token, expected):
    assert instance_name(name, token) == expected and len(expected) <= 64


def test_bad_token_is_refused():
    with pytest.raises(E.UsageError):
        instance_name("x", "Not A Token!")
