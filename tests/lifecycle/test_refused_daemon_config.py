"""A daemon config the daemon itself would refuse stops ``soong user-data`` and ``soong start`` before any launch.

The case from the field: ``lambda.api_url`` on plain http to a remote host renders
fine, but the daemon refuses it at boot (the API key would travel unencrypted), and
the instance then runs with nothing enforcing its lease. ``start`` reaches the
emulator at such a URL through an HTTP proxy (the emulator itself answers the
absolute-form requests a proxy receives), so everything up to the launch is real.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.lifecycle.conftest import ledger

REMOTE_HTTP = "http://lambda-api.example.test/api/v1"
REASON = "config key 'provider_api_url': must use https unless it points at this machine"


def test_user_data_refuses_a_plain_http_api_url_in_one_line(run_soong, soong_env):
    result = run_soong("user-data", "--model", "mistral-7b", env={"SOONG_LAMBDA_API_URL": REMOTE_HTTP})
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert REASON in line and "status daemon would refuse" in line and "Traceback" not in result.stderr


def test_start_refuses_it_and_launches_nothing(run_soong, soong_env, emu):
    parts = urlsplit(emu.url)
    proxy = f"{parts.scheme}://{parts.netloc}"  # requests sends http:// URLs to HTTP_PROXY in absolute form;
    # loopback services (the Hugging Face stand-in) are still reached directly
    emu.clear_requests()
    result = run_soong("start", "-y", "--no-wait", env={"SOONG_LAMBDA_API_URL": REMOTE_HTTP, "HTTP_PROXY": proxy,
                                                      "http_proxy": proxy, "NO_PROXY": "127.0.0.1,localhost",
                                                      "no_proxy": "127.0.0.1,localhost"})
    assert result.returncode == 3, result.stderr
    assert REASON in result.stderr and "nothing was launched" in result.stderr
    seen = [e["path"] for e in emu.requests()]
    assert "/instance-types" in seen  # it did talk to the provider, up to the launch
    assert "/instance-operations/launch" not in seen and emu.instances() == []
    assert ledger().records(include_failed=True) == []
