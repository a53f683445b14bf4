"""One sandbox instance as a "machine": its real status daemon and its model stand-in.

:class:`Machine` is driven by the sandbox host: every pass it is told the
instance's status in the emulator and brings its processes in line, as the
instance's own machine would:

* ``active``: set up from the user data once, then keep the daemon running;
  once it answers, run the user data's own preflight program once (with a
  stand-in ``nvidia-smi`` reporting the instance type's GPUs and the driver
  version of the sandbox's settings, :mod:`soong.sandbox.gpu_standin`); unless
  it failed, keep the stand-in (when the user data runs SGLang, requiring the
  user data's API key; when the model waits for the Hugging Face token, only once
  soong has delivered it, logging ``sglang-waiting-token`` until then, as SGLang's
  launcher does) running, restarting one that died
  (as systemd does on a real instance; the daemon's state folder is kept, so a
  restarted daemon keeps its lease), and log boot phases as the bootstrap would;
* ``booting`` again after being active (a restart): the processes stop, as on a reboot;
* ``terminated``, ``preempted`` or gone: the processes stop for good.

While the daemon runs, its ``GET /status`` is read; a shutdown it decided (idle,
lease, hard limit, requested) is kept in ``instance.json`` and reported to the
host, which notes the reason in the sandbox ledger.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from soong.core.atomic import write_private
from soong.sandbox import processes
from soong.sandbox.errors import PortInUseError
from soong.sandbox.instance_setup import plan_instance
from soong.sandbox.layout import InstanceFiles, read_json, write_json
from soong.sandbox.ports import ensure_free, http_ok, require_loopback

if TYPE_CHECKING:
    from soong.sandbox.admin_client import EmulatorAdmin

LOG = logging.getLogger("soong.sandbox.host")

COMPONENTS = ("daemon", "standin")
#: Environment variable naming the instance in each of its processes.
INSTANCE_ENV = "SOONG_SANDBOX_INSTANCE"
#: Emulator statuses after which an instance's processes stop for good.
ENDED = ("terminated", "preempted", "gone")
#: Least time between two starts of one component.
RESTART_PAUSE = 2.0
#: How often a running daemon's /status is read.
STATUS_POLL_SECONDS = 0.5
SGLANG_PORT = 8000


def standin_instance_type(name: str | None) -> Any:
    """The :class:`~soong.core.types.InstanceType` the stand-in GPUs copy: from the emulator's bundled data."""
    import importlib.resources

    from soong.plugins.lambda_cloud.parsing import parse_instance_type

    if not name:
        return None
    data = json.loads(importlib.resources.files("soong.plugins.lambda_cloud.emulator").joinpath(
        "data/instance_types.json").read_text(encoding="utf-8"))
    item = (data.get("data") or {}).get(name)
    return parse_instance_type(item["instance_type"], f"data.{name}.instance_type") if item else None


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Machine:
    """The processes of one sandbox instance (see the module docstring).

    :param files: the instance's folder.
    :param admin: the emulator's control API (to read the user data).
    :param env: the environment its processes get (markers included, secrets excluded).
    :param settings: returns the sandbox settings (``time_scale``, ``api_url``) now.
    :param on_shutdown: called once with ``(instance_id, daemon_reason, detail)`` when the daemon decides to end.
    """

    def __init__(self, instance_id: str, files: InstanceFiles, *, admin: "EmulatorAdmin", env: dict[str, str],
                 settings: Callable[[], dict[str, Any]],
                 on_shutdown: Callable[[str, str, str], None] = lambda *_: None) -> None:
        self.id = instance_id
        self.files = files
        self.admin = admin
        self.env = dict(env, **{INSTANCE_ENV: instance_id})
        self.settings = settings
        self.on_shutdown = on_shutdown
        self.record: dict[str, Any] = read_json(files.record) or {"id": instance_id, "phases": [], "restarts": {}}
        self._last_start: dict[str, float] = {}
        self._last_status_poll = 0.0
        self._last_error_at = 0.0

    # -- the record ---------------------------------------------------------------------------
    def save(self) -> None:
        """Write ``instance.json``."""
        write_json(self.files.record, self.record)

    @property
    def ended(self) -> bool:
        """Whether the instance has ended and its processes were stopped for good."""
        return bool(self.record.get("ended"))

    def process(self, component: str) -> processes.ProcessRecord | None:
        """The process record of ``daemon`` or ``standin``, if one was started."""
        return processes.ProcessRecord.load(self.files.process_record(component))

    def running(self, component: str) -> bool:
        """Whether that component's process is alive."""
        record = self.process(component)
        return record is not None and processes.is_running(record)

    @property
    def marker(self) -> tuple[str, str]:
        """The environment marker every process of this instance carries."""
        return INSTANCE_ENV, self.id

    # -- one pass -----------------------------------------------------------------------------
    def sync(self, instance: dict[str, Any]) -> None:
        """Bring the processes in line with the instance's status in the emulator (``instance``: its admin view)."""
        status = instance.get("status")
        before = copy.deepcopy(self.record)
        self.record.update({"id": self.id, "name": instance.get("name"), "ip": instance.get("ip"), "status": status,
                            "instance_type": instance.get("instance_type")})
        if status == "active":
            self._run()
        elif status == "booting" and any(self.running(c) for c in COMPONENTS):
            LOG.info("instance %s is restarting: stopping its processes as a reboot would", self.id)
            self.stop_processes()
            self.record["phases"] = []
        elif status == "terminating":
            self._watch_shutdown()
        elif status in ENDED:
            self.end()
        if self.record != before:
            self.save()

    def _run(self) -> None:
        if not self.record.get("prepared"):
            if self.record.get("bare") or not self._retry_due():
                return
            if not self._prepare():
                return
        if self.record.get("bare"):
            return
        self._ensure("daemon")
        self._boot_phases()
        if "daemon-up" in self.record.get("phases", []) and not self.record.get("preflight"):
            self._preflight()
        if self.record.get("model") and self.record.get("preflight") in ("passed", "none") and self._token_ready():
            self._ensure("standin")
            self._boot_phases()
        self._watch_shutdown()

    def _token_ready(self) -> bool:
        """Whether the model server may start: it needs no Hugging Face token, or the token was delivered."""
        if not self.record.get("hf_wait") or self.files.hf_token.exists():
            return True
        self._phase("sglang-waiting-token", "the model stand-in waits for the Hugging Face token (a gated model); "
                                            "soong delivers it once the daemon answers")
        return False

    def _retry_due(self) -> bool:
        return time.monotonic() - self._last_error_at >= RESTART_PAUSE

    def _fail(self, message: str) -> None:
        if self.record.get("error") != message:
            LOG.error("instance %s: %s", self.id, message)
        self.record["error"] = message
        self._last_error_at = time.monotonic()

    # -- set-up from the user data ------------------------------------------------------------------
    def _prepare(self) -> bool:
        from soong.core.bootstrap import UserDataError
        from soong.sandbox.errors import SandboxError

        ip = self.record.get("ip")
        try:
            require_loopback(ip or "")
            document = self.admin.user_data(self.id)
        except SandboxError as exc:
            self._fail(str(exc))
            return False
        if not document:
            self._bare("it was launched without user data")
            return False
        settings = self.settings()
        try:
            plan = plan_instance(document, ip=ip, files=self.files, api_url=settings["api_url"],
                                 time_scale=float(settings.get("time_scale", 1.0)))
        except UserDataError as exc:
            self._bare(f"its user data has no soong daemon ({exc})")
            return False
        from soong.core.redact import register_secret

        for value in (plan.token, plan.api_key, plan.sglang_api_key):
            register_secret(value)
        write_private(self.files.token, plan.token + "\n")
        if plan.api_key is not None:  # else soong delivers it over "SSH" (secrets.api_key_delivery: ssh)
            write_private(self.files.api_key, plan.api_key + "\n")
        if plan.sglang_api_key is not None:
            write_private(self.files.sglang_api_key, plan.sglang_api_key + "\n")
        if plan.receiver_program is not None:
            write_private(self.files.receiver_program, plan.receiver_program)
            write_private(self.files.receiver_config, json.dumps(plan.receiver_config, indent=1) + "\n")
        import yaml

        write_private(self.files.daemon_config, "# soong sandbox: the instance's daemon config, made local\n"
                      + yaml.safe_dump(plan.daemon_config, sort_keys=False))
        if plan.preflight_program is not None:
            write_private(self.files.preflight_program, plan.preflight_program)
            write_private(self.files.preflight_config, json.dumps(plan.preflight_config, indent=1) + "\n")
        self.record.update({"prepared": True, "error": None, "daemon_port": plan.daemon_port, "model": plan.model,
                            "notes": list(plan.notes), "time_scale": plan.daemon_config["time_scale"],
                            "preflight": None if plan.preflight_program is not None else "none",
                            "hf_wait": plan.hf_token_expected})
        LOG.info("instance %s at %s: daemon on :%d, model stand-in %s", self.id, ip, plan.daemon_port,
                 f"for {plan.model} on :{SGLANG_PORT}" if plan.model else "not needed (no SGLang in the user data)")
        return True

    def _bare(self, why: str) -> None:
        LOG.warning("instance %s runs nothing in the sandbox: %s", self.id, why)
        self.record.update({"bare": True, "error": None, "notes": [f"nothing runs for it: {why}"]})

    # -- processes --------------------------------------------------------------------------------
    def address(self, component: str) -> tuple[str, int] | None:
        """Where the component listens (``(ip, port)``), once the instance is set up."""
        ip = self.record.get("ip")
        if not ip or not self.record.get("prepared"):
            return None
        return (ip, self.record["daemon_port"]) if component == "daemon" else (ip, SGLANG_PORT)

    def _argv(self, component: str) -> list[str]:
        if component == "daemon":
            return [sys.executable, "-m", "soong_daemon.cli", "--config", str(self.files.daemon_config)]
        ip, port = self.address("standin")  # type: ignore[misc]
        key = ["--api-key-file", str(self.files.sglang_api_key)] if self.files.sglang_api_key.exists() else []
        return [sys.executable, "-m", "soong.sandbox.standin_server", "--bind", f"{ip}:{port}",
                "--model", self.record["model"], *key]

    def _ensure(self, component: str) -> None:
        old = self.process(component)
        if old is not None and processes.is_running(old):
            return
        now = time.monotonic()
        if now - self._last_start.get(component, -RESTART_PAUSE) < RESTART_PAUSE:
            return
        if old is not None:  # it died: clear what is left of its process group first
            processes.stop(old, timeout=2.0, marker=self.marker)
        ip, port = self.address(component)  # type: ignore[misc]
        self._last_start[component] = now
        try:
            ensure_free(ip, port, f"the {component} of instance {self.id}")
        except PortInUseError as exc:
            self._fail(str(exc))
            return
        record = processes.spawn(component, self._argv(component), log=self.files.log(component), env=self.env,
                                 port=port, cwd=self.files.root)
        record.extra["address"] = f"{ip}:{port}"
        record.save(self.files.process_record(component))
        if (self.record.get("error") or "").startswith(f"{ip}:{port} "):
            self.record["error"] = None
        if old is not None:
            restarts = self.record.setdefault("restarts", {})
            restarts[component] = restarts.get(component, 0) + 1
            LOG.warning("instance %s: the %s (pid %d) had stopped; started it again (pid %d)", self.id, component,
                        old.pid, record.pid)
        if component == "standin":
            self._phase("sglang-loading", f"sandbox model stand-in for {self.record['model']} starting (not a real model)")

    def stop_processes(self) -> None:
        """Stop both processes (and anything left of their process groups)."""
        for component in COMPONENTS:
            record = self.process(component)
            if record is not None:
                processes.stop(record, timeout=10.0, marker=self.marker)
        leftovers = processes.marked_processes(*self.marker)
        if leftovers:
            LOG.warning("instance %s: killing %d leftover process(es)", self.id, len(leftovers))
            processes.kill_all(leftovers)

    def end(self) -> None:
        """The instance has ended: read the daemon's last word, then stop its processes for good."""
        if self.ended:
            return
        self._watch_shutdown(force=True)
        self.stop_processes()
        self.record["ended"] = True
        LOG.info("instance %s is %s: its processes are stopped", self.id, self.record.get("status"))

    # -- the preflight ----------------------------------------------------------------------------
    def _preflight(self) -> None:
        """Run the user data's preflight program once, as its shell part would right after the daemon is up."""
        import subprocess

        from soong.sandbox import gpu_standin

        config = read_json(self.files.preflight_config)
        if not isinstance(config, dict) or not self.files.preflight_program.exists():
            self.record["preflight"] = "none"  # set up by a sandbox that ran no preflight: nothing to run
            return
        driver = str(self.settings().get("nvidia_driver") or gpu_standin.DEFAULT_DRIVER)
        itype = standin_instance_type(self.record.get("instance_type") or config.get("instance_type"))
        gpu_standin.install(self.files.gpu_bin, gpu_standin.gpus_for(itype, driver) if itype else [])
        env = dict(self.env, PATH=f"{self.files.gpu_bin}{os.pathsep}{self.env.get('PATH', os.defpath)}")
        try:
            result = subprocess.run([sys.executable, str(self.files.preflight_program), "--config",
                                     str(self.files.preflight_config)], env=env, capture_output=True, text=True,
                                    timeout=120, cwd=self.files.root)
            status = result.returncode
        except (OSError, subprocess.SubprocessError) as exc:
            status, result = -1, None
            LOG.error("instance %s: the preflight could not run: %s", self.id, exc)
        if status == 0:
            self.record["preflight"] = "passed"
            self.record.setdefault("phases", []).append("preflight-ok")
            return
        self.record["preflight"] = "failed"
        if status == 1:
            self.record.setdefault("phases", []).append("preflight-failed")
        else:
            self._phase("preflight-failed", f"the preflight program could not run (exit status {status})")
        LOG.warning("instance %s: the preflight failed; nothing else starts (%s)", self.id,
                    (result.stdout.strip() if result is not None else "") or "see its boot log")

    # -- boot log ---------------------------------------------------------------------------------
    def _phase(self, phase: str, message: str) -> None:
        phases = self.record.setdefault("phases", [])
        if phase in phases:
            return
        phases.append(phase)
        with open(self.files.boot_log, "a", encoding="utf-8") as log:
            log.write(f"{_now_iso()} phase={phase} {message}\n")

    def _boot_phases(self) -> None:
        phases = self.record.get("phases", [])
        if "daemon-up" not in phases and self.running("daemon"):
            ip, port = self.address("daemon")  # type: ignore[misc]
            if http_ok(f"http://{ip}:{port}/health", timeout=0.5):
                self._phase("daemon-up", f"status daemon answering on {ip}:{port} (sandbox)")
        if self.record.get("model") and "sglang-ready" not in phases and self.running("standin"):
            ip, port = self.address("standin")  # type: ignore[misc]
            if http_ok(f"http://{ip}:{port}/health", timeout=0.5):
                self._phase("sglang-ready", f"sandbox stand-in answering for {self.record['model']} on {ip}:{port}")

    # -- the daemon's shutdown decision --------------------------------------------------------------
    def _watch_shutdown(self, force: bool = False) -> None:
        if self.record.get("shutdown") or not self.record.get("prepared") or self.record.get("bare"):
            return
        now = time.monotonic()
        if not force and now - self._last_status_poll < STATUS_POLL_SECONDS:
            return
        self._last_status_poll = now
        shutdown = self._read_shutdown()
        if not shutdown:
            return
        self.record["shutdown"] = shutdown
        LOG.info("instance %s: its daemon decided to end it (%s: %s)", self.id, shutdown.get("reason"),
                 shutdown.get("detail"))
        self.on_shutdown(self.id, str(shutdown.get("reason")), str(shutdown.get("detail") or ""))

    def _read_shutdown(self) -> dict[str, Any] | None:
        """The daemon's decided shutdown: from ``GET /status``, else from its state file (its "disk")."""
        address = self.address("daemon")
        if address and self.running("daemon"):
            document = self._daemon_status(*address)
            if document is not None:
                return document.get("shutdown") or None
        state = read_json(self.files.daemon_state / "state.json")
        if isinstance(state, dict) and isinstance(state.get("shutdown"), dict):
            return {"reason": state["shutdown"].get("reason"), "detail": state["shutdown"].get("detail")}
        return None

    def _daemon_status(self, ip: str, port: int) -> dict[str, Any] | None:
        import http.client

        try:
            token = self.files.token.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        conn = http.client.HTTPConnection(ip, port, timeout=2.0)
        try:
            conn.request("GET", "/status", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            if response.status != 200:
                return None
            return json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()
