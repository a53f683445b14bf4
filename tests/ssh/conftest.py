"""Fixtures for the SSH tests: a private sshd, a loopback provider plugin, and a leftover-process guard."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from soong.core.context import Context
from soong.core.plugins import PluginHost, PluginInfo
from soong.testing.sshd import SshServer, generate_key, sshd_unavailable
from tests.ssh import loopback_provider

REPO = Path(__file__).resolve().parents[2]
#: The key name the loopback account reports for the sshd's authorized client key.
ACCOUNT_KEY = "ci-key"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A private sshd on 127.0.0.1 for the whole session (skips where sshd cannot run)."""
    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def other_key(sshd):
    """A second key pair: in the account (as ``old-laptop``) but not authorized on the instance."""
    return generate_key(sshd.dir / "other_ed25519", "old-laptop")


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory):
    """A folder that makes the loopback provider an installed plugin for soong subprocesses."""
    root = tmp_path_factory.mktemp("plugin-path")
    dist = root / "soong_loopback_test-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: soong-loopback-test\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[soong]\nloopback-test = {loopback_provider.__name__}\n")
    return root


def instance(instance_id: str, name: str | None, *, status: str = "active", ip: str | None = "127.0.0.1") -> dict:
    """One instance entry for the loopback provider."""
    return {"id": instance_id, "status": status, "instance_type": "gpu_1x_test", "region": "test-1", "name": name,
            "ip": ip, "ssh_key_names": [ACCOUNT_KEY]}


class Lab:
    """The world of one SSH test: instances on 127.0.0.1, soong configured for the private sshd."""

    def __init__(self, sshd: SshServer, home: Path, instances_file: Path, other_key: Path) -> None:
        self.sshd = sshd
        self.other_key = other_key
        self.home = home
        self.instances_file = instances_file
        self.state_dir = home / ".local/state/soong"
        self.tunnels_dir = self.state_dir / "tunnels"
        self.known_hosts = self.state_dir / "known_hosts"

    def set_instances(self, *instances: dict) -> None:
        """Replace what the provider reports."""
        data = {"instances": list(instances),
                "ssh_keys": [{"id": "k1", "name": ACCOUNT_KEY, "public_key": self.sshd.client_public_key},
                             {"id": "k2", "name": "old-laptop",
                              "public_key": Path(f"{self.other_key}.pub").read_text().strip()}]}
        self.instances_file.write_text(json.dumps(data))

    def context(self) -> Context:
        """An in-process Context with the built-in tunnel backends and the loopback provider."""
        from soong.plugins import direct_tunnel, plumbum_ssh

        host = PluginHost(discover=False, env={})
        host.add_plugin(plumbum_ssh, PluginInfo("plumbum-ssh", builtin=True))
        host.add_plugin(direct_tunnel, PluginInfo("direct", builtin=True))
        host.add_plugin(loopback_provider, PluginInfo("loopback-test"))
        return Context(env=dict(os.environ), plugin_host=host)

    def record(self, instance_id: str) -> dict:
        """The tunnel state file of an instance, parsed."""
        return json.loads((self.tunnels_dir / f"{instance_id}.json").read_text())


@pytest.fixture
def lab(sshd, other_key, plugin_path, isolated_env, tmp_path, monkeypatch):
    """soong configured (through SOONG_* variables) to reach instance ``inst-one`` at the private sshd."""
    instances_file = tmp_path / "instances.json"
    monkeypatch.setenv("SOONG_SSH_USER", sshd.user)
    monkeypatch.setenv("SOONG_SSH_PORT", str(sshd.port))
    monkeypatch.setenv("SOONG_SSH_KEY_PATH", str(sshd.client_key))
    monkeypatch.setenv(loopback_provider.ENV_VAR, str(instances_file))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_path), str(REPO)]))
    world = Lab(sshd, isolated_env, instances_file, other_key)
    world.set_instances(instance("inst-one", "box-one"))
    yield world
    context = world.context()  # close whatever a failing test left open
    for name in ("plumbum-ssh", "direct"):
        backend = context.tunnel_backend(name)
        for record in backend.list():
            backend.close(record.instance_id)


def _ssh_processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = raw.rstrip(b"\0").split(b"\0")
        if argv and os.path.basename(argv[0]) == b"ssh" and text.encode() in raw:
            found.append((int(entry.name), b" ".join(argv).decode(errors="replace")))
    return found


@pytest.fixture(autouse=True)
def no_ssh_left_behind(tmp_path):
    """Fail a test that leaves an ssh client process behind (and kill it)."""
    yield
    if not Path("/proc").exists():
        return
    leftovers = _ssh_processes_mentioning(str(tmp_path))
    for pid, _cmd in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if leftovers:
        time.sleep(0.05)
        pytest.fail(f"test left ssh processes behind: {leftovers}")
