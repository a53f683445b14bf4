"""Warnings before a shutdown: the log, a ``wall`` message to logged-in users, an optional webhook."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import Any, Mapping

import requests

log = logging.getLogger("soong_daemon.notify")

WEBHOOK_TIMEOUT = 5.0


class Notifier:
    """Sends a warning everywhere it is configured to go; a failing channel never blocks the others.

    The webhook URL is treated as a secret (chat webhooks are): it never appears in a log line.
    """

    def __init__(self, webhook_url: str = "", *, wall: bool = True) -> None:
        self.webhook_url = webhook_url
        self.wall = wall

    def warn(self, message: str, payload: Mapping[str, Any]) -> None:
        """Log ``message``, broadcast it with wall and POST ``payload`` (plus the message) to the webhook."""
        log.warning("%s", message)
        if self.wall:
            self._wall(message)
        if self.webhook_url:
            self._webhook(message, payload)

    @staticmethod
    def _wall(message: str) -> None:
        wall = shutil.which("wall")
        if wall is None:
            return
        try:
            subprocess.run([wall], input=f"soong: {message}\n", text=True, timeout=10, check=False, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("wall failed: %s", exc.__class__.__name__)

    def _webhook(self, message: str, payload: Mapping[str, Any]) -> None:
        body = dict(payload)
        body["message"] = message
        try:
            response = requests.post(self.webhook_url, json=body, timeout=WEBHOOK_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            log.error("shutdown webhook failed: %s", exc.__class__.__name__)
            return
        if response.status_code >= 400:
            log.error("shutdown webhook answered HTTP %s", response.status_code)
