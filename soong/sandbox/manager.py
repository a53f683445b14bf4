"""Bring the sandbox up, tear it down, and say what runs: the Python API behind ``soong sandbox``.

::

    from soong.sandbox.manager import Sandbox

    sandbox = Sandbox()                      # the sandbox of this environment's XDG folders
    report = sandbox.up(time_scale=60)       # idempotent: a running sandbox is kept
    ...                                      # soong --profile sandbox start ...
    sandbox.status()                         # components and instances with their processes
    sandbox.down()                           # terminates every instance; no process is left

``up`` starts, each in its own session and marked with ``SOONG_SANDBOX_ROOT``:
the Lambda emulator under gunicorn on a free loopback port (seeded with the
sandbox account, rate limits off), then the sandbox host
(:mod:`soong.sandbox.host`). It writes the sandbox profile's config and secrets
(:mod:`soong.sandbox.profile`). A stale record (a dead pid) is cleaned up and
started again. ``down`` terminates every instance through the API, closes them
in the sandbox ledger as ended by the user, stops every process and checks
``/proc`` that none is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
import random
import secrets as _random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from soong.sandbox import processes
from soong.sandbox.admin_client import EmulatorAdmin
from soong.sandbox.environment import child_env
from soong.sandbox.errors import SandboxError
from soong.sandbox.layout import MARKER_ENV, SandboxLayout, read_json, write_json
from soong.sandbox.machine import COMPONENTS, ENDED, INSTANCE_ENV
from soong.sandbox.ports import free_port, port_is_free, wait_until
from soong.sandbox.seed import DEFAULT_CAPACITY, ensure_ssh_key, sandbox_seed

#: The daemon's time scale must stay within what it accepts.
MAX_TIME_SCALE = 1_000_000.0
MAX_BOOT_DELAY = 600.0


@dataclasses.dataclass
class UpReport:
    """What ``up`` did."""

    emulator_url: str
    api_url: str
    profile_config: Path
    time_scale: float
    boot_delay: float
    started: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    cleaned: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    nvidia_driver: str = ""


@dataclasses.dataclass
class DownReport:
    """What ``down`` did."""

    terminated: list[str] = dataclasses.field(default_factory=list)
    stopped: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    """One row of ``soong sandbox status``: a process the sandbox runs (or an instance without one)."""

    component: str
    instance: str | None
    pid: int | None
    address: str | None
    alive: bool
    note: str = ""


class Sandbox:
    """The sandbox of one environment (its XDG folders decide where everything lives).

    :param env: the environment to resolve folders from and to pass on (secrets removed) to
        the processes it starts; default: this process's.
    :param startup_timeout: seconds to wait for the emulator and the host to come up.
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, startup_timeout: float = 30.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.env.pop(MARKER_ENV, None)
        self.env.pop(INSTANCE_ENV, None)
        self.layout = SandboxLayout.from_env(self.env)
        self.startup_timeout = startup_timeout

    # -- records ------------------------------------------------------------------------------------
    @property
    def marker(self) -> tuple[str, str]:
        """The environment marker every process of this sandbox carries."""
        return MARKER_ENV, str(self.layout.root)

    def record(self, component: str) -> processes.ProcessRecord | None:
        """The process record of ``emulator`` or ``host``."""
        return processes.ProcessRecord.load(self.layout.process_record(component))

    def alive(self, component: str) -> bool:
        """Whether ``emulator`` or ``host`` is running."""
        record = self.record(component)
        return record is not None and processes.is_running(record)

    def credentials(self) -> dict[str, Any]:
        """``base_url``, ``api_key`` and ``admin_token`` of the running emulator ({} when there is none)."""
        return read_json(self.layout.credentials) or {}

    def admin(self) -> EmulatorAdmin:
        """A client of the running emulator's control API; SandboxError when the sandbox is not up."""
        creds = self.credentials()
        if not creds.get("base_url") or not self.alive("emulator"):
            raise SandboxError("the sandbox is not up", hint="run 'soong sandbox up'")
        return EmulatorAdmin(creds["base_url"], creds.get("admin_token"))

    def is_up(self) -> bool:
        """Whether the emulator and the host both run."""
        return self.alive("emulator") and self.alive("host")

    def leftover_processes(self) -> list[int]:
        """Every live process that carries this sandbox's marker (none after ``down``)."""
        return processes.marked_processes(*self.marker)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.layout.ensure()
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- up -------------------------------------------------------------------------------------------
    def up(self, *, time_scale: float = 1.0, boot_delay: float = 2.0, nvidia_driver: str | None = None) -> UpReport:
        """Start what is not running (emulator, host), write the profile; keep what runs. Idempotent.

        ``nvidia_driver`` is the driver version the instances' stand-in ``nvidia-smi``
        reports to their preflight (default: a current one; an old one makes the
        preflight fail, as it would on a real machine with that driver).
        """
        from soong.sandbox.gpu_standin import DEFAULT_DRIVER, valid_driver

        nvidia_driver = nvidia_driver or DEFAULT_DRIVER
        if not valid_driver(nvidia_driver):
            raise SandboxError(f"--nvidia-driver must be a version such as {DEFAULT_DRIVER}, not {nvidia_driver!r}")
        if not 1.0 <= time_scale <= MAX_TIME_SCALE:
            raise SandboxError(f"--time-scale must be between 1 and {MAX_TIME_SCALE:g}, not {time_scale:g}")
        if not 0.0 <= boot_delay <= MAX_BOOT_DELAY:
            raise SandboxError(f"--boot-delay must be between 0 and {MAX_BOOT_DELAY:g} seconds, not {boot_delay:g}")
        from soong.sandbox.profile import overriding_env, store_secrets, write_profile

        with self._locked():
            report = UpReport("", "", Path(), float(time_scale), float(boot_delay), nvidia_driver=nvidia_driver)
            try:
                self._up(report, store_secrets, write_profile)
            except BaseException:
                if "emulator" in report.started:  # leave no half-started sandbox behind
                    self._clean_up()
                    self.layout.settings.unlink(missing_ok=True)
                raise
            report.warnings = [f"${name} is set and overrides the sandbox profile's setting; unset it when using "
                               "--profile sandbox" for name in overriding_env(self.env)]
            return report

    def _up(self, report: UpReport, store_secrets: Any, write_profile: Any) -> None:
        creds = self.credentials()
        emulator_ok = False
        if self.alive("emulator") and creds.get("base_url"):
            with contextlib.closing(EmulatorAdmin(creds["base_url"], creds.get("admin_token"))) as admin:
                emulator_ok = admin.healthy()
        if emulator_ok:
            with contextlib.closing(self.admin()) as admin:
                admin.configure(boot_delay=report.boot_delay)
            report.kept.append("emulator")
        else:
            report.cleaned += self._clean_up()
            report.started.append("emulator")
            creds = self._start_emulator(report.boot_delay)
        report.emulator_url = creds["base_url"]
        report.api_url = creds["base_url"] + "/api/v1"
        write_json(self.layout.settings, {"time_scale": report.time_scale, "boot_delay": report.boot_delay,
                                          "api_url": report.api_url, "ip_base": creds.get("ip_base"),
                                          "nvidia_driver": report.nvidia_driver})
        ssh_key = self.layout.ssh_key if self.layout.ssh_key.exists() else None
        report.profile_config = write_profile(self.env, api_url=report.api_url, ssh_key_path=ssh_key)
        if not emulator_ok:  # after the profile is written: it decides where secrets are kept
            store_secrets(self.env, creds["api_key"])
        if emulator_ok and self.alive("host"):
            report.kept.append("host")
        else:
            host = self.record("host")
            if host is not None:
                processes.stop(host, marker=self.marker)
                report.cleaned.append("host")
            report.started.append("host")
            self._start_host()

    def _start_emulator(self, boot_delay: float) -> dict[str, Any]:
        """Start a freshly seeded emulator; return (and store, 0600) its credentials."""
        public_key = ensure_ssh_key(self.layout.ssh_key)
        write_json(self.layout.seed, sandbox_seed(public_key))
        ip_base = choose_ip_base()
        creds = {"api_key": "sandbox-" + _random.token_hex(16), "admin_token": _random.token_urlsafe(24),
                 "ip_base": ip_base}
        env = child_env(self.env, self.layout.root)
        env["SOONG_EMULATOR_API_KEY"] = creds["api_key"]
        env["SOONG_EMULATOR_ADMIN_TOKEN"] = creds["admin_token"]
        log = self.layout.log("emulator")
        problem = ""
        for _attempt in range(3):
            port = free_port("127.0.0.1")
            argv = [sys.executable, "-m", "soong.plugins.lambda_cloud.emulator.cli", "--host", "127.0.0.1",
                    "--port", str(port), "--seed", str(self.layout.seed), "--boot-delay", f"{boot_delay:g}",
                    "--rate-limit", "off", "--launch-rate-limit", "off", "--default-capacity", str(DEFAULT_CAPACITY),
                    "--ip-base", ip_base]
            record = processes.spawn("emulator", argv, log=log, env=env, port=port, cwd=self.layout.root)
            base_url = f"http://127.0.0.1:{port}"
            record.extra["address"] = base_url
            record.save(self.layout.process_record("emulator"))
            if self._wait_emulator(base_url, creds["admin_token"], record):
                creds["base_url"] = base_url
                write_json(self.layout.credentials, creds)
                return creds
            problem = _tail(log)
            processes.stop(record, marker=self.marker)
        raise SandboxError(f"the emulator did not start (see {log}): {problem}")

    def _wait_emulator(self, base_url: str, admin_token: str, record: processes.ProcessRecord) -> bool:
        """Wait until the emulator answers (True) or its process exits or the time is up (False)."""
        with contextlib.closing(EmulatorAdmin(base_url, admin_token)) as admin:
            wait_until(lambda: admin.healthy(0.5) or not processes.is_running(record), self.startup_timeout)
            return processes.is_running(record) and admin.healthy(0.5)

    def _start_host(self) -> None:
        argv = [sys.executable, "-m", "soong.sandbox.host", "--root", str(self.layout.root)]
        log = self.layout.log("host")
        self.layout.heartbeat.unlink(missing_ok=True)
        record = processes.spawn("host", argv, log=log, env=child_env(self.env, self.layout.root), cwd=self.layout.root)
        record.save(self.layout.process_record("host"))

        def ready() -> bool:
            beat = read_json(self.layout.heartbeat) or {}
            return (beat.get("pid") == record.pid and beat.get("passes", 0) >= 1) or not processes.is_running(record)

        if not wait_until(ready, self.startup_timeout, interval=0.05) or not processes.is_running(record):
            processes.stop(record, marker=self.marker)
            raise SandboxError(f"the sandbox host did not start (see {log}): {_tail(log)}")

    def _clean_up(self) -> list[str]:
        """Stop whatever a previous run left (dead or alive) and forget its instances; return what was cleaned."""
        cleaned = []
        for component in ("host", "emulator"):
            record = self.record(component)
            if record is not None:
                processes.stop(record, marker=self.marker)
                self.layout.process_record(component).unlink(missing_ok=True)
                cleaned.append(component)
        for instance_id in self.layout.instance_ids():
            files = self.layout.instance(instance_id)
            for component in COMPONENTS:
                record = processes.ProcessRecord.load(files.process_record(component))
                if record is not None:
                    processes.stop(record, marker=self.marker)
            shutil.rmtree(files.root, ignore_errors=True)
            cleaned.append(f"instance {instance_id}")
        leftovers = self.leftover_processes()
        if leftovers:
            processes.kill_all(leftovers)
            cleaned.append(f"{len(leftovers)} leftover process(es)")
        for path in (self.layout.credentials, self.layout.heartbeat):
            path.unlink(missing_ok=True)
        return cleaned

    # -- down -----------------------------------------------------------------------------------------------
    def down(self, *, stop_timeout: float = 15.0) -> DownReport:
        """Terminate every instance through the API, stop every process, verify none is left.

        Raises SandboxError if a process of the sandbox survives.
        """
        from soong.sandbox.profile import forget_secrets

        report = DownReport()
        with self._locked():
            if self.alive("emulator") and self.credentials().get("base_url"):
                self._terminate_all(report, stop_timeout)
            for component in ("host",):
                record = self.record(component)
                if record is not None and processes.stop(record, marker=self.marker):
                    report.stopped.append(component)
            for instance_id in self.layout.instance_ids():
                files = self.layout.instance(instance_id)
                for component in COMPONENTS:
                    record = processes.ProcessRecord.load(files.process_record(component))
                    if record is not None and processes.stop(record, marker=self.marker):
                        report.stopped.append(f"{component} of {instance_id}")
            record = self.record("emulator")
            if record is not None and processes.stop(record, marker=self.marker):
                report.stopped.append("emulator")
            leftovers = self.leftover_processes()
            if leftovers:
                processes.kill_all(leftovers)
                report.warnings.append(f"killed {len(leftovers)} leftover process(es)")
            if not wait_until(lambda: not self.leftover_processes(), 5.0):
                pids = ", ".join(str(p) for p in self.leftover_processes())
                raise SandboxError(f"sandbox processes are still running after down: {pids}")
            for instance_id in self.layout.instance_ids():
                shutil.rmtree(self.layout.instance(instance_id).root, ignore_errors=True)
            for path in (self.layout.process_record("host"), self.layout.process_record("emulator"),
                         self.layout.credentials, self.layout.heartbeat, self.layout.settings):
                path.unlink(missing_ok=True)
            forget_secrets(self.env)
        return report

    def _terminate_all(self, report: DownReport, timeout: float) -> None:
        """Terminate every billable instance through the API, as the user, and close them in the ledger."""
        from soong.core.errors import SoongError
        from soong.core.ledger import Ledger
        from soong.core.reconcile import reconcile_with_provider

        context = self.api_context()
        try:
            provider = context.provider("lambda")
            ids = [inst.id for inst in provider.list_instances() if inst.is_billable]
            ledger = Ledger.for_context(context)
            now = context.clock()
            for instance_id in ids:
                record = ledger.get(instance_id)
                if record is not None and record.is_open:
                    ledger.note_ending(instance_id, reason="user", at=now)
            if ids:
                provider.terminate(ids)
            report.terminated = ids
            if not wait_until(lambda: self._all_ended(ids), timeout, interval=0.2):
                report.warnings.append("some instances were still terminating when the sandbox went down")
            reconcile_with_provider(context, ledger=ledger)
            ledger.close()
        except SoongError as exc:
            report.warnings.append(f"could not terminate the instances through the API: {exc}")

    def _all_ended(self, ids: list[str]) -> bool:
        try:
            with contextlib.closing(self.admin()) as admin:
                statuses = {i["id"]: i.get("status") for i in admin.instances()}
        except SandboxError:
            return True
        return all(statuses.get(i) in ENDED for i in ids)

    def api_context(self) -> Any:
        """A sandbox-profile Context whose Lambda provider surely talks to this sandbox's emulator.

        The emulator's URL and key are put into the context's environment, so a
        ``LAMBDA_API_KEY`` or ``SOONG_LAMBDA_API_URL`` of the user's can never send
        these calls anywhere else.
        """
        from soong.sandbox.profile import sandbox_context

        creds = self.credentials()
        if not creds.get("base_url"):
            raise SandboxError("the sandbox is not up", hint="run 'soong sandbox up'")
        env = dict(self.env, LAMBDA_API_KEY=creds["api_key"], SOONG_LAMBDA_API_URL=creds["base_url"] + "/api/v1")
        return sandbox_context(env)

    # -- status -------------------------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        """The emulator, the host, and every instance with its processes."""
        rows = []
        emulator = self.record("emulator")
        emulator_alive = emulator is not None and processes.is_running(emulator)
        live: dict[str, dict[str, Any]] = {}
        note = "not started" if emulator is None else ""
        if emulator_alive:
            try:
                with contextlib.closing(self.admin()) as admin:
                    live = {i["id"]: i for i in admin.instances()}
                billable = sum(1 for i in live.values() if i.get("status") not in ENDED)
                note = f"{billable} instance(s) not ended"
            except SandboxError as exc:
                note = str(exc)
        elif emulator is not None:
            note = "stale record: not running ('soong sandbox up' cleans it up)"
        rows.append(ComponentStatus("emulator", None, emulator.pid if emulator else None,
                                    (emulator.extra.get("address") if emulator else None), emulator_alive, note))
        host = self.record("host")
        host_alive = host is not None and processes.is_running(host)
        beat = read_json(self.layout.heartbeat) or {}
        if host is None:
            note = "not started"
        elif not host_alive:
            note = "stale record: not running ('soong sandbox up' starts it again)"
        else:
            age = time.time() - float(beat.get("at") or 0)
            note = f"last pass {age:.1f}s ago" + (f"; error: {beat['error']}" if beat.get("error") else "")
        rows.append(ComponentStatus("host", None, host.pid if host else None, None, host_alive, note))
        for instance_id in self.layout.instance_ids():
            rows += self._instance_rows(instance_id, live.get(instance_id))
        return rows

    def _instance_rows(self, instance_id: str, live: dict[str, Any] | None) -> list[ComponentStatus]:
        files = self.layout.instance(instance_id)
        record = read_json(files.record) or {}
        status = (live or {}).get("status") or record.get("status") or "unknown"
        parts = [status]
        shutdown = record.get("shutdown")
        if shutdown:
            parts.append(f"ended by its daemon: {shutdown.get('reason')} ({shutdown.get('detail')})")
        if record.get("error"):
            parts.append(f"error: {record['error']}")
        parts += record.get("notes") or []
        note = "; ".join(parts)
        daemon = processes.ProcessRecord.load(files.process_record("daemon"))
        if daemon is None:
            rows = [ComponentStatus("instance", instance_id, None, record.get("ip"), False, note)]
        else:
            rows = [ComponentStatus("daemon", instance_id, daemon.pid, daemon.extra.get("address"),
                                    processes.is_running(daemon), note)]
        standin = processes.ProcessRecord.load(files.process_record("standin"))
        if standin is not None:
            rows.append(ComponentStatus("standin", instance_id, standin.pid, standin.extra.get("address"),
                                        processes.is_running(standin), f"serves {record.get('model')} (stand-in)"))
        return rows


def choose_ip_base(rng: random.Random | None = None) -> str:
    """A random first instance address in 127.0.0.0/8 (away from 127.0.0.x), so sandboxes rarely collide.

    SandboxError when this machine cannot bind such an address (only 127.0.0.1
    is routed to loopback on some systems, e.g. macOS).
    """
    rng = rng or random.SystemRandom()
    for _ in range(20):
        candidate = ipaddress.IPv4Address(f"127.{rng.randint(16, 254)}.{rng.randint(0, 255)}.2")
        host = str(candidate)
        try:
            import socket

            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
        except OSError as exc:
            raise SandboxError(f"this machine cannot bind {host} ({exc.strerror}); the sandbox gives every instance "
                               "its own address in 127.0.0.0/8, which Linux routes to loopback") from None
        if port_is_free(host, 8080) and port_is_free(host, 8000):
            return host
    raise SandboxError("found no free loopback address block for sandbox instances")


def _tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(line for line in text[-limit:].splitlines() if line.strip())
