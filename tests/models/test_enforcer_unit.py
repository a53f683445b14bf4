"""The enforcer's own unit, started before the web server and independent of it; a config the daemon refuses is refused first."""

from __future__ import annotations

import re

import pytest

from soong.core.bootstrap import UserDataError, build_user_data
from tests.models.helpers import shell_texts, write_files

UNITS = "/etc/systemd/system/"
#: [Service] settings that may differ between the web server and the enforcer; every other one must be the same.
ROLE_SETTINGS = ("Type", "ExecStart", "RestartSec", "TimeoutStartSec")


def service_settings(unit: str) -> dict[str, str]:
    section = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    return dict(line.split("=", 1) for line in section.strip().splitlines() if "=" in line)


def unit_settings(unit: str, section: str) -> dict[str, str]:
    body = unit.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    return dict(line.split("=", 1) for line in body.strip().splitlines() if "=" in line)


@pytest.fixture
def units(host, make_plan):
    files = write_files(build_user_data(host, make_plan()))
    return files[UNITS + "soong-enforcer.service"]["content"], files[UNITS + "soong-daemon.service"]["content"]


def test_the_enforcer_runs_as_its_own_unit_with_the_web_servers_user_and_hardening(units):
    enforcer, web = units
    enforcer_service, web_service = service_settings(enforcer), service_settings(web)
    assert enforcer_service["ExecStart"].endswith("--config /etc/soong-daemon/daemon.yaml --role enforcer")
    assert web_service["ExecStart"].endswith("--config /etc/soong-daemon/daemon.yaml --role web")
    assert enforcer_service["Type"] == "notify"  # systemctl start returns once it holds its lock
    same = {k: v for k, v in enforcer_service.items() if k not in ROLE_SETTINGS}
    assert same == {k: v for k, v in web_service.items() if k not in ROLE_SETTINGS}
    assert same["User"] == "soong-daemon" and same["NoNewPrivileges"] == "yes" and same["Restart"] == "always"
    assert unit_settings(enforcer, "Unit")["StartLimitIntervalSec"] == "0"


def test_the_web_server_comes_after_the_enforcer_and_neither_needs_the_other(units):
    enforcer, web = units
    enforcer_unit, web_unit = unit_settings(enforcer, "Unit"), unit_settings(web, "Unit")
    assert "soong-enforcer.service" in web_unit["After"].split()
    assert "soong-daemon.service" in enforcer_unit["Before"].split()
    for unit in (enforcer, web):  # a failing web server never takes the enforcer down, nor the other way round
        assert not re.search(r"^(Requires|Requisite|BindsTo|PartOf|Upholds)=", unit, re.M)
    assert "soong-daemon" not in enforcer_unit.get("Wants", "") and "soong-daemon" not in enforcer_unit["After"]
    assert not re.search(r"sglang|n8n|nfs", enforcer, re.I)


def test_the_install_starts_the_enforcer_first_and_logs_it_whatever_the_web_server_does(host, make_plan):
    script = shell_texts(build_user_data(host, make_plan()))["01-soong-daemon.sh"]
    enforcer_at = script.index("systemctl enable --now soong-enforcer.service")
    assert enforcer_at < script.index("systemctl enable --now soong-daemon.service")
    assert script.index("bootlog enforcer-up") < script.index("bootlog daemon-up")
    # a web server that never answers is logged, and says that enforcement runs regardless
    assert "the enforcer runs regardless" in script and "bootlog daemon-failed" in script[enforcer_at:]
    assert "trap - ERR" in script[:enforcer_at]  # a failed web start must not look like a failed install


@pytest.mark.parametrize("url, why", [
    ("http://api.example.test/api/v1", "must use https unless it points at this machine"),
    ("ftp://api.example.test/api/v1", "must be an http:// or https:// URL"),
])
def test_a_config_the_daemon_would_refuse_is_refused_before_anything_is_launched(host, make_plan, url, why):
    with pytest.raises(UserDataError) as caught:
        build_user_data(host, make_plan(provider_api_url=url))
    message = str(caught.value)
    assert "config key 'provider_api_url'" in message and why in message and "\n" not in message


def test_the_configs_that_render_are_the_ones_the_daemon_accepts(host, make_plan):
    from soong.core.bootstrap import extract_daemon_bundle
    from soong_daemon.config import parse_config

    for url in ("https://cloud.lambda.ai/api/v1", "http://127.0.0.1:8765/api/v1", "http://localhost:9/api/v1"):
        bundle = extract_daemon_bundle(build_user_data(host, make_plan(provider_api_url=url)))
        assert parse_config(bundle.config).provider_api_url == url
