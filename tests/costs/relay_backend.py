"""A real (if plain) tunnel backend for tests: a TCP relay from a local port to host:port."""

from __future__ import annotations

import contextlib
import socket
import threading

from soong import hookimpl
from soong.core.interfaces import TunnelBackend
from soong.core.types import Forward


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class RelayBackend(TunnelBackend):
    """Forwards ``127.0.0.1:local_port`` to ``target.host:remote_port`` with plain TCP."""

    name = "relay"
    opened: list = []

    @contextlib.contextmanager
    def open(self, target, forwards):
        """Relay each forward while the block runs."""
        listeners, out = [], []
        stop = threading.Event()
        for fwd in forwards:
            listener = socket.create_server(("127.0.0.1", fwd.local_port))
            listener.settimeout(0.1)
            listeners.append(listener)
            out.append(Forward(fwd.name, listener.getsockname()[1], fwd.remote_port, fwd.remote_host))

            def serve(listener=listener, fwd=fwd):
                while not stop.is_set():
                    try:
                        client, _ = listener.accept()
                    except (TimeoutError, OSError):
                        continue
                    try:
                        upstream = socket.create_connection((target.host, fwd.remote_port), timeout=2)
                    except OSError:
                        client.close()
                        continue
                    for a, b in ((client, upstream), (upstream, client)):
                        threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

            threading.Thread(target=serve, daemon=True).start()
        RelayBackend.opened.append(target)
        try:
            yield out
        finally:
            stop.set()
            for listener in listeners:
                listener.close()

    def start(self, target, forwards):
        """Not needed by the watchdog."""
        raise NotImplementedError

    def list(self):
        """No persistent tunnels."""
        return []

    def close(self, instance_id):
        """No persistent tunnels."""
        return False

    def check(self, instance_id):
        """No persistent tunnels."""
        return False


class RelayPlugin:
    """Registers :class:`RelayBackend`."""

    @hookimpl
    def soong_register_tunnel_backends(self, register):
        register(RelayBackend)
