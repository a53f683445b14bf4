"""Where the sandbox keeps its run files, all under the ``sandbox`` profile's state folder.

::

    $XDG_STATE_HOME/soong/sandbox/          the sandbox profile (config, state, data, cache)
      state/sandbox/                        the sandbox machinery (this layout's ``root``)
        lock                                held while up/down run
        credentials.json    (0600)          emulator API key and admin token
        settings.json                       time scale, boot delay, IP base, stand-in NVIDIA driver
        seed.json                           what the emulator was seeded with
        ssh/id_ed25519{,.pub}               the seeded SSH key
        emulator.json / emulator.log        the emulator's process record and log
        host.json / host.log                the sandbox host's process record and log
        host-heartbeat.json                 the host's last sign of life
        instances/<id>/                     one folder per instance the host served:
          instance.json                     ip, status, shutdown reason seen, errors
          daemon.yaml, token, lambda-api-key (0600) the daemon's rewritten config and secrets (the key
                                            only once delivered, with secrets.api_key_delivery: ssh)
          sglang-api-key, hf-token (0600)   the stand-in's API key; the Hugging Face token once delivered
          receive-secret.py, secrets.json   the user data's secret receiver and its (localised) inputs
          daemon-state/, boot.log           the daemon's state folder and boot log
          daemon.json / daemon.log          the daemon's process record and log
          preflight.py, preflight.json      the user data's preflight program and its (localised) inputs
          bin/nvidia-smi                    the stand-in nvidia-smi the preflight reads the GPUs from
          standin.json / standin.log        the model stand-in's process record and log
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

from soong.core.atomic import write_private
from soong.core.paths import Paths, private_dir

#: The profile the sandbox runs as.
SANDBOX_PROFILE = "sandbox"
#: Environment variable set in every process the sandbox starts (to find them all in /proc).
MARKER_ENV = "SOONG_SANDBOX_ROOT"


@dataclasses.dataclass(frozen=True)
class InstanceFiles:
    """The files of one sandbox instance."""

    root: Path

    @property
    def record(self) -> Path:
        """``instance.json``: what the host knows about the instance."""
        return self.root / "instance.json"

    @property
    def daemon_config(self) -> Path:
        """The daemon's rewritten YAML config."""
        return self.root / "daemon.yaml"

    @property
    def token(self) -> Path:
        """The daemon token file (0600)."""
        return self.root / "token"

    @property
    def api_key(self) -> Path:
        """The API key file the daemon terminates with (0600)."""
        return self.root / "lambda-api-key"

    @property
    def sglang_api_key(self) -> Path:
        """SGLang's per-instance API key from the user data, which the stand-in requires (0600)."""
        return self.root / "sglang-api-key"

    @property
    def hf_token(self) -> Path:
        """Where the Hugging Face token lands when soong delivers it (0600)."""
        return self.root / "hf-token"

    @property
    def receiver_program(self) -> Path:
        """The secret receiver, exactly as the user data writes it."""
        return self.root / "receive-secret.py"

    @property
    def receiver_config(self) -> Path:
        """The receiver's inputs from the user data, with local paths."""
        return self.root / "secrets.json"

    @property
    def daemon_state(self) -> Path:
        """The daemon's state folder (kept across daemon restarts, so the lease is kept)."""
        return self.root / "daemon-state"

    @property
    def boot_log(self) -> Path:
        """The boot log the daemon reports phases from."""
        return self.root / "boot.log"

    def process_record(self, component: str) -> Path:
        """The process record of ``daemon`` or ``standin``."""
        return self.root / f"{component}.json"

    def log(self, component: str) -> Path:
        """The log of ``daemon`` or ``standin``."""
        return self.root / f"{component}.log"

    @property
    def preflight_program(self) -> Path:
        """The preflight program, exactly as the user data writes it."""
        return self.root / "preflight.py"

    @property
    def preflight_config(self) -> Path:
        """The preflight's inputs from the user data, with local paths."""
        return self.root / "preflight.json"

    @property
    def preflight_marker(self) -> Path:
        """Written by the preflight when it fails."""
        return self.root / "preflight.failed"

    @property
    def gpu_bin(self) -> Path:
        """The folder holding the stand-in ``nvidia-smi`` (first on the preflight's PATH)."""
        return self.root / "bin"

    @property
    def data_dir(self) -> Path:
        """Stands in for the instance's local data folder (where the weights would go)."""
        return self.root / "data"


@dataclasses.dataclass(frozen=True)
class SandboxLayout:
    """The sandbox's run folder (``root``) and everything in it."""

    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SandboxLayout":
        """The layout for the ``sandbox`` profile of ``env`` (default: this process's environment)."""
        paths = Paths.from_env(os.environ if env is None else env, SANDBOX_PROFILE)
        return cls(paths.state_dir / "sandbox")

    def ensure(self) -> "SandboxLayout":
        """Create the folders (0700)."""
        private_dir(self.instances_dir)
        return self

    @property
    def lock(self) -> Path:
        """Held while ``up`` or ``down`` runs."""
        return self.root / "lock"

    @property
    def credentials(self) -> Path:
        """Emulator API key and admin token (0600)."""
        return self.root / "credentials.json"

    @property
    def settings(self) -> Path:
        """Time scale, boot delay and IP base of the running sandbox."""
        return self.root / "settings.json"

    @property
    def seed(self) -> Path:
        """The emulator's seed file."""
        return self.root / "seed.json"

    @property
    def ssh_key(self) -> Path:
        """The private half of the seeded SSH key."""
        return self.root / "ssh" / "id_ed25519"

    def process_record(self, component: str) -> Path:
        """The process record of ``emulator`` or ``host``."""
        return self.root / f"{component}.json"

    def log(self, component: str) -> Path:
        """The log of ``emulator`` or ``host``."""
        return self.root / f"{component}.log"

    @property
    def heartbeat(self) -> Path:
        """The sandbox host's last sign of life (pid, time, passes, last error)."""
        return self.root / "host-heartbeat.json"

    @property
    def instances_dir(self) -> Path:
        """One folder per instance the host has served."""
        return self.root / "instances"

    def instance(self, instance_id: str) -> InstanceFiles:
        """The files of one instance (the id must be a plain name)."""
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError(f"invalid instance id {instance_id!r}")
        return InstanceFiles(self.instances_dir / instance_id)

    def instance_ids(self) -> list[str]:
        """Ids of every instance folder, oldest first."""
        try:
            entries = [p for p in self.instances_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        return [p.name for p in sorted(entries, key=lambda p: p.stat().st_mtime)]


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (0600)."""
    write_private(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
