"""SSH keys and file systems of the emulated account (a part of :class:`~.state.EmulatorState`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from typing import Any

from soong.plugins.lambda_cloud.emulator import errors as E
from soong.plugins.lambda_cloud.emulator import validation as V
from soong.plugins.lambda_cloud.emulator.seed import region_json

LIVE = ("booting", "active", "unhealthy", "terminating")
USER = {"id": "emulator-user", "email": "user@example.com", "status": "active"}


class KeysAndFileSystems:
    """SSH key and file system endpoints; the state class supplies the storage and helpers."""

    lock: threading.RLock
    ssh_keys: dict[str, dict[str, Any]]
    file_systems: dict[str, dict[str, Any]]
    instances: dict[str, Any]
    clock: Any

    def _new_id(self) -> str:  # pragma: no cover - provided by EmulatorState
        raise NotImplementedError

    def _iso(self, epoch: float | None = None) -> str:  # pragma: no cover - provided by EmulatorState
        raise NotImplementedError

    def _audit(self, resource: str, action: str, ids: list[str], details: dict[str, Any] | None = None) -> None:
        raise NotImplementedError  # pragma: no cover - provided by EmulatorState

    # -- SSH keys ----------------------------------------------------------------------------------
    def _store_key(self, name: str, public_key: str, key_id: str | None = None) -> dict[str, Any]:
        key = {"id": key_id or self._new_id(), "name": name, "public_key": public_key}
        self.ssh_keys[key["id"]] = key
        return key

    def list_ssh_keys(self) -> list[dict[str, Any]]:
        """GET /ssh-keys."""
        with self.lock:
            return [dict(k) for k in self.ssh_keys.values()]

    def add_ssh_key(self, body: Any) -> dict[str, Any]:
        """POST /ssh-keys: store a public key, or generate a pair when none is given."""
        body = V.body_object(body)
        name = V.string(body, "name", required=True, min_len=1, max_len=64)
        assert name is not None
        public = V.string(body, "public_key", min_len=1, max_len=4096)
        with self.lock:
            if any(k["name"] == name for k in self.ssh_keys.values()):
                raise E.invalid_parameters(f"An SSH key named '{name}' already exists.", "Choose a different name.")
            if public is not None:
                key = self._store_key(name, V.public_key(public))
                self._audit("ssh_key", "create", [key["id"]])
                return dict(key)
            private, generated = _generate_key_pair(name)
            key = self._store_key(name, generated)
            self._audit("ssh_key", "create", [key["id"]])
            return dict(key, private_key=private)

    def delete_ssh_key(self, key_id: str) -> dict[str, Any]:
        """DELETE /ssh-keys/{id}."""
        with self.lock:
            if key_id not in self.ssh_keys:
                raise E.invalid_parameters(f"SSH key '{key_id}' does not exist.")
            del self.ssh_keys[key_id]
            self._audit("ssh_key", "delete", [key_id])
            return {}

    # -- file systems ------------------------------------------------------------------------------
    def _store_file_system(self, name: str, region: str, fs_id: str | None = None) -> dict[str, Any]:
        fs = {
            "id": fs_id or self._new_id(), "name": name, "mount_point": f"/lambda/nfs/{name}", "created": self._iso(),
            "created_by": dict(USER), "is_in_use": False, "region": region_json(region), "bytes_used": 0,
        }
        self.file_systems[fs["id"]] = fs
        return fs

    def _in_use(self, fs_id: str, now: float) -> bool:
        return any(i.status(now) in LIVE and any(m["file_system_id"] == fs_id for m in i.file_system_mounts)
                   for i in self.instances.values())

    def _fs_json(self, fs: dict[str, Any], now: float) -> dict[str, Any]:
        return dict(fs, is_in_use=self._in_use(fs["id"], now), created_by=dict(fs["created_by"]))

    def list_file_systems(self) -> list[dict[str, Any]]:
        """GET /file-systems."""
        with self.lock:
            now = self.clock.now()
            return [self._fs_json(fs, now) for fs in self.file_systems.values()]

    def create_file_system(self, body: Any) -> dict[str, Any]:
        """POST /filesystems."""
        body = V.body_object(body)
        name = V.string(body, "name", required=True, min_len=1, max_len=60, pattern=V.FILE_SYSTEM_NAME)
        region = V.region(body, "region")
        assert name is not None
        with self.lock:
            if self.config.account_status == "invalid-address":
                raise E.invalid_address()
            if any(fs["name"] == name for fs in self.file_systems.values()):
                raise E.duplicate(f"A filesystem named '{name}' already exists.")
            fs = self._store_file_system(name, region)
            self._audit("filesystem", "create", [fs["id"]])
            return self._fs_json(fs, self.clock.now())

    def delete_file_system(self, fs_id: str) -> dict[str, Any]:
        """DELETE /filesystems/{id}."""
        with self.lock:
            fs = self.file_systems.get(fs_id)
            if fs is None:
                raise E.file_system_not_found()
            if self._in_use(fs_id, self.clock.now()):
                raise E.file_system_in_use(fs["name"])
            del self.file_systems[fs_id]
            self._audit("filesystem", "delete", [fs_id])
            return {"deleted_ids": [fs_id]}


def _generate_key_pair(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair from ssh-keygen: (private PEM, public line)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise E.invalid_parameters("Key generation is not available in this emulator.",
                                   "Pass a public_key to upload an existing key.")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "key")
        safe = "".join(c for c in comment if c.isascii() and c.isprintable())[:64] or "key"
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", safe, "-f", path],
                       check=True, capture_output=True)
        with open(path, encoding="utf-8") as priv, open(path + ".pub", encoding="utf-8") as pub:
            return priv.read(), pub.read().strip()
