"""``soong-daemon --config FILE``: validate everything, then serve under gunicorn."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from soong_daemon import __version__
from soong_daemon.config import ConfigError, DaemonConfig, load_config
from soong_daemon.secretfile import read_secret

EXIT_CONFIG = 2


def check_startup(path: str) -> DaemonConfig:
    """Load the config and check both secret files and the state folder; raise ConfigError naming the key.

    With ``api_key_delivery: ssh`` the API key file may be missing (soong delivers it
    after boot; the daemon reads it at every API call and /status says it lacks it).
    """
    config = load_config(path, now=datetime.now(timezone.utc))
    read_secret(config.token_file, "token_file")
    if config.api_key_delivery != "ssh" or config.api_key_file.exists():
        read_secret(config.api_key_file, "api_key_file")
    try:
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"config key 'state_dir': cannot create {config.state_dir}: {exc.strerror}") from None
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``soong-daemon`` console script."""
    parser = argparse.ArgumentParser(
        prog="soong-daemon",
        description="soong's on-instance status daemon: enforces the lease, idle timeout and hard limit.")
    parser.add_argument("--config", required=True, metavar="FILE", help="the daemon's YAML configuration")
    parser.add_argument("--check", action="store_true", help="only validate the configuration and secret files")
    parser.add_argument("--version", action="version", version=f"soong-daemon {__version__}")
    args = parser.parse_args(argv)
    try:
        config = check_startup(args.config)
    except ConfigError as exc:
        print(f"soong-daemon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"soong-daemon: configuration {args.config} is valid")
        return 0
    from soong_daemon.server import DaemonApplication

    DaemonApplication(config, str(config.source_file)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
