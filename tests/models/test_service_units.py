"""SGLang's and n8n's units: their own users, the sandbox, write access only where they need it.

The sandbox is read back by systemd's own analyzer (``systemd-analyze security
--offline=true``, systemd 252), so a directive systemd would not take fails here.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from soong.core.bootstrap import N8N_SECRETS_DIR, N8N_USER, SGLANG_USER, build_user_data
from tests.models.helpers import write_files

UNITS = {"soong-sglang": SGLANG_USER, "soong-n8n": N8N_USER}
SANDBOX = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes")


def _units(host, make_plan, **overrides) -> dict[str, str]:
    files = write_files(build_user_data(host, make_plan(**overrides)))
    return {path.rsplit("/", 1)[-1][:-len(".service")]: entry["content"]
            for path, entry in files.items() if path.endswith(".service")}


def test_services_run_as_their_own_users_in_the_sandbox(host, make_plan):
    units = _units(host, make_plan, login_user="ubuntu")
    for name, user in UNITS.items():
        lines = units[name].splitlines()
        for directive in (f"User={user}", f"Group={user}", f"StateDirectory={user}", "StateDirectoryMode=0700", *SANDBOX):
            assert directive in lines, (name, directive)
        assert "ubuntu" not in units[name]  # the login user, who has passwordless sudo
    for name in ("soong-sglang-install", "soong-n8n-install"):
        assert "UMask=0022" in units[name].splitlines()


def test_write_access_only_where_each_service_needs_it(host, make_plan):
    units = _units(host, make_plan, filesystem_name="team-fs")
    writable = {name: next(line for line in units[name].splitlines() if line.startswith("ReadWritePaths="))
                for name in UNITS}
    assert writable["soong-sglang"] == ("ReadWritePaths=-/lambda/nfs/team-fs/soong/hf-cache "
                                        "-/var/lib/soong-data/soong/hf-cache")
    assert writable["soong-n8n"] == ("ReadWritePaths=-/lambda/nfs/team-fs/soong/n8n -/var/lib/soong-data/soong/n8n "
                                     f"{N8N_SECRETS_DIR}")
    local_only = _units(host, make_plan, filesystem_name=None)["soong-sglang"]
    assert "ReadWritePaths=-/var/lib/soong-data/soong/hf-cache\n" in local_only


def test_root_loads_the_gpu_modules_the_sandbox_cannot(host, make_plan):
    lines = _units(host, make_plan)["soong-sglang"].splitlines()
    steps = [line for line in lines if line.startswith("ExecStartPre=")]
    assert steps[:2] == ["ExecStartPre=+-/usr/bin/nvidia-smi -L", "ExecStartPre=+-/usr/bin/nvidia-modprobe -u -c=0"]


def test_systemd_reads_the_sandbox_as_meant(host, make_plan, tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed")
    for name, content in _units(host, make_plan).items():
        if name not in UNITS:
            continue
        path = tmp_path / f"{name}.service"
        path.write_text(content)
        done = subprocess.run([exe, "security", "--offline=true", str(path)], capture_output=True, text=True, timeout=120)
        passed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("✓")}
        for directive in ("User=/DynamicUser=", "NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp="):
            assert directive in passed, (name, directive, done.stdout[-2000:])
