"""Property tests for the parsers and writers behind tunnels and ssh-config."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from soong.core.errors import UsageError
from soong.core.tunnel_state import StoredTunnel, check_instance_id
from soong.core.types import Forward, Instance
from soong.plugins.plumbum_ssh import diagnose
from soong.plugins.plumbum_ssh.hostkeys import forget_host_key, known_keys
from soong.plugins.plumbum_ssh.options import SshSettings
from soong.plugins.plumbum_ssh.ssh_config_file import ensure_include, host_names, include_line, render

instance_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,40}\Z")
ports = st.integers(1, 65535)
forwards = st.builds(Forward, name=st.sampled_from(["sglang", "n8n", "status", "x"]), local_port=ports,
                     remote_port=ports, remote_host=st.sampled_from(["127.0.0.1", "10.0.0.5"]),
                     local_host=st.sampled_from(["127.0.0.1", "192.168.1.9"]))
moments = st.datetimes(timezones=st.just(dt.timezone.utc))


@given(instance_id=instance_ids, backend=st.sampled_from(["plumbum-ssh", "direct", "x.y"]), host=st.text(min_size=1),
       fwds=st.lists(forwards, max_size=4), at=moments, pid=st.none() | st.integers(1, 2**22),
       command=st.lists(st.text(), max_size=5), name=st.none() | st.text(), state=st.sampled_from(["starting", "up"]))
def test_tunnel_records_round_trip(instance_id, backend, host, fwds, at, pid, command, name, state):
    stored = StoredTunnel(instance_id=instance_id, backend=backend, host=host, forwards=tuple(fwds), started_at=at,
                          pid=pid, command=tuple(command), name=name, state=state, log_path="/x/y.log")
    assert StoredTunnel.from_json(stored.to_json()) == stored


@given(st.text())
def test_instance_ids_are_either_safe_or_refused(text):
    try:
        checked = check_instance_id(text)
    except UsageError:
        return
    assert "/" not in checked and not checked.startswith(("-", ".")) and checked.strip() == checked


@given(st.lists(st.tuples(instance_ids, st.none() | st.text()), max_size=8, unique_by=lambda t: t[0]))
def test_host_aliases_are_unique_and_safe(pairs):
    instances = [Instance(id=i, status="active", instance_type="t", region="r", name=n, ip="10.0.0.1") for i, n in pairs]
    aliases = [alias for alias, _ in host_names(instances)]
    assert len(aliases) == len(set(aliases))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", alias) for alias in aliases)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=200))
def test_the_include_line_is_added_exactly_once_and_keeps_the_file(existing):
    with tempfile.TemporaryDirectory() as tmp:
        user_config = Path(tmp) / ".ssh" / "config"
        target = Path(tmp) / "soong dir" / "ssh_config"
        user_config.parent.mkdir()
        assume(str(target) not in existing)
        user_config.write_text(existing)
        added, backup = ensure_include(user_config, target)
        after = user_config.read_text()
        again, second_backup = ensure_include(user_config, target)
        assert added and backup is not None and backup.read_text() == existing
        assert not again and second_backup is None and user_config.read_text() == after
        assert after.endswith(existing) and after.count(include_line(target)) == 1
        assert include_line(target) == f'Include "{target}"'


@settings(deadline=None)  # it writes files: a loaded machine took longer than hypothesis's 200 ms default
@given(keep=st.lists(instance_ids, max_size=5), drop=instance_ids)
def test_forgetting_a_host_key_removes_only_that_instance(keep, drop):
    keep = [k for k in keep if k != drop]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "known_hosts"
        lines = [f"soong-{i} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n:043d}" for n, i in enumerate([*keep, drop])]
        path.write_text("# comment\n" + "\n".join(lines) + "\n")
        assert forget_host_key(path, drop) == 1
        assert known_keys(path, drop) == []
        assert all(len(known_keys(path, k)) == keep.count(k) for k in keep)
        assert path.read_text().startswith("# comment\n")


@pytest.mark.parametrize("output, port", [
    ("bind [127.0.0.1]:8000: Address already in use\nCould not request local forwarding.", 8000),
    ("channel_setup_fwd_listener_tcpip: cannot listen to port: 5678\n", 5678),
    ("Permission denied (publickey).", None),
])
def test_the_lost_port_is_read_from_ssh_output(output, port):
    assert diagnose.bind_failure_port(output) == port


@pytest.mark.parametrize("output, kind", [
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.", "host_key"),
    ("root@10.0.0.1: Permission denied (publickey).", "login"),
    ("bind [127.0.0.1]:8000: Address already in use", "port_in_use"),
    ("ssh: connect to host 10.0.0.1 port 22: Connection refused", "unreachable"),
    ("ssh: connect to host 10.0.0.1 port 22: Connection timed out", "unreachable"),
    ("something new", "other"),
])
def test_ssh_failures_are_classified(output, kind):
    assert diagnose.classify(output) == kind


def test_fingerprints_match_ssh_keygen(lab):
    import subprocess

    expected = subprocess.run(["ssh-keygen", "-lf", f"{lab.sshd.client_key}.pub"], capture_output=True, text=True,
                              check=True).stdout.split()[1]
    assert diagnose.public_key_fingerprint(lab.sshd.client_public_key) == expected
    assert diagnose.local_key_fingerprint(lab.sshd.client_key) == expected
    assert diagnose.public_key_fingerprint("ssh-ed25519 not*base64") is None


def test_the_written_config_never_disables_host_key_checking(lab):
    settings_ = SshSettings.from_context(lab.context())
    instances = [Instance(id="i-1", status="active", instance_type="t", region="r", name="a", ip="10.0.0.1")]
    text = render(instances, settings_)
    assert "StrictHostKeyChecking accept-new" in text and "StrictHostKeyChecking no" not in text
    args = settings_.arguments("i-1")
    assert "StrictHostKeyChecking=accept-new" in args and "BatchMode=yes" in args
    assert "BatchMode=yes" not in settings_.arguments("i-1", batch=False)
