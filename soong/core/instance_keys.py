"""SGLang's per-instance API key: what clients send as ``Authorization: Bearer <key>`` (``OPENAI_API_KEY``).

Every instance gets its own key, written into its user data for SGLang alone
(``/etc/soong-sglang/api-key``, 0600, SGLang's user). soong keeps no copy: the key
is derived from the profile's daemon token, which stays in the keyring, and the
instance's unique launch name (``<name>-<token>``)::

    key = base64url(HMAC-SHA256(daemon_token, "soong-sglang-api-key:" + launch_name))

so every soong command of the profile (``start``'s readiness check, ``tunnel
api-key``, ``status``) computes the same key for the same instance, adopted ones
included, and nothing new has to be stored or cleaned up. HMAC is one-way: the key
(which model code on the instance and every OpenAI client the user configures may
see) reveals neither the daemon token nor any other instance's key. Rotating the
daemon token changes the keys soong computes; instances launched before keep theirs
(and their daemons keep the old token too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

_LABEL = b"soong-sglang-api-key:"


def sglang_api_key(daemon_token: str, launch_name: str) -> str:
    """The key of the instance launched as ``launch_name`` (43 URL-safe characters)."""
    if not daemon_token or not launch_name:
        raise ValueError("the SGLang API key needs the daemon token and the instance's launch name")
    digest = hmac.new(daemon_token.encode("utf-8"), _LABEL + launch_name.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def launch_name_of(context: Any, instance: Any) -> str | None:
    """The name ``instance`` was launched with: the ledger's record first (a rename at the provider
    does not change it), else the provider's name."""
    try:
        from soong.core.ledger import Ledger

        record = Ledger.for_context(context).get(instance.id)
    except Exception:  # no ledger yet, or unreadable: the provider's name is the same one
        record = None
    return (record.launch_name if record is not None else None) or getattr(instance, "name", None) or None


def sglang_api_key_for(context: Any, instance: Any) -> str:
    """The SGLang API key of ``instance`` for this profile (registered so that it is masked in output).

    Raises :class:`~soong.core.errors.SecretError` without a daemon token and
    :class:`~soong.core.errors.NotFoundError` for an instance without a name.
    """
    from soong.core.errors import NotFoundError
    from soong.core.redact import register_secret

    name = launch_name_of(context, instance)
    if not name:
        raise NotFoundError(f"instance {instance.id} has no name, so soong cannot tell its SGLang API key")
    key = sglang_api_key(context.secrets.require("daemon_token"), name)
    register_secret(key)
    return key
