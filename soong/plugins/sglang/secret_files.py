"""The user data's files for secrets delivered after boot, and SGLang's launcher.

* the receiver (:mod:`soong.plugins.sglang.receive_secret`, embedded as-is at
  :data:`~soong.core.bootstrap.SECRET_RECEIVER_PATH`, root 0755) and its inputs
  (:data:`~soong.core.bootstrap.SECRET_RECEIVER_CONFIG`, root 0644, no secrets):
  which names this instance takes, where each goes and for whom. It takes the
  Hugging Face token when SGLang waits for one, and the Lambda API key with
  ``secrets.api_key_delivery: ssh``; no other name;
* SGLang's launcher (:mod:`soong.plugins.sglang.sglang_launch`, at :data:`LAUNCHER_PATH`),
  and the unit lines that run it (:func:`launcher_lines`).
"""

from __future__ import annotations

import json
from pathlib import Path

from soong.core.bootstrap import (
    API_KEY_SECRET,
    BOOT_LOG,
    DAEMON_API_KEY_PATH,
    DAEMON_USER,
    HF_TOKEN_PATH,
    HF_TOKEN_SECRET,
    SECRET_PHASES,
    SECRET_RECEIVER_CONFIG,
    SECRET_RECEIVER_PATH,
    SGLANG_API_KEY_PATH,
    SGLANG_USER,
    LaunchPlan,
)
from soong.plugins.sglang import scripts

LAUNCHER_PATH = f"{scripts.LIB}/sglang-launch"
#: The Python SGLang is installed for (its venv); the launcher runs SGLang in-process with it.
SGLANG_PYTHON = "/opt/soong/sglang/venv/bin/python"
#: The image's own Python, for the one step that runs as root (waiting for the token): code from
#: SGLang's venv never runs as root.
IMAGE_PYTHON = "/usr/bin/python3"

_HERE = Path(__file__).resolve().parent


def receiver_text() -> str:
    """The receiver program exactly as it is embedded."""
    return (_HERE / "receive_secret.py").read_text(encoding="utf-8")


def launcher_text() -> str:
    """The SGLang launcher exactly as it is embedded."""
    return (_HERE / "sglang_launch.py").read_text(encoding="utf-8")


def receiver_config(plan: LaunchPlan) -> dict:
    """The receiver's inputs for ``plan``: only the secrets this instance waits for."""
    secrets = {}
    if plan.hf_token_expected:
        secrets[HF_TOKEN_SECRET] = {"path": HF_TOKEN_PATH, "owner": SGLANG_USER, "phase": SECRET_PHASES[HF_TOKEN_SECRET],
                                    "what": "the Hugging Face token"}
    if not plan.api_key_in_user_data:
        secrets[API_KEY_SECRET] = {"path": DAEMON_API_KEY_PATH, "owner": DAEMON_USER,
                                   "phase": SECRET_PHASES[API_KEY_SECRET], "what": "the Lambda API key"}
    return {"boot_log": BOOT_LOG, "secrets": secrets}


def receiver_files(plan: LaunchPlan) -> list[dict]:
    """``write_files`` entries of the receiver and its config."""
    config = json.dumps(receiver_config(plan), indent=1, sort_keys=True) + "\n"
    return [
        {"path": SECRET_RECEIVER_PATH, "content": receiver_text(), "owner": "root:root", "permissions": "0755"},
        {"path": SECRET_RECEIVER_CONFIG, "content": config, "owner": "root:root", "permissions": "0644"},
    ]


def launcher_lines(plan: LaunchPlan, server_args: list[str]) -> tuple[str, str]:
    """The unit's ``ExecStartPre=`` line that waits for the HF token ("" when none is expected) and the
    launcher command for ``ExecStart=`` (paths only: no secret is on either)."""
    wait = ""
    token = []
    if plan.hf_token_expected:
        token = ["--hf-token-file", HF_TOKEN_PATH]
        wait = (f"ExecStartPre=+{IMAGE_PYTHON} {LAUNCHER_PATH} --await-token --hf-token-file {HF_TOKEN_PATH} "
                f"--boot-log {BOOT_LOG}\n")
    command = [SGLANG_PYTHON, LAUNCHER_PATH, "--api-key-file", SGLANG_API_KEY_PATH, *token, "--", *server_args]
    return wait, " ".join(command)
