"""Activity sources against real sockets and real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from soong.testing.net import free_port
from soong_daemon.activity import ACTIVE, IDLE, UNKNOWN, SglangSource, SshSource, poll_all


class MetricsServer:
    """A loopback HTTP server whose /metrics page the test rewrites."""

    def __init__(self) -> None:
        self.page = ""
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                body = owner.page.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metrics_server():
    server = MetricsServer()
    yield server
    server.close()


def sglang_page(running: float, queued: float, prompt: float, generated: float) -> str:
    label = '{model_name="meta-llama/Llama-3.1-8B-Instruct"}'
    return (f"# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{label} {running}\n"
            f"sglang:num_queue_reqs{label} {queued}\n"
            f"sglang:prompt_tokens_total{label} {prompt}\nsglang:generation_tokens_total{label} {generated}\n")


def test_sglang_running_requests_and_rising_counters(metrics_server):
    source = SglangSource(metrics_server.url)
    metrics_server.page = sglang_page(0, 0, 100, 50)
    assert source.poll().status == IDLE  # the first reading is only a baseline
    assert source.poll().status == IDLE
    metrics_server.page = sglang_page(0, 0, 180, 50)
    assert source.poll().status == ACTIVE
    assert source.poll().status == IDLE
    metrics_server.page = sglang_page(2, 0, 180, 50)
    observation = source.poll()
    assert observation.status == ACTIVE and "2 running" in observation.detail
    metrics_server.page = sglang_page(0, 3, 180, 50)
    assert source.poll().status == ACTIVE


def test_sglang_unreadable_is_unknown(metrics_server):
    metrics_server.page = "# nothing yet\nprocess_cpu_seconds_total 3\n"
    assert SglangSource(metrics_server.url).poll().status == UNKNOWN
    metrics_server.status = 503
    assert SglangSource(metrics_server.url).poll().status == UNKNOWN
    metrics_server.status = 200
    metrics_server.page = "this is { not prometheus"
    assert SglangSource(metrics_server.url).poll().status == UNKNOWN
    closed = SglangSource(f"http://127.0.0.1:{free_port()}/metrics", timeout=1).poll()
    assert closed.status == UNKNOWN and "not readable" in closed.detail


def test_a_source_that_raises_counts_as_unknown():
    class Broken:
        name = "broken"

        def poll(self):
            raise RuntimeError("bug")

    [observation] = poll_all([Broken()])
    assert observation.status == UNKNOWN and observation.source == "broken"


@pytest.fixture
def fake_sshd_session():
    """A real process titled like an sshd session process, with or without a child."""
    started = []

    def start(title: str, with_child: bool) -> subprocess.Popen:
        script = "sleep 30 & wait" if with_child else "read -t 30 _"
        proc = subprocess.Popen(["bash", "-c", f'exec -a "{title}" bash -c "{script}"'], stdin=subprocess.PIPE,
                                start_new_session=True)
        started.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if open(f"/proc/{proc.pid}/cmdline", "rb").read().startswith(title.encode()):
                    break
            except OSError:
                pass
            time.sleep(0.02)
        time.sleep(0.1)
        return proc

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ssh_session_running_a_command_is_activity_but_a_bare_tunnel_is_not(fake_sshd_session):
    source = SshSource(forwarded_ports=[])
    baseline = source.busy_sessions()
    fake_sshd_session("sshd: tester@notty", with_child=False)  # like ssh -N -L ...
    assert source.busy_sessions() == baseline
    fake_sshd_session("sshd: tester@pts/7", with_child=True)  # an interactive shell
    assert source.busy_sessions() == baseline + 1
    fake_sshd_session("sshd-session: tester@notty", with_child=True)  # newer OpenSSH naming
    assert source.busy_sessions() == baseline + 2
    assert source.poll().status == ACTIVE


def test_forwarded_connection_is_activity():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    source = SshSource(forwarded_ports=[port])
    try:
        assert source.forwarded_connections() == 0
        client = socket.create_connection(("127.0.0.1", port))
        server_side, _ = listener.accept()
        assert source.forwarded_connections() == 1
        client.close()
        server_side.close()
        assert source.forwarded_connections() == 0
    finally:
        listener.close()


def test_unreadable_proc_is_unknown(tmp_path):
    observation = SshSource(forwarded_ports=[8000], proc_root=tmp_path / "no-proc").poll()
    assert observation.status == UNKNOWN
