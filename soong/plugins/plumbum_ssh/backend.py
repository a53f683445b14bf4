"""The ``plumbum-ssh`` tunnel backend: OpenSSH local forwards, run through plumbum's ssh command.

A tunnel is one ``ssh -N -L ...`` process with ``ExitOnForwardFailure=yes``. ssh
runs a ``LocalCommand`` only after every local forward is bound, so the marker it
prints proves that the listeners are ssh's own (not another process that took a
port first); each local port is then proven to answer. A persistent tunnel runs
in its own session, outlives the command, and is recorded before it is waited on.
:meth:`PlumbumSshBackend.run` runs one command over a login with the same options
(how soong delivers a secret: on the command's stdin, never its command line).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from soong.core.errors import UnreachableError, UsageError
from soong.core.interfaces import TunnelBackend
from soong.core.local_ports import PortInUseError, any_free_port, port_answers, port_is_free
from soong.core.paths import private_dir
from soong.core.tunnel_state import StoredTunnel, TunnelStore, check_instance_id
from soong.core.types import Forward, RemoteResult, TunnelRecord, TunnelTarget
from soong.plugins.plumbum_ssh import diagnose, hostkeys, process
from soong.plugins.plumbum_ssh.options import SshSettings

#: What ssh prints (through LocalCommand) once all its local forwards listen.
READY_MARKER = "soong-forwards-ready"
#: How often a port chosen by the backend is re-chosen when another process takes it first.
PORT_ATTEMPTS = 3
#: ssh's own exit status when ssh itself failed (not the remote command).
SSH_FAILED = 255
#: Most output kept from a remote command.
MAX_OUTPUT = 64 * 1024


def ssh_command() -> Any:
    """plumbum's command object for the local ``ssh`` client."""
    from plumbum import CommandNotFound, local

    try:
        return local["ssh"]
    except CommandNotFound:
        raise UnreachableError("the OpenSSH client 'ssh' is not installed or not on PATH") from None


class PlumbumSshBackend(TunnelBackend):
    """Tunnels as OpenSSH local port forwards, started through plumbum."""

    name = "plumbum-ssh"
    #: Seconds to wait for a tunnel to come up (connect, authenticate, bind).
    ready_timeout = 30.0

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._children: dict[int, subprocess.Popen] = {}

    # -- helpers --------------------------------------------------------------------------
    @property
    def store(self) -> TunnelStore:
        """The profile's tunnel records."""
        return TunnelStore(self.context.paths.state_dir)

    @property
    def settings(self) -> SshSettings:
        """The SSH settings of the current configuration (no target: the user is ``ssh.user``'s)."""
        return SshSettings.from_context(self.context)

    def settings_for(self, target: TunnelTarget) -> SshSettings:
        """The SSH settings for ``target`` (its login user unless ``ssh.user`` says otherwise)."""
        return SshSettings.from_context(self.context, user=target.user)

    def command_for(self, target: TunnelTarget, forwards: Sequence[Forward]) -> list[str]:
        """The full ssh argv of a tunnel (no secret is ever part of it)."""
        settings = self.settings_for(target)
        args = ["-N", "-T", "-o", "ExitOnForwardFailure=yes", "-o", "PermitLocalCommand=yes",
                "-o", f"LocalCommand=echo {READY_MARKER}"]
        args += settings.arguments(target.instance_id)
        for fwd in forwards:
            args += ["-L", f"127.0.0.1:{fwd.local_port}:{fwd.remote_host}:{fwd.remote_port}"]
        args.append(settings.destination(target.host))
        return list(ssh_command()[tuple(args)].formulate())

    @staticmethod
    def _assign_ports(forwards: Sequence[Forward]) -> list[Forward]:
        taken: set[int] = {f.local_port for f in forwards if f.local_port}
        out = []
        for fwd in forwards:
            port = fwd.local_port
            if not port:
                port = any_free_port(avoid=taken)
                taken.add(port)
            elif not port_is_free(port):
                raise PortInUseError(port, fwd.name)
            out.append(Forward(fwd.name, port, fwd.remote_port, fwd.remote_host, "127.0.0.1"))
        return out

    def _spawn(self, argv: list[str], log_path: Path, *, persistent: bool) -> subprocess.Popen:
        """Start ssh; a persistent one in its own session, a foreground one tied to this process."""
        private_dir(log_path.parent)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, close_fds=True,
                                    start_new_session=persistent, env=dict(os.environ),
                                    preexec_fn=None if persistent else _die_with_parent)
        finally:
            os.close(fd)
        self._children[proc.pid] = proc
        return proc

    def _await_ready(self, proc: subprocess.Popen, log_path: Path, target: TunnelTarget,
                     forwards: Sequence[Forward]) -> None:
        """Wait until ssh reports its forwards bound and every local port answers; raise otherwise."""
        deadline = time.monotonic() + self.ready_timeout
        names = {f.local_port: f.name for f in forwards}
        while True:
            output = _read(log_path)
            if proc.poll() is not None:
                raise diagnose.failure_error(self.context, self.settings_for(target), output, instance_id=target.instance_id,
                                             host=target.host, port_names=names)
            if READY_MARKER in output:
                break
            if time.monotonic() > deadline:
                raise UnreachableError(f"the tunnel to {target.host} did not come up within {self.ready_timeout:g}s"
                                       f" ({diagnose.last_line(output)})")
            time.sleep(0.02)
        for fwd in forwards:
            while not port_answers(fwd.local_port, timeout=1.0):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise UnreachableError(f"local port {fwd.local_port} ({fwd.name}) of the tunnel to {target.host} "
                                           "does not answer")
                time.sleep(0.02)

    def _terminate(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._children.pop(proc.pid, None)

    def _run_until_ready(self, target: TunnelTarget, forwards: Sequence[Forward], log_path: Path,
                         on_spawn: Any = None, *, persistent: bool) -> tuple[subprocess.Popen, list[Forward], list[str]]:
        """Start ssh and wait for it; re-choose ports the backend picked if another process took one."""
        diagnose.check_key_file(self.settings)
        for attempt in range(PORT_ATTEMPTS):
            resolved = self._assign_ports(forwards)
            argv = self.command_for(target, resolved)
            proc = self._spawn(argv, log_path, persistent=persistent)
            if on_spawn is not None:
                on_spawn(proc, resolved, argv)
            try:
                self._await_ready(proc, log_path, target, resolved)
                return proc, resolved, argv
            except PortInUseError as exc:
                self._terminate(proc)
                chosen_by_us = {f.local_port for f, asked in zip(resolved, forwards, strict=True) if not asked.local_port}
                if exc.port not in chosen_by_us or attempt == PORT_ATTEMPTS - 1:
                    raise
            except BaseException:
                self._terminate(proc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the TunnelBackend interface ---------------------------------------------------------
    @contextlib.contextmanager
    def open(self, target: TunnelTarget, forwards: Sequence[Forward]) -> Iterator[list[Forward]]:
        """Forwards for the duration of a ``with`` block (ports 0 become free ones).

        The ssh process ends with the block; on Linux it also ends if this process
        is killed (parent-death signal), so a foreground tunnel is never orphaned.
        """
        check_instance_id(target.instance_id)
        log_path = self.store.dir / f".open-{target.instance_id}-{os.getpid()}-{id(self)}.log"
        proc = None
        try:
            proc, resolved, _argv = self._run_until_ready(target, forwards, log_path, persistent=False)
            yield resolved
        finally:
            if proc is not None:
                self._terminate(proc)
            with contextlib.suppress(FileNotFoundError):
                log_path.unlink()

    def start(self, target: TunnelTarget, forwards: Sequence[Forward]) -> TunnelRecord:
        """A persistent tunnel that outlives this process; recorded before it is waited on."""
        store = self.store
        with store.lock(target.instance_id):
            existing = store.load(target.instance_id)
            if existing is not None:
                if existing.backend == self.name and process.is_our_process(existing.pid, existing.command):
                    raise UsageError(f"instance {target.instance_id} already has a tunnel (pid {existing.pid})",
                                     hint=f"stop it first with 'soong tunnel stop --instance-id {target.instance_id}'")
                if existing.backend != self.name:
                    raise UsageError(f"instance {target.instance_id} already has a tunnel of backend "
                                     f"'{existing.backend}'", hint="stop it first with 'soong tunnel stop'")
                store.remove(target.instance_id)  # stale: its process is gone
            log_path = store.log_path(target.instance_id)
            started = self.context.clock()

            def record(proc: subprocess.Popen, resolved: list[Forward], argv: list[str], state: str = "starting") -> StoredTunnel:
                stored = StoredTunnel(instance_id=target.instance_id, backend=self.name, host=target.host,
                                      forwards=tuple(resolved), started_at=started, pid=proc.pid, command=tuple(argv),
                                      name=target.name, state=state, log_path=str(log_path))
                store.save(stored)
                return stored

            try:
                proc, resolved, argv = self._run_until_ready(target, forwards, log_path, on_spawn=record,
                                                             persistent=True)
            except BaseException:
                store.remove(target.instance_id)
                raise
            return record(proc, resolved, argv, state="up").to_record(alive=True)

    def _alive(self, stored: StoredTunnel) -> bool:
        if not process.is_our_process(stored.pid, stored.command):
            return False
        return all(port_answers(f.local_port, timeout=1.0) for f in stored.forwards)

    def list(self) -> list[TunnelRecord]:
        """Every tunnel of this backend; one whose process has died is reported dead and its record removed."""
        self._drop_orphaned_open_logs()
        records = []
        for stored in self.store.all():
            if stored.backend != self.name:
                continue
            if not process.is_our_process(stored.pid, stored.command):
                self._reap(stored.pid)
                self.store.remove(stored.instance_id)
                records.append(stored.to_record(alive=False))
                continue
            records.append(stored.to_record(alive=self._alive(stored)))
        return records

    def _drop_orphaned_open_logs(self) -> None:
        """Remove logs of foreground tunnels whose soong process is gone (killed before cleaning up)."""
        for log in self.store.dir.glob(".open-*.log") if self.store.dir.is_dir() else ():
            owner = log.name.split("-")[-2]
            if owner.isdigit() and not process.is_running(int(owner)):
                with contextlib.suppress(FileNotFoundError):
                    log.unlink()

    def close(self, instance_id: str) -> bool:
        """Stop the tunnel of an instance (only if its pid is still that ssh); False if there was none."""
        store = self.store
        with store.lock(instance_id):
            stored = store.load(instance_id)
            if stored is None or stored.backend != self.name:
                return False
            child = self._children.pop(stored.pid or -1, None)
            process.stop_process(stored.pid, stored.command)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
            store.remove(instance_id)
            return True

    def check(self, instance_id: str) -> bool:
        """Whether the tunnel's ssh process is alive and every local port answers."""
        stored = self.store.load(instance_id)
        return bool(stored and stored.backend == self.name and self._alive(stored))

    def run(self, target: TunnelTarget, argv: Sequence[str], *, stdin: bytes = b"",
            timeout: float = 60.0) -> RemoteResult:
        """Run ``argv`` over an SSH login (the remote shell gets it quoted); ``stdin`` goes only to its stdin."""
        import shlex

        check_instance_id(target.instance_id)
        settings = self.settings
        diagnose.check_key_file(settings)
        ssh = [str(ssh_command().executable), *settings.arguments(target.instance_id), "-T",
               settings.destination(target.host), shlex.join(argv)]
        try:
            done = subprocess.run(ssh, input=stdin, capture_output=True, timeout=timeout, env=dict(os.environ))
        except subprocess.TimeoutExpired:
            raise UnreachableError(f"the command on {target.host} did not finish within {timeout:g}s") from None
        stdout = done.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
        stderr = done.stderr[:MAX_OUTPUT].decode("utf-8", "replace")
        if done.returncode == SSH_FAILED:
            raise diagnose.failure_error(self.context, settings, stderr, instance_id=target.instance_id,
                                         host=target.host)
        return RemoteResult(done.returncode, stdout, stderr)

    def forget(self, instance_id: str) -> None:
        """Forget the host key of an ended instance (addresses get reused)."""
        hostkeys.forget_host_key(self.settings.known_hosts, instance_id)

    # -- a shell (soong ssh, soong ssh-config): see .shell -------------------------------------
    def shell_argv(self, target: TunnelTarget, command: Sequence[str] = (), *, tty: bool = False) -> list[str]:
        """The ssh command line for a shell (or ``command``) on the instance."""
        from soong.plugins.plumbum_ssh.shell import shell_argv

        return shell_argv(self.context, target, command, tty=tty)

    def diagnose(self, target: TunnelTarget) -> Exception | None:
        """Connect once; the explained failure (changed host key, refused login...), or None."""
        from soong.plugins.plumbum_ssh.shell import probe

        return probe(self.context, target)

    def write_ssh_config(self, targets: Sequence[TunnelTarget], path: Any, *, include_from: Any = None) -> list[str]:
        """Write the OpenSSH client config (one Host per target) and include it from ``include_from``."""
        from soong.plugins.plumbum_ssh.shell import write_config

        return write_config(self.context, targets, path, include_from=include_from)

    def _reap(self, pid: int | None) -> None:
        child = self._children.pop(pid or -1, None)
        if child is not None:
            child.poll()


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when soong dies (even by kill -9)."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
