"""``soong ssh-config``: the written file is valid for OpenSSH and the Include line is added once."""

from __future__ import annotations

import subprocess

from tests.ssh.conftest import instance


def _ssh_g(lab, host: str) -> dict[str, str]:
    out = subprocess.run(["ssh", "-G", "-F", str(lab.home / ".ssh/config"), host], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def test_a_host_per_running_instance_accepted_by_ssh(lab, run_soong):
    lab.set_instances(instance("inst-one", "box-one"), instance("inst-two", "box two!"),
                      instance("inst-gone", "gone", status="terminated"),
                      instance("inst-boot", "booting", status="booting", ip=None))
    result = run_soong("ssh-config")
    assert result.returncode == 0, result.stderr
    written = lab.home / ".config/soong/ssh_config"
    assert f"wrote {written} (2 hosts)" in result.stdout
    text = written.read_text()
    assert "Host box-one\n" in text and "Host box-two\n" in text
    assert "gone" not in text and "booting" not in text
    assert oct(written.stat().st_mode & 0o777) == "0o600"

    seen = _ssh_g(lab, "box-one")
    assert seen["hostname"] == "127.0.0.1"
    assert seen["port"] == str(lab.sshd.port) and seen["user"] == lab.sshd.user
    assert seen["hostkeyalias"] == "soong-inst-one"
    assert seen["stricthostkeychecking"] == "accept-new"
    assert seen["userknownhostsfile"] == str(lab.known_hosts)
    assert seen["identitiesonly"] == "yes" and seen["identityfile"] == str(lab.sshd.client_key)
    assert _ssh_g(lab, "box-two")["hostkeyalias"] == "soong-inst-two"

    # plain ssh through the written config reaches the instance and shares soong's host keys
    plain = subprocess.run(["ssh", "-F", str(lab.home / ".ssh/config"), "-o", "BatchMode=yes", "box-one", "echo",
                            "via-config"], capture_output=True, text=True, timeout=30)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "via-config\n"
    assert lab.known_hosts.read_text().startswith("soong-inst-one ")


def test_the_include_line_is_added_once_with_a_backup(lab, run_soong):
    user_config = lab.home / ".ssh/config"
    user_config.parent.mkdir(mode=0o700)
    original = "Host *\n    ServerAliveInterval 60\n"
    user_config.write_text(original)
    user_config.chmod(0o600)

    first = run_soong("ssh-config")
    assert first.returncode == 0, first.stderr
    backup = lab.home / ".ssh/config.soong-backup"
    assert f"added an Include line to {user_config} (backup: {backup})" in first.stdout
    assert backup.read_text() == original
    text = user_config.read_text()
    include = f"Include {lab.home / '.config/soong/ssh_config'}"
    assert text.splitlines()[1] == include  # before any Host block, where Include applies to every host
    assert text.endswith(original)

    second = run_soong("ssh-config")
    assert second.returncode == 0 and "added an Include" not in second.stdout
    assert f"{user_config} already includes it" in second.stdout
    assert user_config.read_text() == text
    assert sorted(p.name for p in user_config.parent.iterdir()) == ["config", "config.soong-backup"]
    assert _ssh_g(lab, "box-one")["hostkeyalias"] == "soong-inst-one"


def test_a_symlinked_user_config_is_edited_where_it_points(lab, run_soong):
    dotfiles = lab.home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "ssh_config").write_text("# mine\n")
    (lab.home / ".ssh").mkdir(mode=0o700)
    (lab.home / ".ssh/config").symlink_to(dotfiles / "ssh_config")
    assert run_soong("ssh-config").returncode == 0
    assert (lab.home / ".ssh/config").is_symlink()
    assert "Include " in (dotfiles / "ssh_config").read_text()


def test_no_include_leaves_the_user_config_alone(lab, run_soong):
    result = run_soong("ssh-config", "--no-include")
    assert result.returncode == 0, result.stderr
    assert not (lab.home / ".ssh").exists()
    assert (lab.home / ".config/soong/ssh_config").exists()
