"""The ``direct`` backend: endpoints are the instance's own ports; nothing runs locally.

``open`` and ``start`` hand back forwards whose ``local_host``/``local_port`` are
the instance's address and the remote port. ``start`` only records the endpoints
so ``soong tunnel status`` can show and check them. ``run`` has no shell to log
into: it runs the local command of config key ``tunnel.direct_exec`` with the
instance's address and the command appended (the sandbox points it at
:mod:`soong.sandbox.instance_exec`); without one it cannot run commands.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Iterator, Sequence

from soong.core.errors import UnreachableError, UsageError
from soong.core.interfaces import TunnelBackend
from soong.core.local_ports import port_answers
from soong.core.tunnel_state import StoredTunnel, TunnelStore, check_instance_id
from soong.core.types import Forward, RemoteResult, TunnelRecord, TunnelTarget

#: Most output kept from a command.
MAX_OUTPUT = 64 * 1024

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DirectBackend(TunnelBackend):
    """Reach an instance's ports at its own address, without any tunnel process."""

    name = "direct"

    @property
    def store(self) -> TunnelStore:
        """The profile's tunnel records (shared with other backends)."""
        return TunnelStore(self.context.paths.state_dir)

    @staticmethod
    def endpoints(target: TunnelTarget, forwards: Sequence[Forward]) -> list[Forward]:
        """Where each forward is reached: the instance's address for its loopback ports."""
        out = []
        for fwd in forwards:
            host = target.host if fwd.remote_host in _LOOPBACK else fwd.remote_host
            out.append(Forward(fwd.name, fwd.remote_port, fwd.remote_port, fwd.remote_host, local_host=host))
        return out

    @contextlib.contextmanager
    def open(self, target: TunnelTarget, forwards: Sequence[Forward]) -> Iterator[list[Forward]]:
        """Yield the endpoints; there is nothing to open or close."""
        check_instance_id(target.instance_id)
        yield self.endpoints(target, forwards)

    def start(self, target: TunnelTarget, forwards: Sequence[Forward]) -> TunnelRecord:
        """Record the endpoints of an instance (replacing an earlier ``direct`` record)."""
        store = self.store
        with store.lock(target.instance_id):
            existing = store.load(target.instance_id)
            if existing is not None and existing.backend != self.name:
                raise UsageError(f"instance {target.instance_id} already has a tunnel of backend '{existing.backend}'",
                                 hint="stop it first with 'soong tunnel stop'")
            stored = StoredTunnel(instance_id=target.instance_id, backend=self.name, host=target.host,
                                  forwards=tuple(self.endpoints(target, forwards)), started_at=self.context.clock(),
                                  name=target.name, state="up")
            store.save(stored)
            return stored.to_record(alive=self._alive(stored))

    @staticmethod
    def _alive(stored: StoredTunnel) -> bool:
        return all(port_answers(f.local_port, f.local_host, timeout=1.0) for f in stored.forwards)

    def list(self) -> list[TunnelRecord]:
        """Every recorded ``direct`` endpoint set, alive when all its ports answer."""
        return [s.to_record(alive=self._alive(s)) for s in self.store.all() if s.backend == self.name]

    def close(self, instance_id: str) -> bool:
        """Drop the record of an instance; False if there was none."""
        store = self.store
        with store.lock(instance_id):
            stored = store.load(instance_id)
            if stored is None or stored.backend != self.name:
                return False
            return store.remove(instance_id)

    def check(self, instance_id: str) -> bool:
        """Whether the instance's recorded ports answer."""
        stored = self.store.load(instance_id)
        return bool(stored and stored.backend == self.name and self._alive(stored))


    def run(self, target: TunnelTarget, argv: Sequence[str], *, stdin: bytes = b"",
            timeout: float = 60.0) -> RemoteResult:
        """Run ``argv`` through ``tunnel.direct_exec`` (UnreachableError when it is not set)."""
        check_instance_id(target.instance_id)
        prefix = list(self.context.config.get("tunnel.direct_exec") or [])
        if not prefix:
            raise UnreachableError(f"the direct tunnel backend cannot run commands on {target.host}: "
                                   "config key tunnel.direct_exec is not set")
        try:
            done = subprocess.run([*prefix, target.host, "--", *argv], input=stdin, capture_output=True,
                                  timeout=timeout, env=dict(os.environ))
        except subprocess.TimeoutExpired:
            raise UnreachableError(f"the command on {target.host} did not finish within {timeout:g}s") from None
        except OSError as exc:
            raise UnreachableError(f"cannot run tunnel.direct_exec ({prefix[0]}): {exc.strerror or exc}") from None
        return RemoteResult(done.returncode, done.stdout[:MAX_OUTPUT].decode("utf-8", "replace"),
                            done.stderr[:MAX_OUTPUT].decode("utf-8", "replace"))
