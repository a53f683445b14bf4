"""The sandbox profile can never reach a real account, whatever the environment says."""

import pytest

from soong.core.context import Context
from soong.core.errors import ConfigError


def test_sandbox_ignores_real_secrets_in_the_environment(isolated_env):
    env = {"HOME": str(isolated_env), "LAMBDA_API_KEY": "real-account-key-123456"}
    assert Context(profile="sandbox", env=env).secrets.get("lambda_api_key") is None
    assert Context(env=env).secrets.get("lambda_api_key") == "real-account-key-123456"


def test_sandbox_refuses_a_remote_api_url(isolated_env):
    env = {"HOME": str(isolated_env), "SOONG_LAMBDA_API_URL": "https://cloud.lambda.ai/api/v1"}
    with pytest.raises(ConfigError, match="only talks to a local emulator"):
        Context(profile="sandbox", env=env).config.get("lambda.api_url")
    assert Context(profile="sandbox", env={"HOME": str(isolated_env)}).config.get("lambda.api_url").startswith("http://127.")


def test_cli_refuses_too(run_soong):
    result = run_soong("--profile", "sandbox", "models", "list", env={"SOONG_LAMBDA_API_URL": "https://cloud.lambda.ai/api/v1"})
    assert result.returncode == 3 and "only talks to a local emulator" in result.stderr
