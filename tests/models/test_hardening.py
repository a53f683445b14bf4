"""The guard part's bootcmd scripts run for real: cloud-init's copies made root-only, the metadata address closed.

They run as root on the instance; here too (the CI runs as root). The firewall trial
runs in a network namespace of its own (``unshare --net``), so the host's rules are
never touched, with 169.254.169.254 on its loopback and a listener behind it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from soong.core.bootstrap import build_user_data, cloud_config_of
from soong.plugins.sglang import hardening

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs the boot scripts as root, as cloud-init does")

#: An unprivileged account every Debian system has, standing in for the services' users.
OTHER_USER = "nobody"
#: Another, standing in for the daemon's user (allowed through the firewall).
DAEMON_STANDIN = "daemon"


@pytest.fixture
def open_tree():
    """A temporary folder other users can traverse (pytest's own are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="soong-hardening-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _bootcmd(host, make_plan) -> list[str]:
    entries = cloud_config_of(build_user_data(host, make_plan()))["bootcmd"]
    return [entry[2] for entry in entries if isinstance(entry, list) and entry[:2] == ["sh", "-c"]]


def test_the_guard_runs_early_on_every_boot(host, make_plan):
    scripts = _bootcmd(host, make_plan)
    private, firewall = hardening.userdata_private_script(), hardening.metadata_firewall_script()
    assert private in scripts and firewall in scripts
    users = [i for i, text in enumerate(scripts) if "useradd" in text]
    # After the users exist (the firewall allows the daemon's uid), before anything else in bootcmd.
    assert max(users) < scripts.index(private) < scripts.index(firewall)


def test_bootcmd_scripts_pass_shellcheck(tmp_path):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    for name, text in (("private", hardening.userdata_private_script()), ("firewall", hardening.metadata_firewall_script())):
        path = tmp_path / f"{name}.sh"
        path.write_text("#!/bin/sh\n" + text)
        result = subprocess.run([shellcheck, "--severity=style", "--shell=sh", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def _cloud_tree(root: Path) -> dict[str, Path]:
    """cloud-init's files as it leaves them before the guard runs (folders 0755; seeds and logs readable)."""
    instance = root / "cloud/instances/i-0123"
    (instance / "scripts").mkdir(parents=True)
    (root / "cloud/seed/nocloud").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "log").mkdir()
    files = {
        "user-data.txt": instance / "user-data.txt", "user-data.txt.i": instance / "user-data.txt.i",
        "cloud-config.txt": instance / "cloud-config.txt", "obj.pkl": instance / "obj.pkl",
        "part": instance / "scripts/part-001", "seed": root / "cloud/seed/nocloud/user-data",
        "combined": root / "run/combined-cloud-config.json", "output-log": root / "log/cloud-init-output.log",
    }
    for path in files.values():
        path.write_text("api-key-canary\n")
        path.chmod(0o644)
    for folder in (root / "cloud", root / "cloud/instances", instance, instance / "scripts", root / "cloud/seed",
                   root / "cloud/seed/nocloud"):
        folder.chmod(0o755)
    (root / "cloud/instance").symlink_to(instance)
    return files


def _readable_by(user: str, path: Path) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "cat", str(path)], capture_output=True).returncode == 0


@needs_root
def test_cloud_init_copies_become_root_only_even_those_written_later(open_tree):
    files = _cloud_tree(open_tree)
    assert _readable_by(OTHER_USER, files["user-data.txt"])  # the trial can fail
    env = dict(os.environ, SOONG_CLOUD_DIR=str(open_tree / "cloud"), SOONG_CLOUD_RUN_DIR=str(open_tree / "run"),
               SOONG_LOG_DIR=str(open_tree / "log"), SOONG_BOOT_LOG=str(open_tree / "boot.log"),
               SOONG_DAEMON_SECRETS_DIR=str(open_tree / "etc-soong-daemon"), SOONG_DAEMON_USER=DAEMON_STANDIN)
    done = subprocess.run(["sh", "-c", hardening.userdata_private_script()], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name, path in files.items():
        assert not _readable_by(OTHER_USER, path), name
        if name != "output-log":
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, name
    assert stat.S_IMODE(files["output-log"].stat().st_mode) & 0o007 == 0
    for folder in ("cloud/instances", "cloud/seed"):
        assert stat.S_IMODE((open_tree / folder).stat().st_mode) == 0o700, folder
    later = open_tree / "cloud/instances/i-0123/written-later.txt"  # cloud-init writes more in later stages
    later.write_text("api-key-canary\n")
    later.chmod(0o644)
    assert not _readable_by(OTHER_USER, later)
    secrets = open_tree / "etc-soong-daemon"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700 and secrets.stat().st_uid == 1  # the daemon's user's
    log = (open_tree / "boot.log").read_text()
    assert "phase=userdata-private" in log and "cloud/instances" in log


@needs_root
def test_the_secrets_folder_is_not_made_through_a_link(open_tree):
    target = open_tree / "elsewhere"
    target.mkdir(mode=0o755)
    (open_tree / "etc-soong-daemon").symlink_to(target)
    env = dict(os.environ, SOONG_CLOUD_DIR=str(open_tree / "none"), SOONG_BOOT_LOG=str(open_tree / "boot.log"),
               SOONG_DAEMON_SECRETS_DIR=str(open_tree / "etc-soong-daemon"), SOONG_DAEMON_USER=DAEMON_STANDIN)
    subprocess.run(["sh", "-c", hardening.userdata_private_script()], env=env, check=True, capture_output=True)
    info = target.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)


@needs_root
@pytest.mark.parametrize("tool", ["nft", "iptables"])
def test_metadata_address_closed_to_all_but_root_and_the_daemon(tool):
    from soong.testing import metadata_trial

    if shutil.which(tool) is None or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip(f"{tool}, unshare or ip is not installed (.ci/run installs nftables and iptables)")
    users = f"root {DAEMON_STANDIN} {OTHER_USER}"
    settings = f"SOONG_FIREWALL_TOOL={tool} SOONG_DAEMON_USER={DAEMON_STANDIN}"
    done = subprocess.run(metadata_trial.command(hardening.metadata_firewall_script(), users, settings),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reached, log = metadata_trial.parse(done.stdout)
    assert reached == {"root": ("reached", "reached"), DAEMON_STANDIN: ("reached", "reached"),
                       OTHER_USER: ("refused", "refused")}, done.stdout
    assert len(log) == 2 and all(  # twice: the second run replaces the rule, it does not add one
        "phase=metadata-closed 169.254.169.254 and fd00:ec2::254 fe80::a9fe:a9fe closed to every user but root "
        f"and {DAEMON_STANDIN} ({tool}, owner match)" in line for line in log), log


@needs_root
def test_without_the_rule_the_boot_goes_on_and_says_so_loudly(open_tree):
    tmp_path = open_tree
    log = tmp_path / "boot.log"
    env = dict(os.environ, SOONG_FIREWALL_TOOL="none", SOONG_BOOT_LOG=str(log), SOONG_DAEMON_USER=DAEMON_STANDIN)
    done = subprocess.run(["sh", "-c", hardening.metadata_firewall_script()], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "every user on this instance can reach 169.254.169.254" in done.stderr
    assert "phase=metadata-open warning: no firewall tool" in log.read_text()
    if shutil.which("nft") is None:
        return
    # A user without CAP_NET_ADMIN (as in a container that shares the host's network): nft fails.
    log.unlink()
    open_log = tmp_path / "open"
    open_log.mkdir()
    open_log.chmod(0o777)
    env.update(SOONG_FIREWALL_TOOL="nft", SOONG_BOOT_LOG=str(open_log / "boot.log"))
    done = subprocess.run(["runuser", "-u", OTHER_USER, "--", "sh", "-c", hardening.metadata_firewall_script()],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert "phase=metadata-open warning: nft could not install the rule" in (open_log / "boot.log").read_text()
