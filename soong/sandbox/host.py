"""The sandbox host: the machine room behind the emulated cloud.

``python -m soong.sandbox.host --root DIR`` (started by ``soong sandbox up``)
polls the emulator's control API a few times a second. For every instance
that becomes active it runs a :class:`~soong.sandbox.machine.Machine`: the
instance's real status daemon, started from the instance's real rendered user
data, and a model stand-in, both on the instance's own loopback address. When
an instance ends (terminated by the user, its daemon or the watchdog) its
processes stop.

When a daemon decides to end its instance, the host notes the reason in the
sandbox profile's ledger (``Ledger.note_ending``) while the instance is still
terminating, so that reconciliation closes the record as ``idle``, ``lease``,
``hard_limit`` or ``user`` instead of ``external``. This stands in for a user
seeing the daemon's decision in ``GET /status``: Lambda's API itself carries no
reason for a terminate (see docs/sandbox.md).

The host stops when told to (SIGTERM/SIGINT) and leaves the machines running
(``soong sandbox down`` stops them); if the emulator's process is gone, the
machines are gone too: it stops every instance's processes and exits.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from soong.sandbox import processes
from soong.sandbox.admin_client import EmulatorAdmin
from soong.sandbox.environment import child_env
from soong.sandbox.layout import SANDBOX_PROFILE, SandboxLayout, read_json, write_json
from soong.sandbox.machine import ENDED, Machine

LOG = logging.getLogger("soong.sandbox.host")

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 1.0

#: The daemon's shutdown reasons and the ledger's termination reasons they are.
LEDGER_REASONS = {"idle": "idle", "lease_expired": "lease", "hard_limit": "hard_limit", "requested": "user",
                  "preflight_failed": "preflight"}


def ledger_reason(daemon_reason: str) -> str | None:
    """The ledger's termination reason for a daemon's shutdown reason (None: not one soong knows)."""
    return LEDGER_REASONS.get(daemon_reason)


class Host:
    """The sandbox host of one sandbox run folder (see the module docstring).

    :param env: the environment the sandbox profile is resolved from (XDG folders);
        the processes it starts get it without secrets.
    """

    def __init__(self, layout: SandboxLayout, env: Mapping[str, str]) -> None:
        self.layout = layout
        self.env = dict(env)
        credentials = read_json(layout.credentials) or {}
        if not credentials.get("base_url"):
            raise SystemExit(f"soong sandbox host: no emulator credentials in {layout.credentials}")
        from soong.core.redact import register_secret

        for name in ("api_key", "admin_token"):
            register_secret(credentials.get(name))
        self.admin = EmulatorAdmin(credentials["base_url"], credentials.get("admin_token"))
        self.child_env = child_env(self.env, layout.root)
        self.machines: dict[str, Machine] = {}
        self.passes = 0
        self.last_error: str | None = None
        self._settings: dict[str, Any] = {}
        self._settings_key: float | None = None
        self._last_heartbeat = 0.0

    # -- settings and the emulator ----------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The sandbox settings (re-read when ``settings.json`` changes)."""
        try:
            key = self.layout.settings.stat().st_mtime
        except OSError:
            return self._settings
        if key != self._settings_key:
            self._settings = read_json(self.layout.settings) or self._settings
            self._settings_key = key
        return self._settings

    def emulator_alive(self) -> bool:
        """Whether the emulator's recorded process is still running."""
        record = processes.ProcessRecord.load(self.layout.process_record("emulator"))
        return record is not None and processes.is_running(record)

    # -- one pass -----------------------------------------------------------------------------------
    def machine(self, instance: dict[str, Any]) -> Machine | None:
        """The machine of an instance; None for one that never became active here and no longer can."""
        instance_id = instance["id"]
        machine = self.machines.get(instance_id)
        if machine is not None:
            return machine
        files = self.layout.instance(instance_id)
        if not files.root.exists() and instance.get("status") != "active":
            return None
        machine = Machine(instance_id, files, admin=self.admin, env=self.child_env, settings=self.settings,
                          on_shutdown=self.note_shutdown)
        self.machines[instance_id] = machine
        return machine

    def pass_once(self) -> None:
        """Look at every instance once and bring its processes in line."""
        for instance in self.admin.instances():
            machine = self.machine(instance)
            if machine is None or machine.ended:
                continue
            try:
                machine.sync(instance)
            except Exception as exc:  # one broken instance must not stop the others
                LOG.exception("instance %s: %s", instance.get("id"), exc)
        processes.reap_children()
        self.passes += 1

    def stop_all(self) -> None:
        """Stop the processes of every instance (the emulator is gone)."""
        for instance_id in self.layout.instance_ids():
            machine = self.machines.get(instance_id) or Machine(
                instance_id, self.layout.instance(instance_id), admin=self.admin, env=self.child_env,
                settings=self.settings)
            machine.stop_processes()
            machine.record["ended"] = True
            machine.record["status"] = machine.record.get("status") if machine.record.get("status") in ENDED else "gone"
            machine.save()

    # -- the ledger -----------------------------------------------------------------------------------
    def note_shutdown(self, instance_id: str, daemon_reason: str, detail: str) -> None:
        """Note in the sandbox ledger why the daemon is ending ``instance_id`` (if soong launched it)."""
        reason = ledger_reason(daemon_reason)
        if reason is None:
            LOG.warning("instance %s: unknown shutdown reason %r; not noted in the ledger", instance_id, daemon_reason)
            return
        from soong.core.ledger import LEDGER_FILE, Ledger
        from soong.core.paths import Paths

        path = Paths.from_env(self.env, SANDBOX_PROFILE).data_dir / LEDGER_FILE
        if not path.exists():
            return
        ledger = Ledger(path)
        try:
            record = ledger.get(instance_id)
            if record is None or not record.is_open:
                return
            if ledger.note_ending(instance_id, reason=reason, at=_dt.datetime.now(_dt.timezone.utc)):
                LOG.info("instance %s: noted '%s' in the sandbox ledger (%s)", instance_id, reason, detail)
        except Exception as exc:  # the ledger is the user's; never let it stop the host
            LOG.error("instance %s: could not note the shutdown reason in the ledger: %s", instance_id, exc)
        finally:
            ledger.close()

    # -- the loop -------------------------------------------------------------------------------------
    def heartbeat(self, force: bool = False) -> None:
        """Write ``host-heartbeat.json`` (at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = now
        write_json(self.layout.heartbeat, {"pid": os.getpid(), "at": time.time(), "passes": self.passes,
                                           "error": self.last_error})

    def run(self, stop: threading.Event) -> int:
        """Pass after pass until ``stop`` is set (0) or the emulator is gone (also 0, after stopping the machines)."""
        LOG.info("sandbox host running (pid %d) for %s", os.getpid(), self.admin.base_url)
        while not stop.is_set():
            if not self.emulator_alive():
                LOG.warning("the emulator is gone: stopping every instance's processes")
                self.stop_all()
                self.heartbeat(force=True)
                return 0
            try:
                self.pass_once()
                if self.last_error:
                    LOG.info("the emulator answers again")
                self.last_error = None
            except Exception as exc:
                message = str(exc) or type(exc).__name__
                if message != self.last_error:
                    LOG.error("pass failed: %s", message)
                self.last_error = message
            self.heartbeat(force=self.passes == 1)
            stop.wait(POLL_SECONDS)
        LOG.info("sandbox host stopping; instance processes keep running")
        self.admin.close()
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m soong.sandbox.host --root DIR``."""
    parser = argparse.ArgumentParser(prog="soong-sandbox-host", description="Run the sandbox's instances.")
    parser.add_argument("--root", required=True, type=Path, help="the sandbox run folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] %(levelname)s %(message)s")
    from soong.core.redact import RedactingFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host = Host(SandboxLayout(args.root.resolve()), os.environ)
    return host.run(stop)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
