"""fs-setup runs for real, as root, on a temporary tree: folders, owners, and symbolic links planted on the file system.

The persistent file system is a folder bind-mounted onto itself in a mount namespace of
the test's own (``unshare --mount``), so ``mountpoint`` sees a mount and the host's
mounts are never touched. Existing unprivileged accounts stand in for the users:
``nobody`` for the login user, ``daemon`` for SGLang's, ``bin`` for n8n's.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from soong.core.bootstrap import build_user_data, file_content
from tests.models.helpers import write_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("runuser") is None,
                                reason="fs-setup runs as root (it does on the instance); needs unshare and runuser")

LOGIN, SGLANG, N8N = "nobody", "daemon", "bin"


class Tree:
    """A temporary tree others can traverse: the lib folder, the file system, local disk, a home, a run folder."""

    def __init__(self, root: Path, lib: Path) -> None:
        self.root, self.lib = root, lib
        self.nfs = root / "nfs" / "team-fs"
        self.local = root / "local"
        self.home = root / "home"
        self.key = root / "etc" / "lambda-api-key"  # stands in for /etc/soong-daemon/lambda-api-key
        self.log = root / "boot.log"

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, SOONG_LIB=str(self.lib), SOONG_BOOT_LOG=str(self.log), SOONG_RUN_DIR=str(self.root / "run"),
                    SOONG_LOCAL_DATA=str(self.local), SOONG_NFS_ROOT=str(self.root / "nfs"), SOONG_WAIT_INTERVAL="0.1",
                    SOONG_USER_HOME=str(self.home), SOONG_LOGIN_USER=LOGIN, SOONG_SGLANG_USER=SGLANG,
                    SOONG_N8N_USER=N8N, **extra)

    def run(self, plant: str = "", mounted: bool = True) -> subprocess.CompletedProcess:
        """fs-setup, after the shell commands ``plant`` ran in the file system's folder (as root)."""
        mount = 'mount --bind "$NFS" "$NFS" && ' if mounted else ""
        script = f'{mount}(cd "$NFS" && {plant or ":"}) && exec "$LIB/fs-setup"'
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              env=self.env(NFS=str(self.nfs), LIB=str(self.lib)), capture_output=True, text=True,
                              timeout=120)

    def phases(self) -> list[tuple[str, str]]:
        out = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            _, rest = line.split(" phase=", 1)
            name, _, message = rest.partition(" ")
            out.append((name, message))
        return out

    def paths(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in (self.root / "run" / "paths.env").read_text().splitlines())


@pytest.fixture
def tree(host, make_plan):
    root = Path(tempfile.mkdtemp(prefix="soong-fs-setup-", dir="/tmp"))
    root.chmod(0o755)
    lib = root / "lib"
    lib.mkdir()
    for path, entry in write_files(build_user_data(host, make_plan(filesystem_name="team-fs", fs_wait_seconds=1))).items():
        if path.startswith("/usr/local/lib/soong/"):
            target = lib / path.rsplit("/", 1)[-1]
            target.write_bytes(file_content(entry))
            target.chmod(0o755)
    made = Tree(root, lib)
    made.nfs.mkdir(parents=True)
    made.nfs.chmod(0o755)
    shutil.chown(made.nfs, LOGIN)  # the file system's root belongs to the login user
    made.home.mkdir()
    shutil.chown(made.home, LOGIN)
    made.key.parent.mkdir()
    made.key.write_text("lambda-api-key-canary\n")
    os.chown(made.key, 4242, 4242)
    made.key.chmod(0o600)
    yield made
    shutil.rmtree(root, ignore_errors=True)


def _owner_and_mode(path: Path) -> tuple[str, int]:
    import pwd

    info = path.lstat()
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return owner, stat.S_IMODE(info.st_mode)


def test_folders_belong_to_their_users(tree):
    done = tree.run()
    assert done.returncode == 0, done.stderr
    assert [p for p, _ in tree.phases()] == ["fs-mounted"], tree.phases()
    assert _owner_and_mode(tree.nfs / "soong") == ("root", 0o755)
    assert _owner_and_mode(tree.nfs / "soong/hf-cache") == (SGLANG, 0o750)
    assert _owner_and_mode(tree.nfs / "soong/n8n") == (N8N, 0o700)
    for name in ("data", "projects"):
        assert _owner_and_mode(tree.nfs / name) == (LOGIN, 0o755)
        link = tree.home / name
        assert os.readlink(link) == str(tree.nfs / name) and link.lstat().st_uid == 65534  # made by the login user
    paths = tree.paths()
    assert paths["SOONG_FS"] == str(tree.nfs) and paths["SOONG_FS_MOUNTED"] == "1"
    assert paths["HF_HOME"] == f"{tree.nfs}/soong/hf-cache" and paths["SOONG_SOURCE_ENV_SH"] == "0"


def test_a_planted_data_link_changes_nothing_it_points_to(tree):
    assert _owner_and_mode(tree.key) == ("4242", 0o600)
    done = tree.run(plant=f'ln -s "{tree.key}" data && chown -h {LOGIN} data')
    assert done.returncode == 0, done.stderr
    assert _owner_and_mode(tree.key) == ("4242", 0o600)
    refused = [m for p, m in tree.phases() if p == "fs-refused"]
    assert refused and "data is a symbolic link" in refused[0] and str(tree.key) in refused[0]
    assert not (tree.home / "data").is_symlink()  # no link to the planted link
    assert os.readlink(tree.home / "projects") == str(tree.nfs / "projects")  # the rest is still used
    assert tree.paths()["SOONG_FS_MOUNTED"] == "1"


@pytest.mark.parametrize("plant", [
    'ln -s "$TARGET" soong',
    'mkdir -m 0755 soong && ln -s "$TARGET" soong/hf-cache',
    'mkdir -m 0755 soong && ln -s "$TARGET" soong/n8n',
])
def test_a_planted_service_folder_link_falls_back_to_local_disk(tree, plant):
    target = tree.root / "etc" / "soong-daemon"
    target.mkdir()
    os.chown(target, 4242, 4242)
    target.chmod(0o700)
    done = tree.run(plant=plant.replace("$TARGET", str(target)))
    assert done.returncode == 0, done.stderr
    info = target.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (4242, 0o700)
    assert list(target.iterdir()) == []
    phases = [p for p, _ in tree.phases()]
    assert "fs-refused" in phases and phases[-1] == "fs-missing", tree.phases()
    assert tree.paths()["SOONG_FS"] == str(tree.local) and tree.paths()["SOONG_FS_MOUNTED"] == "0"
    assert _owner_and_mode(tree.local / "soong/hf-cache") == (SGLANG, 0o750)


def test_old_folders_are_given_to_the_services_without_following_links_inside(tree):
    # What an older soong left: n8n's folder of the login user, with a link inside pointing at a secret.
    plant = (f'mkdir -p soong/n8n/.n8n && echo db > soong/n8n/.n8n/database.sqlite && '
             f'ln -s "{tree.key}" soong/n8n/.n8n/key && chown -hR {LOGIN} soong')
    done = tree.run(plant=plant)
    assert done.returncode == 0, done.stderr
    for inside in ("soong/n8n", "soong/n8n/.n8n", "soong/n8n/.n8n/database.sqlite", "soong/n8n/.n8n/key"):
        assert _owner_and_mode(tree.nfs / inside)[0] == N8N, inside
    assert _owner_and_mode(tree.key) == ("4242", 0o600)


def test_a_folder_the_service_cannot_reach_falls_back_to_local_disk(tree):
    tree.nfs.chmod(0o700)  # the login user's private file system root: the services cannot traverse it
    done = tree.run()
    assert done.returncode == 0, done.stderr
    refused = [m for p, m in tree.phases() if p == "fs-refused"]
    assert refused and f"{SGLANG} cannot write" in refused[0]
    assert tree.paths()["SOONG_FS_MOUNTED"] == "0"


def test_degrades_to_local_disk_with_a_warning(tree):
    done = tree.run(mounted=False)
    assert done.returncode == 0, done.stderr
    assert [p for p, _ in tree.phases()] == ["fs-missing"]
    assert "warning" in tree.phases()[0][1] and "team-fs" in tree.phases()[0][1]
    assert tree.paths()["SOONG_FS"] == str(tree.local) and tree.paths()["SOONG_FS_MOUNTED"] == "0"
    assert _owner_and_mode(tree.local / "soong/hf-cache") == (SGLANG, 0o750)
    assert os.readlink(tree.home / "data") == str(tree.local / "data")
    assert os.readlink(tree.home / "projects") == str(tree.local / "projects")


def test_source_env_sh_is_carried_only_when_opted_in(host, make_plan):
    for opted, value in ((False, "0"), (True, "1")):
        setup = write_files(build_user_data(host, make_plan(source_env_sh=opted)))["/usr/local/lib/soong/fs-setup"]
        assert f"source_env_sh={value}\n" in setup["content"]


def test_without_a_file_system(tree, host, make_plan):
    setup = write_files(build_user_data(host, make_plan(filesystem_name=None)))["/usr/local/lib/soong/fs-setup"]
    (tree.lib / "fs-setup").write_bytes(file_content(setup))
    done = tree.run(mounted=False)
    assert done.returncode == 0, done.stderr
    assert tree.phases() == [("fs-missing", f"no persistent file system attached; using local disk {tree.local}")]
    assert _owner_and_mode(tree.local / "soong/n8n") == (N8N, 0o700)


def test_the_rendered_script_names_the_real_users(host, make_plan):
    setup = write_files(build_user_data(host, make_plan(login_user="ubuntu")))["/usr/local/lib/soong/fs-setup"]["content"]
    assert "user=${SOONG_LOGIN_USER:-ubuntu}\n" in setup
    assert "sglang_user=${SOONG_SGLANG_USER:-soong-sglang}\n" in setup
    assert "n8n_user=${SOONG_N8N_USER:-soong-n8n}\n" in setup
    assert "local_base=${SOONG_LOCAL_DATA:-/var/lib/soong-data}\n" in setup


def test_the_config_key_reaches_the_plan(catalog, tmp_path):
    from soong.core.bootstrap import LaunchPlan, LaunchSecrets
    from soong.core.context import Context

    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for env, expected in (({}, False), ({"SOONG_SERVICES_SOURCE_ENV_SH": "true"}, True)):
        plan = LaunchPlan.from_context(Context(env={**home, **env}), catalog["llama-3.1-8b"], instance_name="t",
                                       gpu_count=1, secrets=LaunchSecrets("k" * 12, "t" * 12))
        assert plan.source_env_sh is expected


def test_modes_of_service_folders_are_restored_but_the_users_own_are_kept(tree):
    plant = (f'mkdir -m 0777 -p soong/n8n && mkdir -m 0700 data && chown {LOGIN} data && '
             f'chown {N8N} soong/n8n && chmod 0777 soong/n8n')
    done = tree.run(plant=plant)
    assert done.returncode == 0, done.stderr
    assert _owner_and_mode(tree.nfs / "soong/n8n") == (N8N, 0o700)
    assert _owner_and_mode(tree.nfs / "data") == (LOGIN, 0o700)
