"""Health checks of a running SGLang server: ``GET /health`` and ``GET /v1/models``.

SGLang answers ``/health`` with HTTP 200 once the model is loaded and the
scheduler runs (503 or no connection before), and ``/v1/models`` with the
OpenAI-style list of served models (by default the model path, e.g.
``meta-llama/Llama-3.1-8B-Instruct``). These helpers are used through the
SSH tunnel or on the instance itself; every wait takes an injectable clock.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from soong.core.errors import SoongError, UnreachableError


@dataclasses.dataclass(frozen=True)
class ServerHealth:
    """What one check of an SGLang server found."""

    healthy: bool
    models: tuple[str, ...] = ()
    detail: str = ""

    def serves(self, model: str | None) -> bool:
        """Healthy and serving ``model`` (any model when None)."""
        return self.healthy and (model is None or model in self.models)


def _url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def is_healthy(base_url: str, *, timeout: float = 5.0, api_key: str | None = None) -> bool:
    """True when ``GET /health`` answers 200; False on any other status or no connection."""
    import requests

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = requests.get(_url(base_url, "/health"), timeout=timeout, headers=headers)
    except requests.RequestException:
        return False
    return response.status_code == 200


def served_models(base_url: str, *, timeout: float = 5.0, api_key: str | None = None) -> list[str]:
    """The ids ``GET /v1/models`` lists.

    :raises UnreachableError: no connection, a timeout or a non-200 answer.
    :raises SoongError: an answer that is not an OpenAI model list.
    """
    import requests

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = _url(base_url, "/v1/models")
    try:
        response = requests.get(url, timeout=timeout, headers=headers)
    except requests.RequestException as exc:
        raise UnreachableError(f"SGLang at {base_url} did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise UnreachableError(f"SGLang at {base_url} answered {response.status_code} to /v1/models")
    try:
        data = response.json()["data"]
        return [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError):
        raise SoongError(f"SGLang at {base_url} sent a malformed /v1/models answer") from None


def check(base_url: str, *, timeout: float = 5.0, api_key: str | None = None) -> ServerHealth:
    """One combined check: ``/health`` then, when healthy, ``/v1/models``."""
    if not is_healthy(base_url, timeout=timeout, api_key=api_key):
        return ServerHealth(False, detail="/health is not answering 200 yet")
    try:
        models = served_models(base_url, timeout=timeout, api_key=api_key)
    except SoongError as exc:
        return ServerHealth(False, detail=str(exc))
    return ServerHealth(True, tuple(models), "ok")


def wait_until_ready(base_url: str, *, model: str | None = None, timeout: float = 600.0, interval: float = 5.0,
                     api_key: str | None = None, clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> ServerHealth:
    """Poll until the server is healthy and serves ``model``; UnreachableError after ``timeout`` seconds."""
    deadline = clock() + timeout
    while True:
        state = check(base_url, timeout=min(5.0, max(interval, 0.5)), api_key=api_key)
        if state.serves(model):
            return state
        if clock() >= deadline:
            if state.healthy:
                raise UnreachableError(f"SGLang at {base_url} serves {', '.join(state.models) or 'nothing'}, "
                                       f"not {model}, after {timeout:g}s")
            raise UnreachableError(f"SGLang at {base_url} was not ready after {timeout:g}s ({state.detail})")
        sleep(interval)
