"""Plugins declare their config keys (soong_config_keys) and secrets (soong_secrets); registration hooks get the context."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest
import yaml

from soong import hookimpl
from soong.core.config_schema import Key
from soong.core.context import Context
from soong.core.errors import ConfigError
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.secrets import Secret
from soong.plugins import lambda_cloud
from tests.core import acme_provider
from tests.plugin_site import add_distribution

REPO = Path(__file__).resolve().parents[2]
ACME_KEY = "acme-secret-4f1d9e22"


def _host(*plugins):
    host = PluginHost(discover=False, env={}, warn=lambda message: None)
    host.add_plugin(lambda_cloud, PluginInfo("lambda", builtin=True))
    for name, module in plugins:
        host.add_plugin(module, PluginInfo(name))
    return host


def _context(host, env=None):
    home = os.environ["HOME"]
    return Context(env={"HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", **(env or {})}, plugin_host=host)


def _plugin(**hooks):
    module = types.ModuleType("declaring_plugin")
    for name, function in hooks.items():
        setattr(module, name, hookimpl(function))
    return module


def test_declared_keys_work_like_cores(isolated_env):
    context = _context(_host(("acme", acme_provider)), env={"SOONG_ACME_TIMEOUT_SECONDS": "45"})
    config = context.config
    assert config.get("acme.api_url") == "https://api.acme.example/v2" and config.source("acme.api_url") == "default"
    assert config.get("acme.timeout_seconds") == 45.0 and config.source("acme.timeout_seconds") == "env"
    assert config.schema.owner("acme.api_url") == "acme" and config.schema.owner("defaults.model") is None
    assert config.schema.owner("lambda.api_url") == "lambda"  # the Lambda plugin declares its keys, not core
    with pytest.raises(ConfigError, match="must be at most 300"):
        _context(_host(("acme", acme_provider)), env={"SOONG_ACME_TIMEOUT_SECONDS": "900"}).config.get("acme.region")


def test_registration_hooks_receive_the_context(isolated_env):
    acme_provider.SEEN_CONTEXTS.clear()
    context = _context(_host(("acme", acme_provider)))
    assert "acme" in context.plugins.providers()
    context.config.get("acme.region")
    assert acme_provider.SEEN_CONTEXTS == [context, context]
    bare = PluginHost(discover=False, env={})
    bare.add_plugin(acme_provider, PluginInfo("acme"))
    assert bare.providers() and acme_provider.SEEN_CONTEXTS[-1] is None  # no context: None, not a crash


@pytest.mark.parametrize("key, reason", [
    (Key("other.url", "str", "x", "Someone else's section."), "outside the plugin's section"),
    (Key("rogue", "str", "x", "No section at all."), "outside the plugin's section"),
    (Key("rogue.Bad-Name", "str", "x", "A name env vars cannot carry."), "outside the plugin's section"),
    (Key("rogue.items", "list", [], "Lists are core's."), "kind 'list'"),
    (Key("rogue.port", "int", 0, "A default below its own minimum.", minimum=1), "its default 0 is refused"),
    (Key("rogue.quiet", "bool", True, ""), "has no doc"),
    ("rogue.url", "is not a soong.core.config_schema.Key"),
])
def test_a_refused_key_fails_only_its_plugin(isolated_env, key, reason):
    warnings = []
    host = _host(("acme", acme_provider), ("rogue", _plugin(soong_config_keys=lambda register: register(key))))
    host.warn = warnings.append
    context = _context(host)
    assert context.config.get("acme.region") is None  # everyone else's keys still work
    info = host.infos["rogue"]
    assert info.status == "failed" and reason in info.detail, info.detail
    assert len(warnings) == 1 and "rogue" in warnings[0]


def test_a_plugin_also_owns_the_sections_of_what_it_registers(isolated_env):
    """Package soong-acme's entry point 'soong-acme' registers provider 'acme': acme.* and acme_* are its own."""
    host = PluginHost(discover=False, env={}, warn=lambda message: None)
    host.add_plugin(acme_provider, PluginInfo("soong-acme"))
    host.add_plugin(lambda_cloud, PluginInfo("extra0", builtin=True))  # the Lambda plugin under another name
    context = _context(host)
    assert context.config.get("acme.api_url") == "https://api.acme.example/v2"
    assert context.config.schema.owner("acme.api_url") == "soong-acme"
    assert context.config.get("lambda.api_url") == "https://cloud.lambda.ai/api/v1"
    assert context.secrets.env_var("acme_api_key") == "ACME_API_KEY"
    assert context.secrets.env_var("lambda_api_key") == "LAMBDA_API_KEY"


def test_keys_in_cores_sections_or_clashing_with_another_plugin_are_refused(isolated_env):
    def core_section(register):
        register(Key("defaults.model", "str", "x", "Taken by core."))

    def twice(register):
        register(Key("acme.region", "str", None, "Already acme's.", nullable=True))

    host = _host(("acme", acme_provider), ("defaults", _plugin(soong_config_keys=core_section)))
    host.add_plugin(_plugin(soong_config_keys=twice), PluginInfo("acme-2"))  # section acme_2: not acme
    host.add_plugin(_plugin(soong_config_keys=lambda register: register(Key("ssh.extra", "str", "x", "Core's."))),
                    PluginInfo("ssh"))
    host.warn = lambda message: None
    host.config_keys()
    assert "clashes with core's section 'defaults'" in host.infos["defaults"].detail
    assert "outside the plugin's section" in host.infos["acme-2"].detail
    assert "clashes with core's section 'ssh'" in host.infos["ssh"].detail
    assert host.infos["acme"].status == "loaded"


@pytest.mark.parametrize("secret, reason", [
    (Secret("acme_api_key", "ROGUE_KEY", "Another plugin's name."), "outside the plugin's sections"),
    (Secret("rogue_token", "SOONG_DAEMON_TOKEN", "Core's variable."), "clashes with one of core's secrets"),
    (Secret("rogue_token", "ACME_API_KEY", "Acme's variable."), "clashes with 'acme_api_key'"),
    (Secret("rogue_token", "not a variable", "Bad variable."), "is not an environment variable name"),
    (Secret("rogue_", "ROGUE", "No name after the prefix."), "outside the plugin's sections"),
])
def test_a_refused_secret_fails_only_its_plugin(isolated_env, secret, reason):
    host = _host(("acme", acme_provider), ("rogue", _plugin(soong_secrets=lambda register: register(secret))))
    host.warn = lambda message: None
    context = _context(host)
    assert context.secrets.env_var("acme_api_key") == "ACME_API_KEY"
    assert host.infos["rogue"].status == "failed" and reason in host.infos["rogue"].detail


def test_a_plugin_reading_the_config_while_declaring_fails_alone(isolated_env):
    def greedy(register, context):
        context.config.get("defaults.model")  # not loaded yet: this would recurse
        register(Key("greedy.x", "str", "x", "Never declared."))

    host = _host(("acme", acme_provider), ("greedy", _plugin(soong_config_keys=greedy)))
    host.warn = lambda message: None
    context = _context(host)
    assert context.config.get("acme.region") is None
    assert host.infos["greedy"].status == "failed" and "not loaded yet" in host.infos["greedy"].detail


def test_declared_secret_reads_its_variable_and_is_masked(isolated_env):
    from soong.core.redact import redact

    context = _context(_host(("acme", acme_provider)), env={"ACME_API_KEY": ACME_KEY})
    context.config  # noqa: B018 - loading the config declares the secrets and masks their values
    assert redact(f"token {ACME_KEY}") == "token ********"
    assert context.secrets.require("acme_api_key") == ACME_KEY and context.secrets.source("acme_api_key") == "env"
    assert context.secrets.known()["acme_api_key"] == "ACME_API_KEY"


def test_the_local_only_profile_refuses_any_remote_provider_api(isolated_env):
    home = {"HOME": os.environ["HOME"]}
    env = {"SOONG_ACME_API_URL": "https://api.acme.example/v3"}
    with pytest.raises(ConfigError, match="acme.api_url is https://api.acme.example/v3"):
        Context(profile="sandbox", env={**home, **env}, plugin_host=_host(("acme", acme_provider))).config.get("x.y")
    # acme's remote default does not stop the sandbox (Lambda's emulator), but acme itself is refused there
    sandbox = Context(profile="sandbox", env=home, plugin_host=_host(("acme", acme_provider)))
    assert sandbox.provider("lambda").name == "lambda"
    with pytest.raises(ConfigError, match="acme.api_url is https://api.acme.example/v2 \\(from default\\)"):
        sandbox.provider("acme")
    local = Context(profile="sandbox", env={**home, "SOONG_ACME_API_URL": "http://127.0.0.1:9/v2"},
                    plugin_host=_host(("acme", acme_provider)))
    assert local.provider("acme").name == "acme"


# -- through the real executable -------------------------------------------------------------------

@pytest.fixture
def acme_site(tmp_path):
    """PYTHONPATH holding acme as an installed plugin next to the built-in Lambda one."""
    site = add_distribution(tmp_path / "site", "soong-acme", "1.0.0", {"soong": [f"acme = {acme_provider.__name__}"]})
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def _rows(stdout):
    return {row.get("Key") or row.get("Name"): row for row in json.loads(stdout)}


def test_config_and_secrets_commands_work_for_a_third_party_provider(run_soong, acme_site, isolated_env):
    done = run_soong("config", "set", "acme.api_url", "https://api.acme.test/v2", env=acme_site)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "acme.api_url = https://api.acme.test/v2\n"
    written = yaml.safe_load((isolated_env / ".config/soong/config.yaml").read_text())
    assert written["acme"] == {"api_url": "https://api.acme.test/v2"}

    bad = run_soong("config", "set", "acme.timeout_seconds", "9000", env=acme_site)
    assert bad.returncode == 3 and bad.stderr == "soong: error: config key 'acme.timeout_seconds' must be at most 300, not 9000.0\n"

    shown = _rows(run_soong("config", "show", "-f", "json", env=acme_site).stdout)
    assert shown["acme.api_url"]["Value"] == "https://api.acme.test/v2" and shown["acme.api_url"]["Source"] == "file"
    assert shown["acme.api_url"]["Declared by"] == "acme" and shown["acme.api_url"]["Environment variable"] == "SOONG_ACME_API_URL"
    assert shown["lambda.api_url"]["Declared by"] == "lambda" and shown["defaults.model"]["Declared by"] == "core"

    stored = run_soong("secrets", "set", "acme_api_key", "--stdin", input=ACME_KEY + "\n", env=acme_site)
    assert stored.returncode == 0, stored.stderr
    listed = _rows(run_soong("secrets", "list", "-f", "json", env=acme_site).stdout)
    assert listed["acme_api_key"]["Environment variable"] == "ACME_API_KEY"
    assert listed["acme_api_key"]["Source"] == "keyring" and listed["acme_api_key"]["Declared by"] == "acme"
    assert listed["lambda_api_key"]["Declared by"] == "lambda" and listed["daemon_token"]["Declared by"] == "core"
    from_env = run_soong("secrets", "show", "acme_api_key", "-f", "json", env={**acme_site, "ACME_API_KEY": "other-5678"})
    assert json.loads(from_env.stdout)["source"] == "env"
    for result in (done, stored, from_env):
        assert ACME_KEY not in result.stdout + result.stderr

    plugins = {row["Name"]: row for row in json.loads(run_soong("plugins", "-f", "json", env=acme_site).stdout)}
    assert plugins["acme"]["Status"] == "loaded"
    assert {"soong_config_keys", "soong_secrets", "soong_register_providers"} <= set(plugins["acme"]["Hooks"].split(", "))


def test_a_missing_plugins_keys_are_a_warning_and_survive_a_write(run_soong, acme_site, isolated_env):
    assert run_soong("config", "set", "acme.region", "acme-east", env=acme_site).returncode == 0
    without = {**acme_site, "SOONG_DISABLE_PLUGINS": "acme"}
    shown = run_soong("config", "show", "-f", "json", env=without)
    assert shown.returncode == 0
    assert shown.stderr.endswith("config.yaml: unknown section 'acme' ignored (no loaded plugin declares it; "
                                 "see 'soong plugins')\n") and shown.stderr.count("\n") == 1
    assert "Traceback" not in shown.stderr and "acme.region" not in _rows(shown.stdout)
    assert run_soong("config", "set", "defaults.lease_hours", "2", env=without).returncode == 0
    written = yaml.safe_load((isolated_env / ".config/soong/config.yaml").read_text())
    assert written["acme"] == {"region": "acme-east"} and written["defaults"] == {"lease_hours": 2.0}
    again = _rows(run_soong("config", "show", "-f", "json", env=acme_site).stdout)
    assert again["acme.region"]["Value"] == "acme-east"
