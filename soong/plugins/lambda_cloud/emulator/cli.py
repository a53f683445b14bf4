"""``soong-lambda-emulator``: serve the Lambda Cloud API emulator with gunicorn on loopback.

It runs ONE sync worker on purpose: the emulator keeps its state (instances,
rate-limit windows, fault sequences, the request log) in that worker's memory,
and a single serialised worker gives every client one consistent account, as
the real API does. See docs/lambda.md for every flag.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from soong.plugins.lambda_cloud.emulator.config import EmulatorConfig, RateLimit

API_KEY_ENV = "SOONG_EMULATOR_API_KEY"
ADMIN_TOKEN_ENV = "SOONG_EMULATOR_ADMIN_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``soong-lambda-emulator``."""
    p = argparse.ArgumentParser(
        prog="soong-lambda-emulator",
        description="Serve an emulated Lambda Cloud API (/api/v1) and its test-control API (/_emulator).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; keep it on loopback)")
    p.add_argument("--port", type=int, default=8765, help="port to bind (default 8765)")
    p.add_argument("--api-key", help=f"the API key clients must send (or ${API_KEY_ENV}, or --api-key-file)")
    p.add_argument("--api-key-file", type=Path, help="read the API key from this file")
    p.add_argument("--admin-token", help=f"require this X-Emulator-Token on /_emulator (or ${ADMIN_TOKEN_ENV})")
    p.add_argument("--boot-delay", type=float, default=2.0, help="seconds from launch to active (default 2)")
    p.add_argument("--terminate-delay", type=float, default=1.0, help="seconds terminating before terminated (default 1)")
    p.add_argument("--gone-delay", type=float, default=1.0, help="seconds terminated before gone from the list (default 1)")
    p.add_argument("--restart-delay", type=float, default=1.0, help="seconds booting after a restart (default 1)")
    p.add_argument("--frozen-clock", action="store_true", help="start with the emulated clock frozen (move it via /_emulator/clock)")
    p.add_argument("--default-capacity", type=int, default=10,
                   help="launchable instances per type and region that the seed lists with capacity (default 10)")
    p.add_argument("--capacity", action="append", default=[], metavar="TYPE:REGION=N",
                   help="set the capacity of one type in one region (N: a number or 'unlimited'); repeatable")
    p.add_argument("--rate-limit", default="1/1", metavar="N/SECONDS",
                   help="general limit: N requests in any SECONDS window, or 'off' (default 1/1)")
    p.add_argument("--launch-rate-limit", default="1/12", metavar="N/SECONDS",
                   help="launch limit, or 'off' (default 1/12)")
    p.add_argument("--rate-limit-style", choices=("lambda", "cloudflare"), default="lambda",
                   help="429 body: a Lambda JSON error (default) or Cloudflare's text 'error code: 1015'")
    p.add_argument("--quota", type=int, help="most instances alive at once (default: no quota)")
    p.add_argument("--account-status", choices=("active", "inactive", "invalid-address"), default="active")
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='a fault rule as JSON, e.g. \'{"path": "/instance-operations/launch", "action": "ambiguous", '
                        '"probability": 0.3}\'; repeatable')
    p.add_argument("--faults-file", type=Path, help="a JSON list of fault rules")
    p.add_argument("--seed", type=Path, help="a JSON seed file (instance types, images, capacity, keys, file systems)")
    p.add_argument("--ssh-key", action="append", default=[], metavar="NAME=PUBKEY_FILE", help="seed an SSH key; repeatable")
    p.add_argument("--file-system", action="append", default=[], metavar="NAME:REGION", help="seed a file system; repeatable")
    p.add_argument("--random-seed", type=int, help="seed for ids and fault probabilities (reproducible runs)")
    p.add_argument("--ip-base", default="127.10.0.1", help="first public IP handed to instances (default 127.10.0.1)")
    p.add_argument("--record-bodies", action="store_true", help="keep response bodies in the request log")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    return p


def _capacity(items: Sequence[str]) -> dict[str, dict[str, int | None]]:
    out: dict[str, dict[str, int | None]] = {}
    for item in items:
        try:
            left, count = item.rsplit("=", 1)
            type_name, region = left.split(":", 1)
            value = None if count.strip().lower() == "unlimited" else int(count)
        except ValueError:
            raise SystemExit(f"soong-lambda-emulator: --capacity must be TYPE:REGION=N, not {item!r}") from None
        out.setdefault(type_name, {})[region] = value
    return out


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[EmulatorConfig, dict[str, Any]]:
    """The emulator settings and seed extras described by the command line."""
    env = dict(os.environ if env is None else env)
    api_key = args.api_key or env.get(API_KEY_ENV)
    if args.api_key_file:
        api_key = args.api_key_file.read_text(encoding="utf-8").strip()
    if not api_key:
        raise SystemExit(f"soong-lambda-emulator: give the API key with --api-key, --api-key-file or ${API_KEY_ENV}")
    try:
        general, launch = RateLimit.parse(args.rate_limit), RateLimit.parse(args.launch_rate_limit)
    except ValueError as exc:
        raise SystemExit(f"soong-lambda-emulator: {exc}") from None
    config = EmulatorConfig(
        api_key=api_key, boot_delay=args.boot_delay, terminate_delay=args.terminate_delay, gone_delay=args.gone_delay,
        restart_delay=args.restart_delay, general_limit=general, launch_limit=launch,
        rate_limit_style=args.rate_limit_style, default_capacity=args.default_capacity, quota=args.quota,
        account_status=args.account_status, ip_base=args.ip_base, record_bodies=args.record_bodies,
        random_seed=args.random_seed, admin_token=args.admin_token or env.get(ADMIN_TOKEN_ENV) or None,
    )
    extra: dict[str, Any] = {"capacity": _capacity(args.capacity)}
    keys = []
    for item in args.ssh_key:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"soong-lambda-emulator: --ssh-key must be NAME=PUBKEY_FILE, not {item!r}")
        keys.append({"name": name, "public_key": Path(path).read_text(encoding="utf-8").strip()})
    if keys:
        extra["ssh_keys"] = keys
    systems = []
    for item in args.file_system:
        name, _, region = item.partition(":")
        if not name or not region:
            raise SystemExit(f"soong-lambda-emulator: --file-system must be NAME:REGION, not {item!r}")
        systems.append({"name": name, "region": region})
    if systems:
        extra["file_systems"] = systems
    return config, extra


def build_app(args: argparse.Namespace, env: dict[str, str] | None = None) -> Any:
    """The configured emulator WSGI app for ``args``."""
    from soong.plugins.lambda_cloud.emulator.app import Emulator
    from soong.plugins.lambda_cloud.emulator.clock import EmulatorClock
    from soong.plugins.lambda_cloud.emulator.seed import load_seed

    config, extra = config_from_args(args, env)
    seed = load_seed(args.seed, extra)
    clock = EmulatorClock()
    if args.frozen_clock:
        clock.freeze()
    app = Emulator(config, seed=seed, clock=clock)
    rules: list[Any] = []
    if args.faults_file:
        rules.extend(json.loads(args.faults_file.read_text(encoding="utf-8")))
    rules.extend(json.loads(text) for text in args.fault)
    for rule in rules:
        app.faults.add(rule)
    return app


def serve(app: Any, host: str, port: int, log_level: str = "warning") -> None:
    """Serve ``app`` with gunicorn: one sync worker, no worker timeout, no control socket."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}", "workers": 1, "worker_class": "sync", "timeout": 0,
                "graceful_timeout": 2, "keepalive": 0, "loglevel": log_level, "accesslog": None,
                "control_socket_disable": True, "proc_name": "soong-lambda-emulator",
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    _Server().run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``soong-lambda-emulator``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_app(args)
    except (OSError, ValueError) as exc:
        print(f"soong-lambda-emulator: {exc}", file=sys.stderr)
        return 2
    print(f"soong-lambda-emulator: serving http://{args.host}:{args.port}/api/v1 (admin: /_emulator)", file=sys.stderr,
          flush=True)
    serve(app, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
