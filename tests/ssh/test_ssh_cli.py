"""``soong ssh``: remote commands, exit status, explained failures, host keys, an interactive session."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from soong.plugins.plumbum_ssh import forget_instance
from soong.plugins.plumbum_ssh.diagnose import public_key_fingerprint
from soong.plugins.plumbum_ssh.hostkeys import known_keys
from soong.testing.sshd import SshServer
from tests.conftest import VENV_BIN


def test_a_remote_command_prints_and_passes_its_status_through(lab, run_soong):
    result = run_soong("ssh", "--", "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    failing = run_soong("ssh", "--", "echo out; echo err >&2; exit 7")
    assert failing.returncode == 7
    assert failing.stdout == "out\n" and "err" in failing.stderr
    assert "soong: error" not in failing.stderr


def test_stdin_reaches_the_remote_command(lab, run_soong):
    result = run_soong("ssh", "--", "tr", "a-z", "A-Z", input="quiet words\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "QUIET WORDS\n"


def test_the_first_connection_records_the_host_key_under_the_instance(lab, run_soong):
    assert run_soong("ssh", "--", "true").returncode == 0
    lines = known_keys(lab.known_hosts, "inst-one")
    assert len(lines) == 1
    assert lines[0].split()[0] == "soong-inst-one"
    assert lines[0].split()[1:3] == lab.sshd.host_public_key.split()[:2]
    assert oct(lab.known_hosts.stat().st_mode & 0o777) == "0o600"


def test_a_changed_host_key_is_refused(lab, run_soong, monkeypatch, tmp_path):
    with SshServer(tmp_path / "rotating-sshd") as server:
        monkeypatch.setenv("SOONG_SSH_PORT", str(server.port))
        monkeypatch.setenv("SOONG_SSH_KEY_PATH", str(server.client_key))
        assert run_soong("ssh", "--", "true").returncode == 0
        trusted = lab.known_hosts.read_text()

        server.rotate_host_key()
        refused = run_soong("ssh", "--", "echo", "should-not-run")
        assert refused.returncode == 255
        assert "should-not-run" not in refused.stdout
        assert "WARNING: the SSH host key of instance inst-one (127.0.0.1) is not the one soong trusted" in refused.stderr
        assert f"ssh-keygen -R soong-inst-one -f {lab.known_hosts}" in refused.stderr
        assert lab.known_hosts.read_text() == trusted  # the new key was not accepted

        tunnel = run_soong("tunnel", "start", "--sglang-port", "0", "--n8n-port", "0", "--status-port", "0")
        assert tunnel.returncode == 6
        assert "is not the one soong trusted" in tunnel.stderr
        assert not (lab.tunnels_dir / "inst-one.json").exists()

        # once the instance is gone its key is forgotten; the next one is trusted on first use
        assert forget_instance(lab.context(), "inst-one") == 1
        again = run_soong("ssh", "--", "echo", "again")
        assert again.returncode == 0 and again.stdout == "again\n"
        assert known_keys(lab.known_hosts, "inst-one")[0].split()[2] == server.host_public_key.split()[1]


def test_a_refused_login_names_the_key_used_and_the_accounts_keys(lab, run_soong, monkeypatch):
    monkeypatch.setenv("SOONG_SSH_KEY_PATH", str(lab.other_key))
    result = run_soong("ssh", "--", "echo", "hi")
    assert result.returncode == 255
    other = public_key_fingerprint((lab.other_key.parent / f"{lab.other_key.name}.pub").read_text())
    authorized = public_key_fingerprint(lab.sshd.client_public_key)
    assert f"key used: {lab.other_key} ({other})" in result.stderr
    assert f"ci-key ({authorized}, launched with)" in result.stderr
    assert f"old-laptop ({other}, matches)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_key_file_is_a_config_error(lab, run_soong, monkeypatch, tmp_path):
    monkeypatch.setenv("SOONG_SSH_KEY_PATH", str(tmp_path / "no-such-key"))
    result = run_soong("ssh", "--", "true")
    assert result.returncode == 3
    assert f"SSH key {tmp_path / 'no-such-key'} does not exist" in result.stderr


def test_an_unreachable_instance_is_explained(lab, run_soong, monkeypatch):
    from soong.testing.net import free_port

    monkeypatch.setenv("SOONG_SSH_PORT", str(free_port()))  # nothing listens there
    result = run_soong("ssh", "--", "true")
    assert result.returncode == 255
    assert "soong: error: ssh to" in result.stderr and "Connection refused" in result.stderr


def _read_until(fd: int, wanted: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"did not see {wanted!r}; got {seen[-400:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_an_interactive_session_on_a_terminal(lab):
    """Without a command, soong execs ssh on the terminal: a real shell that exits with its own status."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(VENV_BIN / "soong"), "ssh"], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, env=dict(os.environ))
    os.close(slave)
    try:
        os.write(master, b"echo marker-$((6*7)); tty; exit 3\n")
        seen = _read_until(master, b"marker-42")
        seen += _read_until(master, b"/dev/pts/")  # the remote side got a terminal too
        assert proc.wait(timeout=20) == 3, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.parametrize("argv", [["ssh", "--", "true"], ["tunnel", "start"]])
def test_no_running_instance(lab, run_soong, argv):
    lab.set_instances()
    result = run_soong(*argv)
    assert result.returncode == 8
    assert "no running instances" in result.stderr


def test_a_remote_command_can_have_a_terminal(lab):
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(VENV_BIN / "soong"), "ssh", "--tty", "--", "tty"], stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, env=dict(os.environ))
    os.close(slave)
    try:
        _read_until(master, b"/dev/pts/")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
