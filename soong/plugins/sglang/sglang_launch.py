#!/usr/bin/env python3
"""soong's SGLang launcher: SGLang with its API key and Hugging Face token, and neither on a command line.

This file is embedded as-is in the user data (``/usr/local/lib/soong/sglang-launch``)
and run by SGLang's unit with SGLang's own venv Python; it uses the standard library
only. Two modes:

``sglang-launch --await-token --hf-token-file F --boot-log L`` (``ExecStartPre=+``, as root)
    when the model needs a Hugging Face token (a gated model) and ``F`` does not
    exist yet, log ``phase=sglang-waiting-token`` once to the boot log and wait until
    ``F`` appears (soong delivers it over SSH as soon as the instance's daemon
    answers). Nothing is downloaded meanwhile; if the token never comes, the idle
    shutdown ends the instance.

``sglang-launch --api-key-file K [--hf-token-file F] -- SGLANG ARGS...`` (``ExecStart=``, as SGLang's user)
    read the per-instance API key from ``K`` and the token from ``F`` (waiting for it
    too, should it still be missing), put the token in this process's environment as
    ``HF_TOKEN`` (huggingface_hub reads it there: ``_get_token_from_environment`` in
    ``huggingface_hub/utils/_auth.py``, v1.31.0, the lowest version transformers
    5.19.0, SGLang 0.5.23's pin, accepts), and run ``sglang.launch_server`` in this
    process (``runpy``) with ``--api-key <key>`` added to ``sys.argv`` here. The
    program's command line, which ``/proc/PID/cmdline`` shows to every user, holds
    only paths.

SGLang 0.5.23 logs its whole configuration at start-up (``logger.info(f"server_args=...")``
in ``sglang/srt/entrypoints/engine.py``; its ``_server_args_for_logging`` redacts only
watermark keys), so the API key would land in the journal. The launcher therefore
forks: the child becomes SGLang, and this process relays the child's standard output
and error (and those of every process SGLang starts) to its own, with each secret
replaced by ``<redacted>``. It passes the child's exit status on, so systemd's
``Restart=on-failure`` and ``$MAINPID`` work as before.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import time

#: The longest secret file read (the daemon's limit too).
MAX_SECRET_BYTES = 4096
#: What replaces a secret in SGLang's output.
REDACTED = b"<redacted>"
#: Output held back while no line ends, before it is passed on anyway.
MAX_LINE_BYTES = 65536
#: Seconds between looks for the token file.
POLL_SECONDS = 2.0
PHASE_WAITING = "sglang-waiting-token"


class LaunchError(Exception):
    """The launcher cannot start SGLang (the message says why, without any secret)."""


def read_secret(path: str) -> str:
    """The one-line secret in ``path``: a regular file (not a link) of at most 4 KiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LaunchError(f"cannot open {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LaunchError(f"{path} is not a regular file")
        raw = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise LaunchError(f"{path} is not UTF-8 text") from None
    if len(raw) > MAX_SECRET_BYTES or not value or any(ch.isspace() for ch in value):
        raise LaunchError(f"{path} must hold one secret of at most {MAX_SECRET_BYTES} bytes, no spaces")
    return value


def boot_log_line(phase: str, message: str, now: float | None = None) -> str:
    """One boot-log line: ``<ISO-8601 UTC time> phase=<phase> <message>``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp} phase={phase} {' '.join(message.split())}\n"


def append_line(path: str, line: str) -> None:
    """Append ``line`` to ``path`` (created 0644 if missing, as ``bootlog`` does)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line)


def await_file(path: str, *, on_wait, poll: float = POLL_SECONDS, sleep=time.sleep) -> None:
    """Return once ``path`` exists; call ``on_wait()`` once first if it does not."""
    if os.path.exists(path):
        return
    on_wait()
    while not os.path.exists(path):
        sleep(poll)


# -- the redacting relay ----------------------------------------------------------------------------


class Redactor:
    """Replaces secrets in a byte stream that arrives in pieces (a secret may be split between two)."""

    def __init__(self, secrets, max_line: int = MAX_LINE_BYTES) -> None:
        self.secrets = sorted({s.encode("utf-8") for s in secrets if s}, key=len, reverse=True)
        self.max_line = max_line
        self.keep = max((len(s) for s in self.secrets), default=1) - 1
        self.pending = b""

    def _clean(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret, REDACTED)
        return data

    def feed(self, chunk: bytes) -> bytes:
        """What may be passed on after ``chunk``: whole lines, or a long line's head."""
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > self.max_line:
            data = self._clean(data)  # a complete secret cannot remain; only a secret's head can end it
            cut = len(data) - self.keep
        out, self.pending = data[:cut], data[cut:]
        return self._clean(out)

    def finish(self) -> bytes:
        """Everything still held back."""
        out, self.pending = self._clean(self.pending), b""
        return out


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return  # nowhere to write to any more: drop it, never the secret
        data = data[written:]


def relay(read_fd: int, out_fd: int, redactor: Redactor) -> None:
    """Copy ``read_fd`` to ``out_fd`` through ``redactor`` until every writer has closed it."""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        _write_all(out_fd, redactor.feed(chunk))
    _write_all(out_fd, redactor.finish())


def exit_status(wait_status: int) -> int:
    """The exit status a shell would report for a child's wait status (128 + signal when killed)."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def fork_redacted(secrets) -> int:
    """Fork; in the child (return 0) stdout and stderr go through a pipe the parent relays redacted.

    The parent relays until the pipe closes, reaps the child and returns its pid
    (the caller then exits with :func:`exit_status`).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        return 0
    os.close(write_fd)
    # Stop signals reach the whole service (systemd's KillMode=control-group): SGLang handles them;
    # the relay keeps going until SGLang's output ends, so its last words are kept.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    relay(read_fd, 1, Redactor(secrets))
    os.close(read_fd)
    return pid


def wait_child(pid: int) -> int:
    """Reap ``pid``; its exit status."""
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            return exit_status(status)
        except InterruptedError:
            continue


# -- the two modes ------------------------------------------------------------------------------------


def await_token(args) -> int:
    """``--await-token``: log the waiting phase once if the token is missing, and wait for it."""
    def waiting() -> None:
        append_line(args.boot_log, boot_log_line(
            PHASE_WAITING, "SGLang waits for the Hugging Face token (a gated model); soong delivers it over SSH "
                           "once the daemon answers ('soong status' does it too); nothing downloads until then"))
        print(f"sglang-launch: waiting for {args.hf_token_file}", file=sys.stderr, flush=True)

    await_file(args.hf_token_file, on_wait=waiting, poll=args.poll)
    return 0


def launch(args, server_args) -> int:
    """Read the secrets, then run SGLang in a child whose output is relayed redacted."""
    key = read_secret(args.api_key_file)
    secrets = [key]
    if args.hf_token_file:
        await_file(args.hf_token_file, poll=args.poll, on_wait=lambda: print(
            f"sglang-launch: waiting for {args.hf_token_file}", file=sys.stderr, flush=True))
        token = read_secret(args.hf_token_file)
        os.environ["HF_TOKEN"] = token
        secrets.append(token)
    pid = fork_redacted(secrets)
    if pid:
        return wait_child(pid)
    import runpy

    sys.argv = [args.module, *server_args, "--api-key", key]
    del key
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    return 0


def main(argv=None) -> int:
    """Parse the launcher's own options (before ``--``) and run the chosen mode."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, server_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="sglang-launch", description="start SGLang with its API key and HF token")
    parser.add_argument("--api-key-file", help="the per-instance API key SGLang requires of every client")
    parser.add_argument("--hf-token-file", help="the Hugging Face token (a gated model): waited for, then HF_TOKEN")
    parser.add_argument("--await-token", action="store_true", help="only wait for --hf-token-file (run as root)")
    parser.add_argument("--boot-log", default="/var/log/soong-boot.log")
    parser.add_argument("--module", default="sglang.launch_server", help=argparse.SUPPRESS)
    parser.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(own)
    try:
        if args.await_token:
            if not args.hf_token_file:
                parser.error("--await-token needs --hf-token-file")
            return await_token(args)
        if not args.api_key_file:
            parser.error("--api-key-file is required")
        return launch(args, server_args)
    except LaunchError as exc:
        print(f"sglang-launch: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
