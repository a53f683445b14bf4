"""A real keyring backend that keeps passwords in one 0600 JSON file.

For tests only: select it with ``PYTHON_KEYRING_BACKEND=soong.testing.keyring_backend.FileKeyring``
and point ``SOONG_TEST_KEYRING_FILE`` at a file in a temporary directory. It works
across processes, so subprocess tests see what in-process tests stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    """Passwords in ``$SOONG_TEST_KEYRING_FILE`` as ``{service: {user: password}}``."""

    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        value = os.environ.get("SOONG_TEST_KEYRING_FILE")
        if not value:
            raise RuntimeError("SOONG_TEST_KEYRING_FILE is not set")
        return Path(value)

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, data: dict) -> None:
        from soong.core.atomic import write_private

        write_private(self.path, json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data.setdefault(service, {})[username] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if username not in data.get(service, {}):
            raise PasswordDeleteError(username)
        del data[service][username]
        self._save(data)
