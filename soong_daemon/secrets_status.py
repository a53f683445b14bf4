"""The ``secrets`` part of ``GET /status``: which secrets the instance holds, and what that means.

* ``lambda_api_key``: how the key arrives (``delivery``: ``user-data`` or ``ssh``) and
  whether ``api_key_file`` holds one the daemon can use now (``present``: a regular,
  non-empty file no one else can read; it is only looked at, never read here).
  Without it the daemon cannot terminate the instance: ``can_self_terminate`` is
  false and only the client's watchdog can end it. The key is read from its file at
  every API call, so a delivered key takes effect without a restart.
* ``hf_token``: whether SGLang waits for the Hugging Face token (``expected``, a
  gated model) and whether it was ``delivered``. SGLang's folder is closed to the
  daemon's user, so delivery is read from the boot log: soong's receiver logs
  ``phase=hf-token-delivered`` when it stores the token.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from soong_daemon.config import DaemonConfig

#: The boot-log phase soong's secret receiver writes when it stores the Hugging Face token.
HF_TOKEN_PHASE = "hf-token-delivered"


def usable_secret_file(path: Path) -> bool:
    """Whether ``path`` is a non-empty regular file (not a link) that only its owner can read."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0 and not info.st_mode & 0o077


def secrets_part(config: DaemonConfig, boot: dict[str, Any]) -> dict[str, Any]:
    """The ``secrets`` object of ``/status`` (see the module docstring)."""
    has_key = usable_secret_file(config.api_key_file)
    phases = {entry.get("phase") for entry in boot.get("phases") or [] if isinstance(entry, dict)}
    return {
        "lambda_api_key": {"delivery": config.api_key_delivery, "present": has_key},
        "hf_token": {"expected": config.hf_token_expected, "delivered": HF_TOKEN_PHASE in phases},
        "can_self_terminate": has_key,
    }
