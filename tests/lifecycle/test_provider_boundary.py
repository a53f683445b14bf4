"""Everything provider-specific is asked of the Provider: naming, the launch request, login user, region, GPU facts, API.

A third-party provider (``acme``, tests/core/acme_provider.py) registered next to
Lambda gets its own instance names, launch body, login user, default region, SSH
key and daemon API; Lambda's own launch (through the real executable, against the
emulator) is unchanged with acme installed beside it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from soong.core.context import Context
from soong.core.errors import ConfigError, UsageError
from soong.core.interfaces import Provider
from soong.core.launch import dry_run_text, launch_secrets
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.start_flow import LaunchPlanner, StartRequest
from soong.plugins import lambda_cloud, plumbum_ssh, sglang
from soong.plugins.direct_tunnel import backend as direct_backend
from soong.plugins.lambda_cloud.provider import LambdaProvider, instance_name, launch_body
from tests.core import acme_provider
from tests.plugin_site import add_distribution

REPO = Path(__file__).resolve().parents[2]


class _UI:
    def __init__(self):
        self.lines = []

    def say(self, line):
        self.lines.append(line)

    def can_ask(self):
        return False

    def choose(self, question, options):
        return None


def _context(env=None, extra=()):
    host = PluginHost(discover=False, env={}, warn=lambda message: None)
    for name, module in (("lambda", lambda_cloud), ("sglang", sglang), ("plumbum-ssh", plumbum_ssh), *extra):
        host.add_plugin(module, PluginInfo(name, builtin=name != "acme"))
    host.add_plugin(acme_provider, PluginInfo("acme"))
    home = os.environ["HOME"]
    base = {"HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", "XDG_STATE_HOME": f"{home}/.local/state",
            "SOONG_HUGGINGFACE_CHECK_GATED": "false", "SOONG_ACME_REGION": "acme-east",
            "SOONG_ACME_API_URL": "https://api.acme.test/v2"}
    return Context(env={**base, **(env or {})}, plugin_host=host)


def _dry_run(context, provider, **request):
    planner = LaunchPlanner(context, provider, _UI())
    draft = planner.prepare(StartRequest(model="mistral-7b", **request))
    order = planner.place(draft)
    return order, dry_run_text(context, provider, order)


def test_a_third_party_provider_names_and_describes_its_own_launch(isolated_env):
    context = _context()
    acme = context.provider("acme")
    order, text = _dry_run(context, acme)
    assert re.fullmatch(r"acme-ac[0-9a-f]{8}-soong-mistral-7b", order.launch_name)  # acme's naming, acme's token
    assert order.region == "acme-east"  # acme.region, not lambda.default_region
    assert order.ssh_key_name == "acme-key" and order.instance_type.name == "acme_1x_ax1"
    head, _, user_data = text.partition("# user data (secrets masked)\n")
    assert head.startswith("# launch request (PUT /v2/machines); nothing was launched\n")
    body = json.loads(head[head.index("{"):])
    assert body["label"] == order.launch_name and body["zone"] == "acme-east" and body["size"] == "acme_1x_ax1"
    assert body["cloud_init"].endswith("bytes, printed below>")
    assert "https://api.acme.test/v2" in user_data and "cloud.lambda.ai" not in user_data  # the daemon's API is acme's
    # the login user owns data/ and projects/ (fs-setup); the services run as their own users
    assert re.search(r"^\s*user=\$\{SOONG_LOGIN_USER:-'?acme-admin'?\}$", user_data, re.M)
    assert not re.search(r"SOONG_LOGIN_USER:-'?ubuntu", user_data)


def test_lambda_next_to_acme_keeps_its_own_names_and_body(isolated_env):
    context = _context(env={"SOONG_LAMBDA_DEFAULT_REGION": "us-east-1"})
    lam = context.provider("lambda")
    assert isinstance(lam, LambdaProvider)
    token = lam.new_token()
    assert lam.instance_name("soong-x", token) == instance_name("soong-x", token) == f"soong-x-{token}"
    assert lam.ssh_user() == "ubuntu" and lam.default_region() == "us-east-1"
    ending = lam.self_termination()
    assert ending.api_url == "https://cloud.lambda.ai/api/v1" and ending.api_key_secret == "lambda_api_key"
    from soong.core.types import LaunchRequest

    request = LaunchRequest(instance_type="gpu_1x_a10", region="us-east-1", ssh_key_name="me", name="n", token=token,
                            user_data="#cloud-config\n")
    assert lam.launch_preview(request) == ("POST /instance-operations/launch", launch_body(request, f"n-{token}"))


def test_an_unknown_gpu_is_never_offered(isolated_env):
    context = _context()
    acme = context.provider("acme")
    types = {t.name: t for t in acme.list_instance_types()}
    assert types["acme_1x_q9"].compute_capability is None and types["acme_1x_q9"].price_cents_per_hour == 151
    planner = LaunchPlanner(context, acme, _UI())
    with pytest.raises(Exception, match="compute capability is unknown"):
        planner.prepare(StartRequest(model="mistral-7b", gpu="acme_1x_q9"))
    forced = planner.prepare(StartRequest(model="mistral-7b", gpu="acme_1x_q9", force=True))
    assert forced.choice.instance_type.name == "acme_1x_q9" and forced.choice.forced


class _NoEnding(acme_provider.AcmeProvider):
    name = "acme"

    def self_termination(self):
        return Provider.self_termination(self)

    def ssh_user(self):
        return Provider.ssh_user(self)


def test_start_refuses_a_provider_whose_instances_cannot_end_themselves(isolated_env):
    context = _context(env={"ACME_API_KEY": "acme-key-12345678"})
    with pytest.raises(UsageError, match="no way to terminate themselves"):
        launch_secrets(context, _NoEnding(context))


def test_a_provider_without_a_login_user_needs_ssh_user(isolated_env):
    from soong.core.bootstrap import LaunchPlan, LaunchSecrets

    context = _context()
    spec = context.models()["mistral-7b"]
    with pytest.raises(ConfigError, match="does not say which user logs in"):
        LaunchPlan.from_context(context, spec, instance_name="x-abcdef", gpu_count=1,
                                secrets=LaunchSecrets.placeholders(), provider=_NoEnding(context))
    named = _context(env={"SOONG_SSH_USER": "ops"})
    plan = LaunchPlan.from_context(named, spec, instance_name="x-abcdef", gpu_count=1,
                                   secrets=LaunchSecrets.placeholders(), provider=_NoEnding(named))
    assert plan.login_user == "ops" and plan.provider_api_url == ""
    target = named.provider("acme").tunnel_target(
        __import__("soong.core.types", fromlist=["Instance"]).Instance(id="i-1", status="active", instance_type="t",
                                                                      region="r", ip="10.0.0.5", name="n"))
    assert (target.host, target.user) == ("10.0.0.5", "ops")  # ssh.user overrides the provider's


def test_soong_ssh_uses_a_backend_that_can_open_a_shell(isolated_env):
    from soong.commands.ssh import shell_backend

    direct_module = type(os)("direct_plugin")
    direct_module.soong_register_tunnel_backends = lambda_cloud.hookimpl(
        lambda register: register(direct_backend.DirectBackend))
    context = _context(env={"SOONG_TUNNEL_BACKEND": "direct"}, extra=(("direct", direct_module),))
    assert context.tunnel_backend().name == "direct"
    assert shell_backend(context).name == "plumbum-ssh"  # direct cannot open a shell: the SSH backend does


# -- through the real executable, against the Lambda emulator ---------------------------------------------

@pytest.fixture
def acme_site(tmp_path):
    site = add_distribution(tmp_path / "site", "soong-acme", "1.0.0", {"soong": [f"acme = {acme_provider.__name__}"]})
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def test_lambdas_dry_run_is_unchanged_with_a_third_party_provider_installed(run_soong, soong_env, emu, acme_site):
    result = run_soong("start", "--model", "mistral-7b", "--dry-run", env=acme_site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# launch request (POST /instance-operations/launch); nothing was launched\n")
    body = json.loads(result.stdout[result.stdout.index("{"):result.stdout.index("\n}\n") + 2])
    assert body["instance_type_name"] == "gpu_1x_a10" and body["ssh_key_names"] == ["me"]
    assert re.fullmatch(r"soong-mistral-7b-[0-9a-f]{12}", body["name"])
    assert emu.url in result.stdout and "acme" not in result.stdout
    assert emu.instances() == []


def test_the_documented_provider_example_names_previews_and_states_its_gpus(isolated_env):
    import types as _types

    doc = (REPO / "docs" / "plugins.md").read_text()
    source = re.search(r"^### soong_register_providers\n.*?```python\n(.*?)```", doc, re.S | re.M).group(1)
    module = _types.ModuleType("tinycloud_example")
    exec(compile(source, "docs/plugins.md:soong_register_providers", "exec"), module.__dict__)
    context = _context(extra=(("tinycloud", module),))
    tiny = context.provider("tinycloud")
    token = tiny.new_token()
    assert tiny.instance_name("soong-" + "x" * 40, token) == "soong-" + "x" * 17 + "." + token
    order, text = _dry_run(context, tiny, region="lab-1")
    assert text.startswith("# launch request (POST /machines); nothing was launched\n")
    assert f'"name": "{order.launch_name}"' in text and order.launch_name.startswith("soong-mistral-7b.")
    assert tiny.list_instance_types()[0].compute_capability == 8.6
    assert "https://api.tinycloud.example/v1" in text
