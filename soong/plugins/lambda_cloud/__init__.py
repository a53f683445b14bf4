"""The built-in Lambda Cloud provider plugin (``lambda``).

It registers :class:`~soong.plugins.lambda_cloud.provider.LambdaProvider`
through ``soong_register_providers``. The client, rate limiter and parsers live
beside it; the API emulator used by the tests ships in :mod:`.emulator`.
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_providers(register):
    """Register the ``lambda`` provider."""
    from soong.plugins.lambda_cloud.provider import LambdaProvider

    register(LambdaProvider)
