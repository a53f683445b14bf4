"""Secrets (the daemon token, a provider's API key, ...) kept in the system keyring.

Core knows :data:`KNOWN_SECRETS`; plugins declare theirs (a :class:`Secret`, with
its environment variable and a one-line doc) through the ``soong_secrets`` hook,
for example the Lambda plugin's ``lambda_api_key`` (:mod:`soong.core.declarations`).
Lookup order for a secret: its environment variable, then the configured backend
(``secrets.backend``: ``keyring`` by default, or an opt-in 0600 plaintext file).
Every value read is registered with :mod:`soong.core.redact` so it never appears
in output. Headless machines usually have no keyring backend; that is detected up
front and explained instead of failing deep inside keyring.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from pathlib import Path
from typing import Mapping

from soong.core.atomic import write_private
from soong.core.errors import SecretError
from soong.core.redact import register_secret

LOG = logging.getLogger(__name__)

#: Core's secrets and the environment variable that overrides each (plugins declare more).
KNOWN_SECRETS: dict[str, str] = {
    "daemon_token": "SOONG_DAEMON_TOKEN",
    "hf_token": "HF_TOKEN",
}
#: What core's secrets are for (``soong secrets list``, docs/configuration.md).
KNOWN_SECRET_DOCS: dict[str, str] = {
    "daemon_token": "Bearer token of every instance's status daemon (soong configure makes one).",
    "hf_token": "Hugging Face token for gated models.",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret a plugin declares: its name, the environment variable that overrides it, one line of doc.

    ``ask``: ``soong configure`` asks for it (hidden input; Enter keeps a stored value).
    """

    name: str
    env_var: str
    doc: str
    ask: bool = False

HEADLESS_HELP = (
    "no usable keyring backend on this machine; either set the secret's environment variable, "
    "install an encrypted file backend (pip install keyrings.alt, then set PYTHON_KEYRING_BACKEND="
    "keyrings.alt.file.EncryptedKeyring), or opt in to a 0600 plaintext file with "
    "'soong config set secrets.backend file'"
)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid secret name, else raise SecretError."""
    if not _NAME.match(name):
        raise SecretError(f"invalid secret name {name!r} (lower-case letters, digits and '_')")
    return name


def env_var_for(name: str, declared: Mapping[str, str] | None = None) -> str:
    """The environment variable that overrides secret ``name`` (``declared``: plugins' secrets and their variables)."""
    return KNOWN_SECRETS.get(name) or (declared or {}).get(name) or "SOONG_SECRET_" + name.upper()


class SecretStore:
    """Read and write secrets for one keyring service (``soong``, or ``soong-<profile>``).

    :param backend: ``keyring`` or ``file``.
    :param file_path: the plaintext file used when ``backend == "file"``.
    :param warn_plaintext: warn (once) when secrets are read from the plaintext file; a
        throwaway profile such as the sandbox turns this off.
    :param declared: secrets plugins declared, by name, with their environment variable.
    """

    def __init__(self, *, service: str = "soong", backend: str = "keyring", file_path: Path | None = None,
                 env: Mapping[str, str] | None = None, warn_plaintext: bool = True,
                 declared: Mapping[str, str] | None = None) -> None:
        import os

        self.service = service
        self.backend = backend
        self.file_path = file_path
        self._env = os.environ if env is None else env
        self._warned = not warn_plaintext
        self.declared = dict(declared or {})

    def env_var(self, name: str) -> str:
        """The environment variable that overrides secret ``name``."""
        return env_var_for(name, self.declared)

    def known(self) -> dict[str, str]:
        """Every secret core and the plugins know, with its environment variable."""
        return {**KNOWN_SECRETS, **self.declared}

    # -- keyring --------------------------------------------------------------------
    def keyring_available(self) -> bool:
        """Whether a real (non-fail, non-null) keyring backend is selected."""
        try:
            import keyring
            from keyring.backends import fail
        except Exception:  # pragma: no cover - keyring is a hard dependency
            return False
        kr = keyring.get_keyring()
        if isinstance(kr, fail.Keyring):
            return False
        chainer = getattr(kr, "backends", None)
        if chainer is not None and not chainer:
            return False
        return not type(kr).__module__.startswith("keyring.backends.null")

    def backend_description(self) -> str:
        """A short human description of where secrets are stored."""
        if self.backend == "file":
            return f"plaintext file {self.file_path}"
        if not self.keyring_available():
            return "none (no keyring backend)"
        import keyring

        kr = keyring.get_keyring()
        return f"keyring ({type(kr).__module__}.{type(kr).__name__})"

    def _require_keyring(self) -> None:
        if not self.keyring_available():
            raise SecretError(HEADLESS_HELP)

    # -- file backend -------------------------------------------------------------------
    def _read_file(self) -> dict[str, str]:
        if self.file_path is None or not self.file_path.exists():
            return {}
        if not self._warned:
            print(f"soong: warning: secrets are stored in plaintext in {self.file_path} (secrets.backend: file)", file=sys.stderr)
            self._warned = True
        import yaml

        try:
            data = yaml.safe_load(self.file_path.read_text(encoding="utf-8")) or {}
        except Exception:
            raise SecretError(f"cannot read the secrets file {self.file_path}; fix or remove it") from None
        if not isinstance(data, dict):
            raise SecretError(f"the secrets file {self.file_path} is not a mapping; fix or remove it")
        return {str(k): str(v) for k, v in data.items()}

    def _write_file(self, data: dict[str, str]) -> None:
        import yaml

        assert self.file_path is not None
        write_private(self.file_path, yaml.safe_dump(data, default_flow_style=False))

    # -- public ---------------------------------------------------------------------------
    def source(self, name: str) -> str | None:
        """Where ``name`` would be read from now: ``env``, ``keyring``, ``file`` or None."""
        if self._env.get(self.env_var(name)):
            return "env"
        if self._stored(name) is not None:
            return self.backend
        return None

    def _stored(self, name: str) -> str | None:
        if self.backend == "file":
            return self._read_file().get(name)
        if not self.keyring_available():
            return None
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(self.service, name)
        except KeyringError as exc:
            raise SecretError(f"the keyring could not be read: {type(exc).__name__}") from None

    def get(self, name: str) -> str | None:
        """The secret's value, or None when it is not set anywhere."""
        check_name(name)
        value = self._env.get(self.env_var(name)) or self._stored(name)
        register_secret(value)
        return value

    def require(self, name: str) -> str:
        """The secret's value, or a SecretError that says how to set it."""
        value = self.get(name)
        if value:
            return value
        if self.backend == "keyring" and not self.keyring_available():
            raise SecretError(f"secret '{name}' is not set and {HEADLESS_HELP}")
        raise SecretError(
            f"secret '{name}' is not set; run 'soong secrets set {name}' or set ${self.env_var(name)}"
        )

    def set(self, name: str, value: str) -> None:
        """Store a secret in the configured backend."""
        check_name(name)
        if not value or "\n" in value:
            raise SecretError(f"refusing to store an empty or multi-line value for '{name}'")
        register_secret(value)
        if self.backend == "file":
            data = self._read_file()
            data[name] = value
            self._write_file(data)
            return
        self._require_keyring()
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(self.service, name, value)
        except KeyringError as exc:
            raise SecretError(f"the keyring refused to store '{name}': {type(exc).__name__}") from None

    def delete(self, name: str) -> bool:
        """Remove a stored secret; False when it was not stored."""
        check_name(name)
        if self.backend == "file":
            data = self._read_file()
            if name not in data:
                return False
            del data[name]
            self._write_file(data)
            return True
        self._require_keyring()
        import keyring
        from keyring.errors import PasswordDeleteError

        try:
            keyring.delete_password(self.service, name)
        except PasswordDeleteError:
            return False
        return True
