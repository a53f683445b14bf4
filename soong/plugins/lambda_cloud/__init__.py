"""The built-in Lambda Cloud provider plugin (``lambda``).

It registers :class:`~soong.plugins.lambda_cloud.provider.LambdaProvider`
through ``soong_register_providers`` and declares its ``lambda.*`` config keys
and its ``lambda_api_key`` secret (:mod:`.settings`). The client, rate limiter
and parsers live beside it; the API emulator used by the tests ships in
:mod:`.emulator`.
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_providers(register):
    """Register the ``lambda`` provider."""
    from soong.plugins.lambda_cloud.provider import LambdaProvider

    register(LambdaProvider)


@hookimpl
def soong_config_keys(register):
    """Declare the ``lambda.*`` keys."""
    from soong.plugins.lambda_cloud.settings import KEYS

    for key in KEYS:
        register(key)


@hookimpl
def soong_secrets(register):
    """Declare ``lambda_api_key``."""
    from soong.plugins.lambda_cloud.settings import SECRETS

    for secret in SECRETS:
        register(secret)
