"""The ``sandbox`` profile's own config file and secrets, written by ``soong sandbox up``.

The built-in profile (``BUILTIN_PROFILES["sandbox"]`` in :mod:`soong.core.config`)
holds what never changes: the ``direct`` tunnel backend, no n8n, no client-side
request spacing, and an API URL that reaches nothing until the sandbox is up.
``up`` writes what it knows only at run time into the profile's own file under
``$XDG_STATE_HOME/soong/sandbox/config/``: the emulator's URL, the seeded SSH key
and file system, the region, and ``tunnel.direct_exec`` (this Python running
:mod:`soong.sandbox.instance_exec`, how the ``direct`` backend delivers a secret to
a sandbox instance, since there is no SSH). The emulated API key and a daemon token go to the
profile's secret store (keyring service ``soong-sandbox``); without a usable
keyring the profile uses ``secrets.backend: file`` inside its own folder.
"""

from __future__ import annotations

import secrets as _random
from pathlib import Path
from typing import Any, Mapping

from soong.sandbox.layout import SANDBOX_PROFILE
from soong.sandbox.seed import FILESYSTEM_NAME, SANDBOX_REGION, SSH_KEY_NAME

#: Environment variables that would override what the sandbox profile sets (they win over any profile).
OVERRIDING_ENV = ("LAMBDA_API_KEY", "SOONG_DAEMON_TOKEN", "SOONG_LAMBDA_API_URL", "SOONG_TUNNEL_BACKEND",
                  "SOONG_LAMBDA_SSH_KEY_NAME", "SOONG_LAMBDA_FILESYSTEM_NAME", "SOONG_LAMBDA_DEFAULT_REGION",
                  "SOONG_SECRETS_BACKEND")


def sandbox_context(env: Mapping[str, str]) -> Any:
    """A :class:`~soong.core.context.Context` of the sandbox profile for ``env``."""
    from soong.core.context import Context

    return Context(profile=SANDBOX_PROFILE, env=env)


def overriding_env(env: Mapping[str, str]) -> list[str]:
    """The variables set in ``env`` that would win over the sandbox profile's settings."""
    return [name for name in OVERRIDING_ENV if env.get(name)]


def instance_exec_command() -> list[str]:
    """``tunnel.direct_exec`` of the sandbox profile: this Python running :mod:`soong.sandbox.instance_exec`."""
    import sys

    return [sys.executable, "-m", "soong.sandbox.instance_exec"]


def write_profile(env: Mapping[str, str], *, api_url: str, ssh_key_path: Path | None) -> Path:
    """Write the run-time settings into the sandbox profile's own config file; return its path."""
    from soong.core.config import load_config, save_config
    from soong.core.declarations import schema

    context = sandbox_context(env)
    keys = schema(context.plugins)  # the lambda.* keys are the Lambda plugin's
    config = load_config(context.paths, env=env, profile=SANDBOX_PROFILE, schema=keys)
    changes: dict[str, Any] = {
        "lambda.api_url": api_url,
        "lambda.ssh_key_name": SSH_KEY_NAME,
        "lambda.filesystem_name": FILESYSTEM_NAME,
        "lambda.default_region": SANDBOX_REGION,
        "tunnel.direct_exec": instance_exec_command(),
    }
    if ssh_key_path is not None:
        changes["ssh.key_path"] = str(ssh_key_path)
    if config.source("secrets.backend") == "default" and not context.secrets.keyring_available():
        changes["secrets.backend"] = "file"
    save_config(config.updated_file_values(changes), context.paths.config_file, schema=keys)
    return context.paths.config_file


def store_secrets(env: Mapping[str, str], api_key: str) -> None:
    """Store a fresh emulator's API key and a new daemon token in the sandbox profile.

    Called only when a new emulator starts: instances of an emulator that is
    still running keep the token they were launched with.
    """
    store = sandbox_context(env).secrets
    store.set("lambda_api_key", api_key)
    store.set("daemon_token", _random.token_urlsafe(32))


def forget_secrets(env: Mapping[str, str]) -> None:
    """Remove the sandbox profile's API key and daemon token (they are worthless once the emulator is gone)."""
    from soong.core.errors import SecretError

    store = sandbox_context(env).secrets
    for name in ("lambda_api_key", "daemon_token"):
        try:
            store.delete(name)
        except SecretError:
            pass
