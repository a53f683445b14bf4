"""Slow clients against the real daemon under gunicorn: the API keeps answering.

Real sockets against ``soong-daemon`` (2 sync workers): clients that never send
anything, never finish their headers, or send headers or body a byte at a time.
Without a per-request deadline each holds a sync worker until gunicorn's master
kills it after ``timeout`` (30 s), so /status would wait that long.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from soong.testing.emulator import run_emulator
from tests.daemon.conftest import API_KEY, TOKEN
from tests.daemon.test_integration import AUTH, Daemon

pytestmark = pytest.mark.slow

HEAD = b"POST /extend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def api():
    with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off",
                      api_key=API_KEY) as handle:
        yield handle


@pytest.fixture
def daemon(tmp_path, api):
    started = Daemon(tmp_path, provider_api_url=api.url, instance_id="i-slow", request_timeout_seconds=1)
    started.start()
    yield started
    started.stop()
    assert TOKEN not in started.log_path.read_text()


class Trickler(threading.Thread):
    """Sends ``data`` one byte every ``pause`` seconds until it is done or the daemon hangs up."""

    def __init__(self, sock: socket.socket, data: bytes, pause: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.sock, self.data, self.pause = sock, data, pause
        self.stop = threading.Event()

    def run(self) -> None:
        for byte in self.data:
            if self.stop.wait(self.pause):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                return


def open_slow_clients(port: int) -> tuple[list[socket.socket], list[Trickler]]:
    """Four slow clients, in this order: silent, unfinished headers, headers byte by byte, body byte by byte."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    socks[1].sendall(HEAD)  # the blank line that ends the headers never comes
    body = b'{"hours": 1}' + b" " * 100
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    tricklers = [Trickler(socks[2], HEAD + auth + b"Content-Length: 12\r\n\r\n" + body[:12]),
                 Trickler(socks[3], body, pause=0.05)]
    socks[3].sendall(HEAD + auth + f"Content-Length: {len(body)}\r\n\r\n".encode())
    for trickler in tricklers:
        trickler.start()
    return socks, tricklers


def test_status_answers_within_seconds_while_slow_clients_hold_connections(daemon):
    socks, tricklers = open_slow_clients(daemon.port)
    try:
        time.sleep(0.2)  # let both workers pick up a slow client first
        started = time.monotonic()
        response = requests.get(daemon.url + "/status", headers=AUTH, timeout=8)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 5, f"/status took {elapsed:.1f} s behind slow clients"
        # the client that never finished its headers was told so, and nothing was extended
        socks[1].settimeout(3)
        assert socks[1].recv(200).startswith(b"HTTP/1.1 408")
        assert response.json()["lease"]["granted_hours"] == 0
    finally:
        for trickler in tricklers:
            trickler.stop.set()
        for sock in socks:
            sock.close()
    log = daemon.log_path.read_text()
    assert "WORKER TIMEOUT" not in log
    assert "did not send its request within 1.0 s" in log


def test_a_normal_request_is_unaffected_by_the_deadline(daemon):
    response = daemon.post("/extend", {"hours": 0.5})
    assert response.status_code == 200, response.text
    assert daemon.get("/status")["lease"]["granted_hours"] == 0.5
    # a small body sent in two pieces inside the deadline is read in full
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        body = b'{"hours": 0.25}'
        sock.sendall(HEAD + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:5])
        time.sleep(0.3)
        sock.sendall(body[5:])
        sock.settimeout(5)
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    assert daemon.get("/status")["lease"]["granted_hours"] == 0.75
