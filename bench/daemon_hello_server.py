"""A bare Falcon hello-world under exactly the gunicorn settings the status daemon uses.

The baseline of ``bench/daemon_load.sh``: ``python bench/daemon_hello_server.py CONFIG``
serves ``GET /status`` -> ``{"hello": "world"}`` with the daemon's own
``gunicorn_settings(config)`` (bind, workers, sync worker class, no control socket).
"""

from __future__ import annotations

import sys

import falcon
from gunicorn.app.base import BaseApplication

from soong_daemon.config import load_config
from soong_daemon.server import gunicorn_settings


class Hello:
    """The smallest JSON resource."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer a constant document."""
        resp.media = {"hello": "world"}


class HelloApplication(BaseApplication):
    """gunicorn embedded with the daemon's settings, serving the hello-world app."""

    def __init__(self, settings: dict) -> None:
        self.settings = settings
        super().__init__(usage=None, prog="daemon-bench-hello")

    def load_config(self) -> None:
        """Apply the daemon's settings."""
        for key, value in self.settings.items():
            self.cfg.set(key, value)

    def load(self) -> falcon.App:
        """The hello-world app."""
        app = falcon.App()
        app.add_route("/status", Hello())
        return app


if __name__ == "__main__":
    HelloApplication(gunicorn_settings(load_config(sys.argv[1]))).run()
