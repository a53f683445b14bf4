"""The boot scripts run for real (with their paths pointed into a temporary folder)."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import threading
import time

import pytest

from soong.core.bootstrap import file_content
from soong.testing.net import free_port
from tests.models.helpers import write_files

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ phase=(?P<phase>[a-z0-9-]+) (?P<message>.*)$")


@pytest.fixture
def installed(host, make_plan, tmp_path):
    """The document's /usr/local/lib/soong scripts, installed into a temporary lib folder."""

    def install(**plan_overrides):
        from soong.core.bootstrap import build_user_data

        lib = tmp_path / "lib"
        lib.mkdir(exist_ok=True)
        for path, entry in write_files(build_user_data(host, make_plan(**plan_overrides))).items():
            if path.startswith("/usr/local/lib/soong/"):
                target = lib / path.rsplit("/", 1)[-1]
                target.write_bytes(file_content(entry))
                target.chmod(0o755)
        env = dict(os.environ, SOONG_LIB=str(lib), SOONG_BOOT_LOG=str(tmp_path / "boot.log"),
                   SOONG_RUN_DIR=str(tmp_path / "run"), SOONG_LOCAL_DATA=str(tmp_path / "local"),
                   SOONG_NFS_ROOT=str(tmp_path / "nfs"), SOONG_WAIT_INTERVAL="0.1",
                   SOONG_USER_HOME=str(tmp_path / "home-of-user"))
        (tmp_path / "home-of-user").mkdir(exist_ok=True)
        return lib, env

    return install


def boot_lines(tmp_path):
    text = (tmp_path / "boot.log").read_text()
    matches = [LINE.match(line) for line in text.splitlines()]
    assert all(matches), text
    return [(m["phase"], m["message"]) for m in matches]


def test_bootlog_appends_the_documented_line_format(installed, tmp_path):
    lib, env = installed()
    subprocess.run([str(lib / "bootlog"), "daemon-up", "status", "daemon answers"], env=env, check=True)
    subprocess.run([str(lib / "bootlog"), "sglang-installing", "x"], env=env, check=True)
    assert boot_lines(tmp_path) == [("daemon-up", "status daemon answers"), ("sglang-installing", "x")]
    assert (tmp_path / "boot.log").stat().st_mode & 0o777 == 0o644


def test_with_user_env_sources_the_users_secrets_only_when_opted_in_and_mounted(installed, tmp_path):
    lib, env = installed()
    fs = tmp_path / "fs"
    (fs / "secrets").mkdir(parents=True)
    (fs / "secrets" / "env.sh").write_text("MY_SERVICE_KEY=from-the-fs\n")
    run = tmp_path / "run"
    run.mkdir()
    for opted, mounted, expected in (("1", "1", "from-the-fs"), ("0", "1", ""), ("1", "0", ""), ("", "1", "")):
        opt_line = f"SOONG_SOURCE_ENV_SH={opted}\n" if opted else ""  # an older paths.env has no such line
        (run / "paths.env").write_text(f"SOONG_FS={fs}\nSOONG_FS_MOUNTED={mounted}\n{opt_line}HF_HOME={fs}/hf\n")
        out = subprocess.run([str(lib / "with-user-env"), "sh", "-c", 'echo "$MY_SERVICE_KEY|$HF_HOME"'],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
        assert out == f"{expected}|{fs}/hf", (opted, mounted)


def test_with_user_env_says_when_the_opted_in_file_is_unreadable(installed, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runs the script as another user")
    import shutil
    import tempfile

    lib, env = installed()
    root = tempfile.mkdtemp(prefix="soong-user-env-", dir="/tmp")  # pytest's own folders are 0700
    try:
        os.chmod(root, 0o755)
        shutil.copy(lib / "with-user-env", root)
        fs = os.path.join(root, "fs")
        os.makedirs(os.path.join(fs, "secrets"))
        secret = os.path.join(fs, "secrets", "env.sh")
        with open(secret, "w") as handle:
            handle.write("MY_SERVICE_KEY=from-the-fs\n")
        os.chmod(secret, 0o600)
        with open(os.path.join(root, "paths.env"), "w") as handle:
            handle.write(f"SOONG_FS={fs}\nSOONG_FS_MOUNTED=1\nSOONG_SOURCE_ENV_SH=1\n")
        done = subprocess.run(["runuser", "-u", "nobody", "--", os.path.join(root, "with-user-env"), "sh", "-c",
                               'echo "[$MY_SERVICE_KEY]"'], env={**env, "SOONG_RUN_DIR": root},
                              capture_output=True, text=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    assert "env.sh is not readable by nobody; not sourced" in done.stderr


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_wait_http_logs_ready_or_failed(installed, tmp_path):
    lib, env = installed()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        subprocess.run([str(lib / "wait-http"), url, "sglang-ready", "5", "SGLang serves m"], env=env, check=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    dead = f"http://127.0.0.1:{free_port()}/health"
    result = subprocess.run([str(lib / "wait-http"), dead, "n8n-ready", "0", "n8n answers"], env=env, timeout=30)
    assert result.returncode == 1
    assert [p for p, _ in boot_lines(tmp_path)] == ["sglang-ready", "n8n-failed"]


def test_wait_http_stops_waiting_when_the_main_process_has_died(installed, tmp_path):
    lib, env = installed()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID that no longer runs, as $MAINPID is after a crash during start
    dead = f"http://127.0.0.1:{free_port()}/health"
    started = time.monotonic()
    result = subprocess.run([str(lib / "wait-http"), dead, "sglang-ready", "600", "SGLang serves m"],
                            env={**env, "MAINPID": str(gone.pid), "SOONG_WAIT_INTERVAL": "0.1"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "exited before" in result.stderr
    assert time.monotonic() - started < 30  # not the 600 s timeout
    log = tmp_path / "boot.log"
    assert not log.exists() or boot_lines(tmp_path) == []  # systemd restarts it: no failed phase


def test_wait_http_keeps_waiting_while_the_main_process_lives(installed, tmp_path):
    lib, env = installed()
    dead = f"http://127.0.0.1:{free_port()}/health"
    result = subprocess.run([str(lib / "wait-http"), dead, "n8n-ready", "1", "n8n answers"],
                            env={**env, "MAINPID": str(os.getpid()), "SOONG_WAIT_INTERVAL": "0.1"}, timeout=60)
    assert result.returncode == 1
    assert [p for p, _ in boot_lines(tmp_path)] == ["n8n-failed"]  # the timeout, as before
