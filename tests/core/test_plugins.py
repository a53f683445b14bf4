"""The plugin host: registration checks, clashes, overrides, failures, enable/disable."""

from __future__ import annotations

import types

import pytest

from soong import hookimpl
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.types import ModelSpec


def _spec(model_id: str, **over) -> ModelSpec:
    values = dict(id=model_id, hf_path="org/model", params_billion=7.0, precision="bf16", layers=32,
                  attention_heads=32, kv_heads=8, head_dim=128, max_context=8192, default_context=4096)
    values.update(over)
    return ModelSpec(**values)


def _models_plugin(*specs, override=False):
    @hookimpl
    def soong_register_models(register):
        for spec in specs:
            register(spec, override=override)

    return types.SimpleNamespace(soong_register_models=soong_register_models)


@pytest.fixture
def warnings():
    return []


@pytest.fixture
def host(warnings):
    return PluginHost(discover=False, env={}, warn=warnings.append)


def test_valid_registrations_are_collected(host):
    host.add_plugin(_models_plugin(_spec("a"), _spec("b")), PluginInfo("p", builtin=True))
    assert sorted(host.models()) == ["a", "b"]
    assert host.owner("models", "a") == "p"
    assert host.infos["p"].hooks == ["soong_register_models"]


def test_invalid_object_fails_the_plugin_and_keeps_others(host, warnings):
    host.add_plugin(_models_plugin(_spec("good")), PluginInfo("good-plugin"))
    host.add_plugin(_models_plugin(_spec("ok"), "not a spec"), PluginInfo("bad-plugin"))
    assert list(host.models()) == ["good"]
    info = host.infos["bad-plugin"]
    assert info.status == "failed" and "not a soong.core.types.ModelSpec" in info.detail
    assert len(warnings) == 1 and "bad-plugin" in warnings[0]


def test_invalid_model_facts_are_named(host):
    host.add_plugin(_models_plugin(_spec("x", kv_heads=5)), PluginInfo("p"))
    assert host.models() == {}
    assert "attention_heads must be a multiple of kv_heads" in host.infos["p"].detail


def test_clash_between_third_parties_names_both(host):
    host.add_plugin(_models_plugin(_spec("same")), PluginInfo("first"))
    host.add_plugin(_models_plugin(_spec("same", hf_path="other/model")), PluginInfo("second"))
    assert host.models()["same"].hf_path == "org/model"
    detail = host.infos["second"].detail
    assert "first" in detail and "second" in detail and host.infos["second"].status == "failed"


def test_builtin_is_not_replaced_without_override(host):
    host.add_plugin(_models_plugin(_spec("m")), PluginInfo("core", builtin=True))
    host.add_plugin(_models_plugin(_spec("m", hf_path="x/y")), PluginInfo("third"))
    assert host.models()["m"].hf_path == "org/model"
    assert "override=True" in host.infos["third"].detail


def test_override_of_builtin_on_purpose_is_visible(host):
    host.add_plugin(_models_plugin(_spec("m")), PluginInfo("core", builtin=True))
    host.add_plugin(_models_plugin(_spec("m", hf_path="x/y"), override=True), PluginInfo("third"))
    assert host.models()["m"].hf_path == "x/y"
    assert host.infos["third"].status == "overriding"
    assert "overrides model 'm' of 'core'" in host.infos["third"].detail


def test_hook_that_raises_drops_only_that_plugin(host):
    @hookimpl
    def soong_register_models(register):
        register(_spec("partial"))
        raise RuntimeError("catalog server down")

    host.add_plugin(types.SimpleNamespace(soong_register_models=soong_register_models), PluginInfo("flaky"))
    host.add_plugin(_models_plugin(_spec("fine")), PluginInfo("fine"))
    assert list(host.models()) == ["fine"]
    assert "catalog server down" in host.infos["flaky"].detail


def test_unknown_soong_hook_fails_registration(host):
    @hookimpl
    def soong_register_gpus(register):  # not a hook soong defines
        pass

    host.add_plugin(types.SimpleNamespace(soong_register_gpus=soong_register_gpus), PluginInfo("typo"))
    assert host.infos["typo"].status == "failed"
    assert "soong_register_gpus" in host.infos["typo"].detail


def test_provider_class_must_implement_interface(host):
    from soong.core.interfaces import Provider

    class Half(Provider):
        name = "half"

        def list_instances(self):
            return []

    @hookimpl
    def soong_register_providers(register):
        register(Half)

    host.add_plugin(types.SimpleNamespace(soong_register_providers=soong_register_providers), PluginInfo("half"))
    assert host.providers() == {}
    assert "does not implement" in host.infos["half"].detail and "launch" in host.infos["half"].detail


@pytest.mark.parametrize(
    "env, expected_status",
    [({"SOONG_DISABLE_PLUGINS": "p, q"}, "disabled"), ({"SOONG_LOAD_PLUGINS": ""}, "disabled"),
     ({"SOONG_LOAD_PLUGINS": "p"}, "loaded"), ({"SOONG_LOAD_PLUGINS": "other"}, "disabled")],
)
def test_enable_and_disable_by_environment(env, expected_status):
    host = PluginHost(discover=False, env=env, warn=lambda m: None)
    host.add_plugin(_models_plugin(_spec("a")), PluginInfo("p"))
    assert host.infos["p"].status == expected_status
    assert ("a" in host.models()) == (expected_status == "loaded")


def test_each_host_is_independent():
    first = PluginHost(discover=False, env={})
    first.add_plugin(_models_plugin(_spec("only-here")), PluginInfo("p"))
    second = PluginHost(discover=False, env={})
    assert "only-here" in first.models() and second.models() == {}


def test_discovered_builtins_come_from_entry_points():
    host = PluginHost(env={})
    builtins = [info for info in host.plugin_infos() if info.builtin]
    assert builtins and all(info.distribution == "soong" for info in builtins)
    assert "sglang" in host.infos and "llama-3.1-8b" in host.models()


def test_tunnel_backend_and_cost_sink_registration(host):
    import contextlib

    from soong.core.interfaces import CostSink, TunnelBackend

    class Backend(TunnelBackend):
        name = "loop"

        @contextlib.contextmanager
        def open(self, target, forwards):
            yield list(forwards)

        def start(self, target, forwards):
            raise NotImplementedError

        def list(self):
            return []

        def close(self, instance_id):
            return False

        def check(self, instance_id):
            return False

    class Sink(CostSink):
        name = "memory"

        def emit(self, event):
            pass

    @hookimpl
    def soong_register_tunnel_backends(register):
        register(Backend)

    @hookimpl
    def soong_register_cost_sinks(register):
        register(Sink)
        register(Sink(None))  # an instance, not a class: refused

    plugin = types.SimpleNamespace(soong_register_tunnel_backends=soong_register_tunnel_backends,
                                   soong_register_cost_sinks=soong_register_cost_sinks)
    host.add_plugin(plugin, PluginInfo("both"))
    assert host.tunnel_backends() == {"loop": Backend}
    assert host.cost_sinks() == {}
    assert "is not a subclass of soong.core.interfaces.CostSink" in host.infos["both"].detail


def test_bad_names_are_refused(host):
    from soong.core.interfaces import CostSink

    class Sink(CostSink):
        name = "Has Spaces"

        def emit(self, event):
            pass

    @hookimpl
    def soong_register_cost_sinks(register):
        register(Sink)

    host.add_plugin(types.SimpleNamespace(soong_register_cost_sinks=soong_register_cost_sinks), PluginInfo("p"))
    assert host.cost_sinks() == {} and "is not a valid name" in host.infos["p"].detail


def test_a_plugin_that_fails_after_replacing_a_builtin_entry_gives_it_back():
    from soong import hookimpl

    host = PluginHost(discover=False, warn=lambda message: None)
    host.add_plugin(_models_plugin(_spec("a")), PluginInfo("builtin-models", builtin=True))
    original = host.models()["a"]

    class Replacer:
        @hookimpl
        def soong_register_models(self, register):
            register(_spec("a", hf_path="acme/a-tuned"), override=True)
            register(_spec("a", hf_path="acme/a-again"), override=True)  # registered twice: the plugin fails

    host.add_plugin(Replacer(), PluginInfo("replacer"))
    assert host.models()["a"] is original and host.owner("models", "a") == "builtin-models"
    assert host.infos["replacer"].status == "failed"
    assert host.override_note("models", "a") is None
