"""SGLang's launcher as a real process: the key and the token reach SGLang, never a command line or its output."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from soong.plugins.sglang import sglang_launch
from soong.plugins.sglang.sglang_launch import Redactor

LAUNCHER = Path(sglang_launch.__file__)
KEY = "sk-sglang-4f1d9a7e0c2b88e1"
TOKEN = "hf_canary-7b3e0d5c91aa"

#: Stands in for sglang.launch_server: logs its configuration with the key (as SGLang 0.5.23 does), starts a
#: process of its own that logs the key too, and reports what /proc shows without printing a secret itself.
FAKE_SERVER = textwrap.dedent('''
    import hashlib, os, subprocess, sys
    key = sys.argv[sys.argv.index("--api-key") + 1]
    print(f"server_args={{'api_key': {key!r}, 'argv': {sys.argv[1:]!r}}}", flush=True)
    def cmdline(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    leaks = [pid for pid in (os.getpid(), os.getppid()) if key.encode() in cmdline(pid)]
    token = os.environ.get("HF_TOKEN", "")
    print("cmdline-leaks", leaks, "token-sha", hashlib.sha256(token.encode()).hexdigest(), flush=True)
    subprocess.run([sys.executable, "-c", "import sys; print('scheduler sees', sys.argv[1], file=sys.stderr)", key])
    sys.stdout.write("tail without newline " + key)
    sys.exit(3)
''')


@pytest.fixture
def world(tmp_path):
    (tmp_path / "fake_launch_server.py").write_text(FAKE_SERVER)
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("HF_TOKEN", None)
    return tmp_path, key_file, env


def _launch(args, env, **kwargs):
    return subprocess.Popen([sys.executable, str(LAUNCHER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kwargs)


def test_key_and_token_reach_sglang_and_never_its_output_or_a_command_line(world):
    tmp, key_file, env = world
    token_file = tmp / "hf-token"
    token_file.write_text(TOKEN + "\n")
    proc = _launch(["--module", "fake_launch_server", "--api-key-file", str(key_file), "--hf-token-file",
                    str(token_file), "--", "--model-path", "org/model", "--port", "8000"], env)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 3, output  # SGLang's exit status is the launcher's (systemd restarts on failure)
    assert KEY not in output and TOKEN not in output, output
    assert "server_args={'api_key': '<redacted>'" in output
    assert "scheduler sees <redacted>" in output  # a process SGLang starts is relayed redacted too
    assert output.rstrip().endswith("tail without newline <redacted>")
    assert "'--model-path', 'org/model', '--port', '8000', '--api-key', '<redacted>'" in output
    assert "cmdline-leaks []" in output  # neither SGLang's process nor the launcher shows the key in /proc
    assert f"token-sha {hashlib.sha256(TOKEN.encode()).hexdigest()}" in output  # HF_TOKEN is in SGLang's env


def test_without_a_token_file_sglang_gets_no_hf_token(world):
    tmp, key_file, env = world
    proc = _launch(["--module", "fake_launch_server", "--api-key-file", str(key_file), "--", "--model-path", "m"], env)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 3 and f"token-sha {hashlib.sha256(b'').hexdigest()}" in output


def test_launcher_waits_for_the_token_then_starts(world):
    tmp, key_file, env = world
    token_file = tmp / "hf-token"
    proc = _launch(["--module", "fake_launch_server", "--poll", "0.05", "--api-key-file", str(key_file),
                    "--hf-token-file", str(token_file), "--", "--model-path", "m"], env)
    time.sleep(1.0)
    assert proc.poll() is None, "the launcher started SGLang without the token"
    assert KEY.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    token_file.write_text(TOKEN + "\n")
    output = proc.communicate(timeout=60)[0].decode()
    assert "waiting for" in output and proc.returncode == 3
    assert f"token-sha {hashlib.sha256(TOKEN.encode()).hexdigest()}" in output


def test_await_token_logs_the_waiting_phase_once(world):
    tmp, _key, env = world
    token_file, boot_log = tmp / "hf-token", tmp / "boot.log"
    proc = _launch(["--await-token", "--poll", "0.05", "--hf-token-file", str(token_file), "--boot-log",
                    str(boot_log)], env)
    time.sleep(0.8)
    assert proc.poll() is None
    token_file.write_text(TOKEN)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = boot_log.read_text().splitlines()
    assert len(lines) == 1 and " phase=sglang-waiting-token " in lines[0]
    again = _launch(["--await-token", "--hf-token-file", str(token_file), "--boot-log", str(boot_log)], env)
    again.communicate(timeout=30)
    assert again.returncode == 0 and len(boot_log.read_text().splitlines()) == 1  # present: nothing logged


def test_a_missing_key_file_is_one_line_and_exit_2(world):
    tmp, _key, env = world
    proc = _launch(["--api-key-file", str(tmp / "nope"), "--", "--model-path", "m"], env)
    output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 2 and output.strip().startswith("sglang-launch: cannot open") and "Traceback" not in output


def test_redactor_catches_a_secret_split_between_reads():
    redactor = Redactor([KEY])
    out = b""
    text = f"a {KEY} b\nc {KEY}".encode()
    for index in range(len(text)):
        out += redactor.feed(text[index:index + 1])
    out += redactor.finish()
    assert out == b"a <redacted> b\nc <redacted>"


def test_redactor_passes_a_long_line_on_without_leaking():
    redactor = Redactor([KEY], max_line=64)
    head = redactor.feed(b"x" * 60 + KEY.encode()[:10])
    assert len(head) > 0 and KEY.encode()[:10] not in head  # a secret's head is held back
    rest = redactor.feed(KEY.encode()[10:] + b" end") + redactor.finish()
    assert head + rest == b"x" * 60 + b"<redacted> end"
