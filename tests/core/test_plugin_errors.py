"""Errors name the plugin: a provider that raises or answers with the wrong type says who it is."""

from __future__ import annotations

import json
import textwrap

import pytest

from soong import hookimpl
from soong.core.context import Context
from soong.core.errors import CapacityError, PluginError
from soong.core.interfaces import Provider
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.types import InstanceType
from tests.plugin_site import add_distribution


class AcmeProvider(Provider):
    """A third-party provider whose methods misbehave on demand."""

    name = "acme"
    behaviour = "good"

    def list_instance_types(self):
        if self.behaviour == "raise":
            raise ValueError("bad gateway body")
        if self.behaviour == "dicts":
            return [{"name": "acme-1x"}]
        if self.behaviour == "capacity":
            raise CapacityError("no acme-1x anywhere")
        return [InstanceType("acme-1x", "one", "X1 (24 GB)", 1, 24.0, 100)]

    def list_instances(self):
        return None  # never a list: wrong type

    def get_instance(self, instance_id):
        raise KeyError(instance_id)

    def launch(self, request):
        return "i-123"  # not an Instance

    def terminate(self, instance_ids):
        return []

    def list_ssh_keys(self):
        return []

    def list_file_systems(self):
        return []


class _Plugin:
    @hookimpl
    def soong_register_providers(self, register):
        register(AcmeProvider)


def _context(tmp_path, behaviour="good", builtin=False):
    AcmeProvider.behaviour = behaviour
    host = PluginHost(discover=False)
    host.add_plugin(_Plugin(), PluginInfo("acme", "1.0", "soong-acme", builtin=builtin))
    return Context(env={"HOME": str(tmp_path), "SOONG_HOME": str(tmp_path / "soong")}, plugin_host=host)


def test_an_unexpected_exception_names_the_package_and_provider(tmp_path):
    provider = _context(tmp_path, "raise").provider("acme")
    with pytest.raises(PluginError) as caught:
        provider.list_instance_types()
    message = str(caught.value)
    assert message.startswith("plugin soong-acme (provider acme): list_instance_types failed: ValueError")
    assert "bad gateway body" in message and isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("method, args, wanted", [
    ("list_instances", (), "list_instances returned NoneType, not a list of Instance"),
    ("launch", (None,), "launch returned str, not Instance"),
])
def test_a_wrong_answer_is_refused_with_the_plugin_named(tmp_path, method, args, wanted):
    provider = _context(tmp_path).provider("acme")
    with pytest.raises(PluginError, match=r"^plugin soong-acme \(provider acme\): " + wanted):
        getattr(provider, method)(*args)


def test_a_list_of_the_wrong_things_is_refused(tmp_path):
    provider = _context(tmp_path, "dicts").provider("acme")
    with pytest.raises(PluginError, match="holding dict, not InstanceType"):
        provider.list_instance_types()


def test_a_soong_error_keeps_its_class_and_gains_the_name(tmp_path):
    provider = _context(tmp_path, "capacity").provider("acme")
    with pytest.raises(CapacityError) as caught:
        provider.list_instance_types()
    assert str(caught.value) == "plugin soong-acme (provider acme): no acme-1x anywhere"
    assert caught.value.exit_code == CapacityError("x").exit_code


def test_a_builtin_keeps_its_own_messages(tmp_path):
    provider = _context(tmp_path, "capacity", builtin=True).provider("acme")
    with pytest.raises(CapacityError) as caught:
        provider.list_instance_types()
    assert str(caught.value) == "no acme-1x anywhere"


def test_good_answers_pass_and_the_object_stays_itself(tmp_path):
    provider = _context(tmp_path).provider("acme")
    assert isinstance(provider, AcmeProvider) and provider.list_instance_types()[0].name == "acme-1x"
    assert provider.list_ssh_keys() == [] and provider.image_family() is None


SLOW = textwrap.dedent('''
    import time

    from soong import hookimpl
    from soong.core.types import ModelSpec


    @hookimpl
    def soong_register_models(register):
        time.sleep(0.35)
        register(ModelSpec(id="slow-1b", hf_path="acme/slow-1b", params_billion=1.1, precision="bf16", layers=16,
                           attention_heads=16, kv_heads=4, head_dim=64, max_context=4096, default_context=4096))
''')


def test_slow_registration_is_timed_and_named(run_soong, tmp_path):
    site = add_distribution(tmp_path / "site", "soong-slow", "0.1", {"soong": ["slow = slow_plugin"]},
                            {"slow_plugin": SLOW})
    result = run_soong("plugins", "-f", "json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    rows = {row["Name"]: row for row in json.loads(result.stdout)}
    assert "slow: soong_register_models 0." in rows["slow"]["Detail"]
    assert "slow:" not in rows["sglang"]["Detail"]
