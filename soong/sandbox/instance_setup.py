"""From an instance's rendered user data to what the sandbox runs for it.

The sandbox host reads the real user data an instance was launched with, takes
the status daemon's config and secrets out of it
(:func:`soong.core.bootstrap.extract_daemon_bundle`) and changes only what must
differ on one shared machine (:func:`local_daemon_config`). Whether a model
server runs, and which model it serves, also comes from the user data
(:func:`served_model`).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from typing import Any, Mapping

from soong.core.bootstrap import (
    SECRET_RECEIVER_CONFIG,
    SECRET_RECEIVER_PATH,
    SGLANG_API_KEY_PATH,
    SGLANG_PORT,
    cloud_config_of,
    extract_daemon_bundle,
    file_content,
)
from soong.sandbox.layout import InstanceFiles

#: The daemon port when the rendered ``bind`` cannot be read.
DEFAULT_DAEMON_PORT = 8080
#: The daemon's check interval (real seconds) is divided by the time scale, but not below this.
MIN_CHECK_INTERVAL = 0.5

_BIND_PORT = re.compile(r":(\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class InstancePlan:
    """What the sandbox starts for one instance (secrets kept out of ``repr``)."""

    daemon_config: dict[str, Any]
    daemon_port: int
    token: str
    api_key: str | None  # None: delivered over SSH after boot (secrets.api_key_delivery: ssh)
    model: str | None  # the model the stand-in claims to serve; None: no model server in the user data
    notes: tuple[str, ...] = ()
    preflight_program: str | None = None  # the user data's preflight program; None: the user data has none
    preflight_config: dict[str, Any] | None = None  # its inputs, with local paths
    sglang_api_key: str | None = None  # SGLang's per-instance key, which the stand-in requires
    receiver_program: str | None = None  # the user data's secret receiver; None: it has none
    receiver_config: dict[str, Any] | None = None  # its inputs, with local paths

    def __repr__(self) -> str:
        return (f"InstancePlan(daemon_port={self.daemon_port}, model={self.model!r}, notes={self.notes!r}, "
                "token=<redacted>, api_key=<redacted>, sglang_api_key=<redacted>)")

    @property
    def hf_token_expected(self) -> bool:
        """Whether the model server waits for the Hugging Face token (delivered over SSH)."""
        return bool(self.daemon_config.get("hf_token_expected"))


def daemon_port(bind: Any) -> int:
    """The port of a rendered ``bind`` (``127.0.0.1:8080``), or the default."""
    match = _BIND_PORT.search(str(bind or ""))
    if match and 0 < int(match.group(1)) < 65536:
        return int(match.group(1))
    return DEFAULT_DAEMON_PORT


def served_model(document: str) -> str | None:
    """The ``--model-path`` the user data starts SGLang with (what ``/v1/models`` lists); None without SGLang."""
    for entry in cloud_config_of(document).get("write_files", []) or []:
        try:
            text = file_content(entry).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            continue
        if "sglang-launch" not in text and "sglang.launch_server" not in text:
            continue
        for line in text.splitlines():
            if "--model-path" not in line:
                continue
            try:
                words = shlex.split(line.split("=", 1)[1] if line.startswith("ExecStart=") else line)
            except ValueError:
                words = line.split()
            if "--model-path" in words and words.index("--model-path") + 1 < len(words):
                return words[words.index("--model-path") + 1]
    return None


def local_daemon_config(rendered: Mapping[str, Any], *, ip: str, port: int, files: InstanceFiles, api_url: str,
                        time_scale: float, model_server: bool) -> tuple[dict[str, Any], list[str]]:
    """The rendered daemon config with only what must differ on this machine changed; and notes on it.

    * ``bind``: the instance's own loopback address instead of 127.0.0.1 (every
      instance has one), so it is reached like a real instance's address;
    * ``state_dir``, ``boot_log``, ``token_file``, ``api_key_file``: files under the
      sandbox's run folder instead of system paths;
    * ``provider_api_url``: the emulator;
    * ``sglang_metrics_url``: the stand-in on the instance's address (off when the
      user data runs no SGLang); ``n8n_metrics_url`` off (n8n is not emulated);
    * ``time_scale`` from ``soong sandbox up --time-scale``, and the check interval
      shortened by the same factor;
    * ``forwarded_ports`` off: on one shared machine a connection to port 8000 of
      any instance would count as activity for all of them (the stand-in's
      counters still show every request);
    * ``poweroff_command`` off, ``wall`` off, no gunicorn control socket: a
      sandbox daemon must never power off, write to the terminals of, or share a
      socket on, the machine it shares with the user.
    """
    config = dict(rendered)
    notes = []
    if rendered.get("n8n_metrics_url"):
        notes.append("n8n is not run in the sandbox; its activity source is off")
    interval = float(rendered.get("check_interval_seconds") or 30.0)
    config.update({
        "bind": f"{ip}:{port}",
        "state_dir": str(files.daemon_state),
        "boot_log": str(files.boot_log),
        "token_file": str(files.token),
        "api_key_file": str(files.api_key),
        "provider_api_url": api_url,
        "sglang_metrics_url": f"http://{ip}:{SGLANG_PORT}/metrics" if model_server else "",
        "n8n_metrics_url": "",
        "time_scale": float(time_scale),
        "check_interval_seconds": max(MIN_CHECK_INTERVAL, interval / float(time_scale)) if time_scale > 1 else interval,
        "forwarded_ports": [],
        "poweroff_command": [],
        "wall": False,
        "control_socket": "",
    })
    return config, notes


#: Where the user data writes the preflight program and its inputs (see soong.plugins.sglang.preflight_part).
PREFLIGHT_PROGRAM = "/usr/local/lib/soong/preflight.py"
PREFLIGHT_CONFIG = "/etc/soong/preflight.json"


def rendered_preflight(document: str) -> tuple[str, dict[str, Any]] | None:
    """The preflight program and its inputs as the user data writes them; None when it has no preflight."""
    import json

    files = {entry.get("path"): entry for entry in cloud_config_of(document).get("write_files", []) or []}
    if PREFLIGHT_PROGRAM not in files or PREFLIGHT_CONFIG not in files:
        return None
    try:
        config = json.loads(file_content(files[PREFLIGHT_CONFIG]).decode("utf-8"))
        program = file_content(files[PREFLIGHT_PROGRAM]).decode("utf-8")
    except (ValueError, TypeError):
        return None
    return (program, config) if isinstance(config, dict) else None


def local_preflight_config(rendered: Mapping[str, Any], files: InstanceFiles) -> dict[str, Any]:
    """The rendered preflight inputs with only what must differ on this machine changed.

    The boot log and the failure marker go to the instance's folder; there is no
    persistent file system; and since the sandbox downloads no weights, the disk
    check asks for no room (``weights_gib`` and ``disk_margin_gib`` 0). Python,
    glibc, the driver (from the stand-in nvidia-smi), the GPU count and memory are
    checked exactly as rendered.
    """
    config = dict(rendered)
    config.update({"boot_log": str(files.boot_log), "failed_marker": str(files.preflight_marker),
                   "fs_mount": None, "local_data_dir": str(files.data_dir), "weights_gib": 0.0,
                   "disk_margin_gib": 0.0})
    return config


def rendered_receiver(document: str, files: InstanceFiles) -> tuple[str, dict[str, Any]] | None:
    """The user data's secret receiver and its inputs, localised: each secret goes to the instance's
    folder (the daemon's API key to the file its daemon reads, the Hugging Face token to ``hf-token``),
    owned by whoever runs the sandbox, and the phases go to the instance's boot log."""
    import json

    entries = {entry.get("path"): entry for entry in cloud_config_of(document).get("write_files", []) or []}
    if SECRET_RECEIVER_PATH not in entries or SECRET_RECEIVER_CONFIG not in entries:
        return None
    try:
        program = file_content(entries[SECRET_RECEIVER_PATH]).decode("utf-8")
        config = json.loads(file_content(entries[SECRET_RECEIVER_CONFIG]).decode("utf-8"))
    except (ValueError, TypeError):
        return None
    local = {"hf-token": str(files.hf_token), "lambda-api-key": str(files.api_key)}
    secrets = {name: dict(entry, path=local[name], owner=None)
               for name, entry in (config.get("secrets") or {}).items() if name in local}
    return program, {"boot_log": str(files.boot_log), "secrets": secrets}


def rendered_sglang_key(document: str) -> str | None:
    """SGLang's API key as the user data writes it (None: the document runs no SGLang)."""
    for entry in cloud_config_of(document).get("write_files", []) or []:
        if entry.get("path") == SGLANG_API_KEY_PATH:
            return file_content(entry).decode("utf-8").strip() or None
    return None


def plan_instance(document: str, *, ip: str, files: InstanceFiles, api_url: str, time_scale: float) -> InstancePlan:
    """Everything the sandbox needs to run an instance launched with ``document`` at ``ip``.

    Raises :class:`~soong.core.bootstrap.UserDataError` when the document has no soong daemon.
    """
    bundle = extract_daemon_bundle(document)
    model = served_model(document)
    port = daemon_port(bundle.config.get("bind"))
    config, notes = local_daemon_config(bundle.config, ip=ip, port=port, files=files, api_url=api_url,
                                        time_scale=time_scale, model_server=model is not None)
    receiver = rendered_receiver(document, files)
    extra = {"sglang_api_key": rendered_sglang_key(document) if model else None,
             "receiver_program": receiver[0] if receiver else None, "receiver_config": receiver[1] if receiver else None}
    preflight = rendered_preflight(document)
    if preflight is None:
        return InstancePlan(config, port, bundle.token, bundle.api_key, model, tuple(notes), **extra)
    notes.append("the preflight runs with a stand-in nvidia-smi and checks no disk room (no weights are downloaded)")
    return InstancePlan(config, port, bundle.token, bundle.api_key, model, tuple(notes), preflight[0],
                        local_preflight_config(preflight[1], files), **extra)
