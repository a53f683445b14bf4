"""``soong-daemon --config FILE [--role all|web|enforcer]``: validate, then serve and/or enforce.

Roles:

* ``all`` (the default, for where no systemd runs: the local sandbox, tests):
  gunicorn serves the API and its master starts and supervises the enforcer
  as a child process (``soong_daemon.server``).
* ``enforcer``: only the enforcement loop, in this process. An instance runs it
  as its own unit, ``soong-enforcer.service``, started before the web server and
  independent of it: a taken port or a crashing web server never stops it.
* ``web``: only the API under gunicorn, no enforcer child
  (``soong-daemon.service`` on an instance, next to the enforcer unit).
"""

from __future__ import annotations

import argparse
import sys

from soong_daemon import __version__
from soong_daemon.config import ConfigError, DaemonConfig, load_config
from soong_daemon.secretfile import read_secret

EXIT_CONFIG = 2
ROLES = ("all", "web", "enforcer")


def _state_dir(config: DaemonConfig) -> None:
    try:
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"config key 'state_dir': cannot create {config.state_dir}: {exc.strerror}") from None


def check_startup(path: str) -> DaemonConfig:
    """Load the config and check both secret files and the state folder; raise ConfigError naming the key.

    With ``api_key_delivery: ssh`` the API key file may be missing (soong delivers it
    after boot; the daemon reads it at every API call and /status says it lacks it).
    """
    config = load_config(path)
    read_secret(config.token_file, "token_file")
    if config.api_key_delivery != "ssh" or config.api_key_file.exists():
        read_secret(config.api_key_file, "api_key_file")
    _state_dir(config)
    return config


def check_enforcer_startup(path: str) -> DaemonConfig:
    """What the enforcer alone needs before it starts: a valid config and its state folder.

    The API key file is not required here: the enforcer reads it for every call,
    logs loudly while it cannot, and keeps enforcing from its state meanwhile.
    """
    config = load_config(path)
    _state_dir(config)
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``soong-daemon`` console script."""
    parser = argparse.ArgumentParser(
        prog="soong-daemon",
        description="soong's on-instance status daemon: enforces the lease, idle timeout and hard limit.")
    parser.add_argument("--config", required=True, metavar="FILE", help="the daemon's YAML configuration")
    parser.add_argument("--role", choices=ROLES, default="all",
                        help="all: the API plus the enforcer it supervises (default); enforcer: only the "
                             "enforcement loop (its own systemd unit); web: only the API")
    parser.add_argument("--check", action="store_true", help="only validate the configuration and secret files")
    parser.add_argument("--version", action="version", version=f"soong-daemon {__version__}")
    args = parser.parse_args(argv)
    try:
        config = check_enforcer_startup(args.config) if args.role == "enforcer" else check_startup(args.config)
    except ConfigError as exc:
        print(f"soong-daemon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"soong-daemon: configuration {args.config} is valid")
        return 0
    if args.role == "enforcer":
        import logging

        from soong_daemon.enforcer import enforce

        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
        return enforce(config)
    from soong_daemon.server import DaemonApplication

    DaemonApplication(config, str(config.source_file), with_enforcer=args.role == "all").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
