"""Before launching (and billing): can the instance download the model from Hugging Face?

Gated repositories (the meta-llama ones, Mistral's) serve their files only to a
token whose account has been granted access; without one SGLang fails on the
instance long after billing started. :func:`check_model_access` asks the Hub's
API first, with the endpoints ``huggingface_hub`` itself uses (huggingface_hub
v1.28.0, ``src/huggingface_hub/hf_api.py``):

- ``GET {endpoint}/api/models/{repo_id}`` (``HfApi.model_info``): the model's
  metadata, public even for gated repositories, with ``gated``: ``false``,
  ``"auto"`` or ``"manual"`` (``ModelInfo.gated``);
- ``GET {endpoint}/api/models/{repo_id}/auth-check`` with ``Authorization: Bearer
  <token>`` (``HfApi.auth_check``): 200 when the token may download the files; 403
  with ``X-Error-Code: GatedRepo`` when access was not granted, 401 for a missing or
  invalid token (``utils/_http.py``, ``hf_raise_for_status``).

Outcomes: not gated, or gated and granted: proceed. Gated without a token: refuse
(exit 4) and say how to set one. Gated and the token is refused or not granted:
refuse (exit 5) and point at the model page to request access. No such repository:
refuse (exit 8). The Hub unreachable, slow or answering 5xx: warn in one line and
proceed, because the check only protects a launch that would otherwise fail on the
instance; it must never be the reason a launch of a public model cannot happen
while the Hub has an outage (SGLang may still find the weights in the persistent
file system's cache).

The endpoint is ``huggingface.endpoint`` when set, else ``$HF_ENDPOINT`` (as
``huggingface_hub.constants.ENDPOINT`` reads it), else ``https://huggingface.co``.
``huggingface.check_gated: false`` switches the check off (the sandbox profile does).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping
from urllib.parse import quote

from soong.core.errors import EXIT_API, NotFoundError, SecretError, SoongError

#: huggingface_hub's default (``constants._HF_DEFAULT_ENDPOINT``).
DEFAULT_ENDPOINT = "https://huggingface.co"
#: Seconds one Hub request may take before the check gives up (and proceeds with a warning).
TIMEOUT_SECONDS = 10.0


class HubAccessError(SoongError):
    """The Hugging Face token may not download a gated model (refused or not granted)."""

    exit_code = EXIT_API


@dataclasses.dataclass(frozen=True)
class HubAccess:
    """What the Hub said about one repository."""

    repo_id: str
    gated: bool | None  # None: unknown (the Hub could not be asked)
    granted: bool | None  # None: not asked (not gated, or unknown)
    warning: str | None = None


def endpoint_from(config_value: str | None, env: Mapping[str, str]) -> str:
    """The Hub endpoint: the config key, else ``$HF_ENDPOINT``, else huggingface.co (no trailing slash)."""
    value = config_value or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return value.rstrip("/")


def model_page(endpoint: str, repo_id: str) -> str:
    """The model's page, where access to a gated model is requested."""
    return f"{endpoint}/{repo_id}"


def _get(session: Any, url: str, token: str | None, timeout: float) -> Any:
    headers = {"Accept": "application/json", "User-Agent": "soong"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return session.get(url, headers=headers, timeout=timeout, allow_redirects=True)


def query_access(repo_id: str, token: str | None, *, endpoint: str = DEFAULT_ENDPOINT,
                 timeout: float = TIMEOUT_SECONDS, session: Any = None) -> HubAccess:
    """Ask the Hub whether ``token`` (or no token) may download ``repo_id``.

    :raises SecretError: gated and no token (exit 4).
    :raises HubAccessError: gated and the token is invalid or not granted access (exit 5).
    :raises NotFoundError: the Hub has no such model, or it is private to others (exit 8).
    :returns: the answer; ``warning`` is set (and nothing raised) when the Hub could not be asked.
    """
    import requests

    session = session or requests.Session()
    base = f"{endpoint}/api/models/{quote(repo_id, safe='/')}"
    unreachable = f"could not ask the Hugging Face Hub ({endpoint}) whether {repo_id} is gated"
    try:
        info = _get(session, base, token, timeout)
    except requests.RequestException as exc:
        return HubAccess(repo_id, None, None, f"{unreachable}: {type(exc).__name__}; launching without the check")
    if info.status_code == 401 and token and "invalid" in (info.headers.get("X-Error-Message") or "").lower():
        raise HubAccessError(f"Hugging Face refused the hf_token ({info.headers.get('X-Error-Message')})",
                             hint="set a valid one with 'soong secrets set hf_token'")
    if info.status_code in (401, 404):
        raise NotFoundError(f"Hugging Face has no model {repo_id} that this account can see ({model_page(endpoint, repo_id)})",
                            hint="check the model's hf_path")
    if info.status_code != 200:
        return HubAccess(repo_id, None, None, f"{unreachable}: HTTP {info.status_code}; launching without the check")
    try:
        gated = bool(info.json().get("gated"))
    except (ValueError, AttributeError):
        return HubAccess(repo_id, None, None, f"{unreachable}: not a JSON answer; launching without the check")
    if not gated:
        return HubAccess(repo_id, False, None)
    if not token:
        raise SecretError(f"{repo_id} is gated on Hugging Face and no hf_token is set",
                          hint=f"request access at {model_page(endpoint, repo_id)}, then 'soong secrets set hf_token'")
    try:
        check = _get(session, f"{base}/auth-check", token, timeout)
    except requests.RequestException as exc:
        return HubAccess(repo_id, True, None, f"{unreachable}: {type(exc).__name__}; launching without the check")
    if check.status_code == 200:
        return HubAccess(repo_id, True, True)
    if check.status_code in (401, 403, 404):
        reason = "the hf_token is invalid" if check.status_code == 401 else "the hf_token's account has no access"
        raise HubAccessError(f"{repo_id} is gated on Hugging Face and {reason}",
                             hint=f"request access at {model_page(endpoint, repo_id)}, or set another token with "
                                  "'soong secrets set hf_token'")
    return HubAccess(repo_id, True, None, f"{unreachable}: HTTP {check.status_code}; launching without the check")


def check_model_access(context: Any, spec: Any, *, warn: Callable[[str], None]) -> HubAccess | None:
    """The start flow's check of ``spec``'s repository with the ``hf_token`` secret (see the module docstring).

    Returns None when ``huggingface.check_gated`` is off; raises as :func:`query_access`.
    """
    if not context.config.get("huggingface.check_gated"):
        return None
    endpoint = endpoint_from(context.config.get("huggingface.endpoint"), os.environ)
    access = query_access(spec.hf_path, context.secrets.get("hf_token") or None, endpoint=endpoint)
    if access.warning:
        warn(f"warning: {access.warning}")
    return access
