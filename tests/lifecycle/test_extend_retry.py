"""``DaemonClient.extend`` retries with one idempotency key: an answer lost on the way back adds the hours once.

A real TCP relay sits between the client and the real daemon and drops the
daemon's answer to the first request (the request itself reaches the daemon
and the extension is granted), like a tunnel that breaks at the wrong moment.
"""

from __future__ import annotations

import socket
import threading

import pytest

from soong.core.daemon_client import DaemonClient
from soong.core.errors import UnreachableError
from tests.lifecycle.test_daemon_client import TOKEN, daemon  # noqa: F401 - the module's real daemon


class LossyRelay(threading.Thread):
    """Relays each connection to ``target``; the daemon's answers to the first ``drop`` requests are thrown away."""

    def __init__(self, target: tuple[str, int], drop: int) -> None:
        super().__init__(daemon=True)
        self.target, self.drop = target, drop
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []

    def run(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with client:
                request = _read_request(client)
                self.requests.append(request)
                with socket.create_connection(self.target) as upstream:
                    upstream.sendall(request)
                    answer = _read_all(upstream)
                if len(self.requests) > self.drop:
                    client.sendall(answer)
                # else: close without a word, after the daemon has acted

    def close(self) -> None:
        self.server.close()


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _key_of(request: bytes) -> str:
    line = next(line for line in request.split(b"\r\n") if line.lower().startswith(b"idempotency-key:"))
    return line.split(b":", 1)[1].strip().decode()


@pytest.fixture
def relay(daemon):  # noqa: F811
    def make(drop: int) -> LossyRelay:
        made = LossyRelay(("127.0.0.1", daemon["port"]), drop)
        made.start()
        relays.append(made)
        return made

    relays: list[LossyRelay] = []
    yield make
    for made in relays:
        made.close()


def test_a_lost_answer_is_retried_with_the_same_key_and_granted_once(daemon, relay):  # noqa: F811
    with DaemonClient(daemon["url"], TOKEN) as direct:
        before = direct.status()["lease"]["granted_hours"]
    lossy = relay(drop=1)
    with DaemonClient(f"http://127.0.0.1:{lossy.port}", TOKEN) as client:
        client.retry_pause = 0.05
        answer = client.extend(0.25)
    assert len(lossy.requests) == 2
    assert _key_of(lossy.requests[0]) == _key_of(lossy.requests[1])
    with DaemonClient(daemon["url"], TOKEN) as direct:
        after = direct.status()["lease"]["granted_hours"]
    assert after == pytest.approx(before + 0.25)  # not + 0.5
    assert answer["granted_hours"] == 0.25 and answer["granted_hours_total"] == pytest.approx(after)


def test_each_extend_sends_its_own_key(daemon, relay):  # noqa: F811
    lossy = relay(drop=0)
    with DaemonClient(f"http://127.0.0.1:{lossy.port}", TOKEN) as client:
        client.extend(0.1)
        client.extend(0.1)
    assert _key_of(lossy.requests[0]) != _key_of(lossy.requests[1])


def test_retries_stop_after_the_attempts(daemon, relay):  # noqa: F811
    lossy = relay(drop=10)
    with DaemonClient(f"http://127.0.0.1:{lossy.port}", TOKEN) as client:
        client.retry_pause = 0.0
        with pytest.raises(UnreachableError):
            client.extend(0.1, attempts=3)
    assert len(lossy.requests) == 3
    assert len({_key_of(r) for r in lossy.requests}) == 1
