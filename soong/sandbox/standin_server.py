"""Serve the model stand-in (:mod:`soong.sandbox.model_standin`) under gunicorn.

``python -m soong.sandbox.standin_server --bind 127.10.0.2:8000 --model NAME [--api-key-file FILE]``.
One sync worker on purpose: the counters live in that worker's memory. No
control socket, so any number of stand-ins run side by side. The API key comes
from a 0600 file, never the command line; with one, requests without it get 401
as from SGLang.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence


def gunicorn_settings(bind: str) -> dict[str, Any]:
    """The gunicorn settings of a stand-in bound to ``bind``."""
    return {
        "bind": [bind], "workers": 1, "worker_class": "sync", "timeout": 30, "graceful_timeout": 2,
        "keepalive": 0, "accesslog": None, "errorlog": "-", "loglevel": "warning",
        "control_socket_disable": True, "proc_name": "soong-model-standin",
    }


def read_key_file(path: str) -> str:
    """The one-line key in ``path`` (ValueError when empty)."""
    with open(path, encoding="utf-8") as handle:
        key = handle.read().strip()
    if not key or any(ch.isspace() for ch in key):
        raise ValueError(f"{path} does not hold one key")
    return key


def serve(bind: str, model: str, api_key: str | None = None) -> None:
    """Run the stand-in for ``model`` on ``bind`` until told to stop (requiring ``api_key`` if given)."""
    from gunicorn.app.base import BaseApplication

    from soong.sandbox.model_standin import create_app

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(bind).items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app(model, api_key=api_key)

    _Server().run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``--bind`` and ``--model`` and serve."""
    parser = argparse.ArgumentParser(prog="soong-model-standin",
                                     description="A stand-in for SGLang's HTTP API (an echo; not a model).")
    parser.add_argument("--bind", required=True, metavar="HOST:PORT")
    parser.add_argument("--model", required=True, metavar="NAME", help="the model name it claims to serve")
    parser.add_argument("--api-key-file", metavar="FILE", help="require this key, as SGLang's --api-key does")
    args = parser.parse_args(argv)
    key = read_key_file(args.api_key_file) if args.api_key_file else None
    print(f"soong-model-standin: serving a stand-in for {args.model} on http://{args.bind}"
          + (" (API key required)" if key else ""), file=sys.stderr, flush=True)
    serve(args.bind, args.model, key)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
