"""A private OpenSSH server for tests: loopback only, its own keys, the current user logs in.

Usage::

    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    with SshServer(tmp_path / "sshd") as server:
        ...  # server.port, server.user, server.client_key, server.host_public_key

Everything lives in one folder: the host key, a client key pair whose public half
is the only authorized key, the server's config, pid file and log. ``stop()``
ends the server and every session process it started, so no ssh process outlives
a test. Linux only (it walks /proc to find session processes).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from soong.testing.net import free_port, wait_for_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


def sshd_binary() -> str | None:
    """Path of the sshd executable, or None."""
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sshd")


def sshd_unavailable() -> str | None:
    """Why a private sshd cannot run here (None when it can)."""
    if sshd_binary() is None:
        return "OpenSSH server (sshd) is not installed; install openssh-server (.ci/run does)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the OpenSSH client tool '{tool}' is not installed"
    if not Path("/proc/self").exists():
        return "the sshd test server needs /proc (Linux)"
    return None


def generate_key(path: Path, comment: str = "soong-test") -> Path:
    """Create an unencrypted ed25519 key pair at ``path`` / ``path.pub``; return ``path``."""
    path = Path(path)
    for old in (path, Path(f"{path}.pub")):
        if old.exists():
            old.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return path


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first-level first)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


class SshServer:
    """An sshd on a free 127.0.0.1 port with generated keys, for tests.

    :param directory: a folder of its own (created).
    :param user: the login user (default: whoever runs the tests).
    """

    def __init__(self, directory: Path, user: str | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user or getpass.getuser()
        self.host = "127.0.0.1"
        self.port = 0
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self._proc: subprocess.Popen | None = None

    @property
    def host_public_key(self) -> str:
        """The server's public host key line."""
        return Path(f"{self.host_key}.pub").read_text().strip()

    @property
    def client_public_key(self) -> str:
        """The authorized client key's public line."""
        return Path(f"{self.client_key}.pub").read_text().strip()

    def _write_config(self) -> None:
        self.config.write_text("\n".join([
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "StrictModes no",
            "UsePAM no",
            "AllowTcpForwarding local",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 50",
            "MaxSessions 50",
            "LoginGraceTime 30",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ]))

    def start(self) -> "SshServer":
        """Generate keys (first time), write the config and start sshd; wait until it listens."""
        binary = sshd_binary()
        if binary is None:
            raise RuntimeError(sshd_unavailable() or "sshd not found")
        if not self.host_key.exists():
            generate_key(self.host_key, "soong-test-host")
        if not self.client_key.exists():
            generate_key(self.client_key, "soong-test-client")
            self.authorized_keys.write_text(self.client_public_key + "\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        last_error = ""
        for _attempt in range(3):  # the free port may be taken before sshd binds it
            if not self.port:
                self.port = free_port()
            self._write_config()
            offset = self.log.stat().st_size if self.log.exists() else 0
            log = open(self.log, "ab")
            try:
                self._proc = subprocess.Popen([binary, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=log)
            finally:
                log.close()
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if self._proc.poll() is not None:
                        raise RuntimeError(f"sshd exited: {self.log.read_text(errors='replace')[-500:]}")
                    if f"Server listening on {self.host} port {self.port}" in self._log_since(offset):
                        wait_for_port(self.port, self.host, timeout=5)
                        return self
                    time.sleep(0.02)
                raise RuntimeError("sshd did not start listening within 10s")
            except RuntimeError as exc:
                last_error = str(exc)
                self.stop()
                self.port = 0
        raise RuntimeError(last_error)

    def _log_since(self, offset: int) -> str:
        with open(self.log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """Stop sshd and every session process under it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        below = descendants(proc.pid) if proc.poll() is None else []
        for pid in [proc.pid, *below]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in below:  # session processes are not our children: poll until gone
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
                except (ProcessLookupError, OSError):
                    break
                if state == "Z":
                    break
                time.sleep(0.02)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def restart(self) -> None:
        """Stop and start again on the same port (e.g. after :meth:`rotate_host_key`)."""
        port = self.port
        self.stop()
        self.port = port
        self.start()

    def rotate_host_key(self) -> None:
        """Give the server a new host key and restart it (a changed key for the same host)."""
        generate_key(self.host_key, "soong-test-host-rotated")
        if self._proc is not None:
            self.restart()

    def __enter__(self) -> "SshServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
