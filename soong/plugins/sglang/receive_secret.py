#!/usr/bin/env python3
"""soong's secret receiver: ``receive-secret NAME`` stores one secret, read from stdin, for the service that needs it.

This file is embedded as-is in the user data (``/usr/local/lib/soong/receive-secret``,
root-owned 0755) and run as root, through ``sudo -n`` over the SSH connection soong
already makes, by the command ``soong start`` (as soon as the daemon answers),
``status``, ``extend`` and ``adopt`` send to an instance that still lacks a secret.
The secret only ever travels on stdin: never on a command line, in a unit file or in
the user data. It uses the standard library only and runs on the image's Python.

Its inputs are a JSON file (``/etc/soong/secrets.json``, no secrets; ``--config``)::

    {"boot_log": "/var/log/soong-boot.log",
     "secrets": {"hf-token": {"path": "/etc/soong-sglang/hf-token", "owner": "soong-sglang",
                              "phase": "hf-token-delivered", "what": "the Hugging Face token"}}}

Only the names listed there are accepted. The value must be one line of at most
4 KiB without spaces. It is written to a new 0600 file in the target's folder (the
folder is created 0700 for the owner if missing), given to ``owner`` (``null``: left
as it is, for the sandbox), and renamed over the target, so a reader never sees half
a secret and a symlink planted at the target is replaced, never followed. Then the
boot log gets ``phase=<phase>`` (the status daemon reports delivered secrets from
it). The same value delivered again changes nothing.

Exit status: 0 stored (or already there), 2 refused (unknown name, bad value), 1 could not store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

MAX_SECRET_BYTES = 4096
EXIT_STORED, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


class Refused(Exception):
    """The request is not acceptable (exit 2)."""


def read_value(stream) -> bytes:
    """The secret from ``stream``: one line (a trailing newline is dropped), no spaces, at most 4 KiB."""
    raw = stream.read(MAX_SECRET_BYTES + 2)
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > MAX_SECRET_BYTES:
        raise Refused(f"the value is longer than {MAX_SECRET_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("the value is not UTF-8 text") from None
    if not text or any(ch.isspace() for ch in text):
        raise Refused("the value must be one non-empty word (no spaces or line breaks)")
    return raw


def _owner_ids(owner):
    if not owner:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise OSError(f"no user {owner!r} on this machine") from None
    return entry.pw_uid, entry.pw_gid


def _already_stored(path: str, value: bytes, ids) -> bool:
    """Whether ``path`` is a 0600 regular file of the right owner that holds ``value`` already."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != 0o600:
            return False
        if ids and (info.st_uid, info.st_gid) != tuple(ids):
            return False
        return os.read(fd, MAX_SECRET_BYTES + 2).rstrip(b"\n") == value
    finally:
        os.close(fd)


def store(path: str, value: bytes, owner) -> bool:
    """Write ``value`` (plus a newline) to ``path`` 0600 for ``owner``; False when it was already there."""
    ids = _owner_ids(owner)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700)
        if ids:
            os.chown(folder, *ids)
    if _already_stored(path, value, ids):
        return False
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if ids:
            os.fchown(fd, *ids)
        os.write(fd, value + b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    os.replace(temp, path)
    return True


def log_phase(boot_log: str, phase: str, message: str) -> None:
    """Append ``<ISO-8601 UTC time> phase=<phase> <message>`` to the boot log (created 0644 if missing)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fd = os.open(boot_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} phase={phase} {message}\n")


def main(argv=None, stdin=None) -> int:
    """Store the secret named on the command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="receive-secret", description="store one secret read from stdin")
    parser.add_argument("name", help="which secret (a name listed in the config)")
    parser.add_argument("--config", default="/etc/soong/secrets.json")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
        known = config.get("secrets") or {}
        if args.name not in known:
            raise Refused(f"this instance takes no secret named {args.name!r} (it takes: {', '.join(sorted(known)) or 'none'})")
        entry = known[args.name]
        value = read_value(stdin if stdin is not None else sys.stdin.buffer)
        changed = store(entry["path"], value, entry.get("owner"))
        del value
    except Refused as exc:
        print(f"receive-secret: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"receive-secret: cannot store {args.name}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    what = entry.get("what") or args.name
    if changed and entry.get("phase") and config.get("boot_log"):
        owner = entry.get("owner") or "its owner"
        try:
            log_phase(config["boot_log"], entry["phase"], f"{what} received over SSH ({entry['path']}, 0600, {owner})")
        except OSError as exc:
            print(f"receive-secret: stored, but could not write the boot log: {exc.strerror}", file=sys.stderr)
    print(f"receive-secret: {'stored' if changed else 'already had'} {what}")
    return EXIT_STORED


if __name__ == "__main__":
    sys.exit(main())
