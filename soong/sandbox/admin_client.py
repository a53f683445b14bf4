"""A small client of the emulator's control API (``/_emulator``), as the sandbox uses it.

The admin token travels in the ``X-Emulator-Token`` header; it is never logged.
"""

from __future__ import annotations

from typing import Any

from soong.sandbox.errors import SandboxError

TIMEOUT = 5.0


class EmulatorAdmin:
    """Reads instances and user data, and changes settings, of one running emulator.

    :param base_url: ``http://127.0.0.1:PORT`` (without ``/api/v1``).
    """

    def __init__(self, base_url: str, admin_token: str | None) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False  # loopback only: never through a proxy
        if admin_token:
            self._session.headers["X-Emulator-Token"] = admin_token

    @property
    def api_url(self) -> str:
        """The emulated Lambda API's base URL."""
        return self.base_url + "/api/v1"

    def _call(self, method: str, path: str, json: Any = None, timeout: float = TIMEOUT) -> Any:
        import requests

        try:
            resp = self._session.request(method, f"{self.base_url}/_emulator{path}", json=json, timeout=timeout)
        except requests.RequestException as exc:
            raise SandboxError(f"the emulator at {self.base_url} did not answer ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            raise SandboxError(f"the emulator refused {method} /_emulator{path}: HTTP {resp.status_code}")
        if resp.status_code == 204:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether the emulator answers its health check."""
        try:
            return bool(self._call("GET", "/health", timeout=timeout))
        except SandboxError:
            return False

    def instances(self) -> list[dict[str, Any]]:
        """Every instance ever launched (gone ones too), with the emulator's internal fields."""
        return self._call("GET", "/instances")

    def user_data(self, instance_id: str) -> str | None:
        """The user data an instance was launched with (None when it had none)."""
        return self._call("GET", f"/instances/{instance_id}/user_data")

    def requests_log(self, since: int = 0) -> list[dict[str, Any]]:
        """The emulator's log of API requests (method, path, status, instance ids...) after ``since``."""
        return self._call("GET", f"/requests?since={since}")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change emulator settings (``boot_delay``, ...)."""
        return self._call("PATCH", "/config", settings)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> "EmulatorAdmin":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
