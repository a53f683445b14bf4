"""The boot rehearsal: soong's exact user data booted on a real init system with real cloud-init.

::

    from soong.testing.rehearsal import BootOptions, Rehearsal, rehearsal_unavailable

    with Rehearsal(tmp_path, BootOptions(driver_version="580.95.05")) as rh:
        rh.wait_phase("daemon-up", timeout=300)
        rh.wait_phase("n8n-ready", timeout=900)
        status = rh.daemon_status()            # GET /status through soong's own SSH tunnel backend
        rh.machine.run(["systemctl", "is-active", "soong-daemon"])
        print(rh.phase_table())

What happens on ``__enter__``: the Lambda emulator starts on loopback; soong's real
Lambda provider (built by soong's plugin host from a profile pointed at the
emulator) launches an instance whose user data soong renders for the plan
(:func:`soong.core.bootstrap.build_user_data`); the document the emulator received
is written to a NoCloud seed in a fresh copy of the cached Debian image
(:mod:`soong.testing.rehearsal_image`) together with the stand-ins for what needs
a GPU (:mod:`soong.testing.rehearsal_standins`); and the copy boots under
``systemd-nspawn -b`` (:mod:`soong.testing.rehearsal_machine`) on the host's
network, with a host folder bind-mounted where Lambda mounts the persistent file
system. ``__exit__`` stops the machine and the emulator and removes the copy.

Rehearsals take a lock in the cache folder: they bind fixed loopback ports
(SGLang's 8000, n8n's 5678 and 5679), so two never run at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from soong.testing.rehearsal_image import LOGIN_USER, cache_root, ensure_image, trust_host_certificates
from soong.testing.rehearsal_machine import Machine, nspawn_unavailable
from soong.testing.rehearsal_standins import A10, Gpu, install_nvidia_smi, install_sglang_standin

#: A driver new enough for the pinned torch's CUDA 13.0 runtime (a current 580 release).
CURRENT_DRIVER = "580.95.05"
#: Loopback ports the instance's services bind (SGLang, n8n and n8n's task-runner broker).
FIXED_PORTS = (8000, 5678, 5679)
_PHASE_LINE = re.compile(r"^(\S+) phase=(\S+)\s?(.*)$")


def rehearsal_unavailable() -> str | None:
    """Why the boot rehearsal cannot run here (None when it can)."""
    import shutil

    reason = nspawn_unavailable()
    if reason:
        return reason
    for tool in ("ssh", "ssh-keygen"):  # the machine has its own sshd; the host needs the client tools
        if shutil.which(tool) is None:
            return f"the OpenSSH client tool '{tool}' is not installed (Debian package openssh-client)"
    return None


def rehearsal_model() -> Any:
    """The model the rehearsal plans for: Qwen2.5-0.5B-Instruct as a custom model (small weights, so a
    preflight that checks free disk for the weights passes on a small CI disk).

    Facts from https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json: 24 layers,
    14 attention heads, 2 KV heads, hidden size 896 (head_dim 64), 32768 positions; 0.49B parameters.
    """
    from soong.core.types import ModelSpec

    return ModelSpec(id="qwen2.5-0.5b", hf_path="Qwen/Qwen2.5-0.5B-Instruct", params_billion=0.49, precision="bf16",
                     layers=24, attention_heads=14, kv_heads=2, head_dim=64, max_context=32768, default_context=8192,
                     source="https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json")


@dataclasses.dataclass(frozen=True)
class BootOptions:
    """What one rehearsal boot looks like.

    :param driver_version: what the stand-in nvidia-smi reports (None: no nvidia-smi at all).
    :param n8n_metrics: False adds a unit drop-in that switches n8n's /metrics off.
    :param caches: bind the host's pip and npm caches into the machine (a warm boot).
    :param gated: plan the model as a gated one: the user data carries no Hugging Face token and
        SGLang waits until :meth:`Rehearsal.deliver_secrets` delivers one (a canary) over SSH.
    """

    driver_version: str | None = CURRENT_DRIVER
    gpus: tuple[Gpu, ...] = (A10,)
    instance_type: str = "gpu_1x_a10"
    sglang: bool = True
    n8n: bool = True
    n8n_metrics: bool = True
    filesystem_name: str = "rehearsal-fs"
    check_interval_seconds: int = 5
    caches: bool = True
    gated: bool = True


@dataclasses.dataclass
class PhaseSeen:
    """One boot-log phase: its line's time, seconds after the machine started, and its message."""

    phase: str
    logged_at: str
    seen_after: float
    message: str


class RehearsalError(AssertionError):
    """The rehearsal machine did not do what a real instance would (the message carries its logs)."""


@contextlib.contextmanager
def _exclusive(path: Path, timeout: float = 1800.0) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another boot rehearsal holds {path}") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the services bind: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class Rehearsal:
    """One booted rehearsal instance (see the module docstring)."""

    def __init__(self, workdir: Path, options: BootOptions = BootOptions(), *, cache: Path | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.workdir = Path(workdir)
        self.options = options
        self.cache = Path(cache) if cache else cache_root()
        self.log = log or (lambda text: None)
        self.token = "rehearsal-" + secrets.token_urlsafe(24)
        #: A canary Hugging Face token: soong delivers it over SSH; it must never be in the user data.
        self.hf_token = "hf_rehearsal-canary-" + secrets.token_hex(12)
        self.stack = contextlib.ExitStack()
        self.phases: dict[str, PhaseSeen] = {}
        self.machine: Machine | None = None
        self.instance: Any = None
        self.user_data = ""
        self.context: Any = None
        self.fs_dir = self.workdir / "nfs"
        self.timings: dict[str, float] = {}

    # -- setup ---------------------------------------------------------------------------------------
    def __enter__(self) -> "Rehearsal":
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 1)

    def _start(self) -> None:
        from soong.testing.emulator import run_emulator
        from soong.testing.net import free_port
        from soong.testing.sshd import generate_key

        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        image = ensure_image(self.cache)
        self._timed("image", started)
        self.stack.enter_context(_exclusive(self.cache / "rehearsal.lock"))
        deadline = time.monotonic() + 60
        while (taken := [p for p in FIXED_PORTS if _port_taken(p)]) and time.monotonic() < deadline:
            time.sleep(1)
        if taken:
            raise RehearsalError(f"loopback ports {taken} are in use; the rehearsal instance binds 127.0.0.1:"
                                 f"{','.join(map(str, FIXED_PORTS))} (stop what holds them)")
        ip = f"127.{64 + secrets.randbelow(64)}.{secrets.randbelow(250) + 1}.1"
        self.ssh_port = free_port(ip)
        self.daemon_port = free_port()
        self.key = generate_key(self.workdir / "id_ed25519", "soong-rehearsal")
        emulator = self.stack.enter_context(run_emulator("--boot-delay", "0", "--rate-limit", "off",
                                                         "--launch-rate-limit", "off", "--ip-base", ip))
        self.emulator = emulator
        self.context = self._context(emulator)
        self.instance = self._launch(emulator)
        self.user_data = emulator.user_data(self.instance.id) or ""
        self.machine = Machine(image, self.workdir / "machine", f"rh-{self.instance.id[-8:]}", self._binds())
        self.stack.callback(self.machine.remove)
        started = time.monotonic()
        root = self.machine.prepare()
        self._dress(root)
        self._timed("copy", started)
        self.machine.boot()
        self.log(f"booting {self.instance.id} ({self.instance.ip}, ssh port {self.ssh_port}) in {self.machine.root}")

    def _context(self, emulator: Any) -> Any:
        from soong.core.context import Context

        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SOONG_", "LAMBDA_"))}
        env.update({
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
            "SOONG_LAMBDA_API_URL": emulator.url, "LAMBDA_API_KEY": emulator.api_key, "SOONG_DAEMON_TOKEN": self.token,
            "HF_TOKEN": self.hf_token,
            "SOONG_SSH_USER": LOGIN_USER, "SOONG_SSH_PORT": str(self.ssh_port), "SOONG_SSH_KEY_PATH": str(self.key),
            "SOONG_STATUS_DAEMON_PORT": str(self.daemon_port), "SOONG_TUNNEL_BACKEND": "plumbum-ssh",
            "SOONG_LAMBDA_SSH_KEY_NAME": "rehearsal", "SOONG_LAMBDA_DEFAULT_REGION": "us-east-1", "SOONG_LAMBDA_FILESYSTEM_NAME": self.options.filesystem_name,
            "SOONG_SERVICES_SGLANG": "true" if self.options.sglang else "false",
            "SOONG_SERVICES_N8N": "true" if self.options.n8n else "false",
        })
        return Context(env=env)

    def _launch(self, emulator: Any) -> Any:
        """Launch through soong's real provider with the user data soong renders for the plan."""
        from soong.core.bootstrap import LaunchPlan, LaunchSecrets, build_user_data
        from soong.core.types import LaunchRequest
        from soong.plugins.lambda_cloud.provider import instance_name, new_token

        context = self.context
        region = context.config.get("lambda.default_region")
        emulator.add_ssh_key("rehearsal", Path(f"{self.key}.pub").read_text().strip())
        emulator.add_file_system(self.options.filesystem_name, region)
        emulator.set_capacity(self.options.instance_type, region, None)
        token = new_token()
        name = instance_name("rehearsal", token)
        plan = LaunchPlan.from_context(
            context, rehearsal_model(), instance_name=name, gpu_count=len(self.options.gpus),
            secrets=LaunchSecrets(emulator.api_key, self.token, self.hf_token), instance_type=self.options.instance_type,
            await_hf_token=self.options.gated,
            check_interval_seconds=self.options.check_interval_seconds, fs_wait_seconds=60)
        self.plan = plan
        document = build_user_data(context.plugins, plan)
        return context.provider("lambda").launch(LaunchRequest(
            instance_type=self.options.instance_type, region=region, ssh_key_name="rehearsal", name="rehearsal",
            user_data=document, token=token, file_system_names=(self.options.filesystem_name,)))

    def _binds(self) -> list[tuple[Path, str]]:
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        binds = [(self.fs_dir, f"/lambda/nfs/{self.options.filesystem_name}")]
        if self.options.caches:
            for name, inside in (("pip", "/root/.cache/pip"), ("npm", "/root/.npm")):
                folder = self.cache / "machine-cache" / name
                folder.mkdir(parents=True, exist_ok=True)
                binds.append((folder, inside))
        return binds

    def _dress(self, root: Path) -> None:
        """The NoCloud seed, sshd on the instance's address, and the GPU stand-ins."""
        from soong.plugins.sglang.platform import SGLANG_VERSION

        seed = root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, exist_ok=True)
        (seed / "user-data").write_text(self.user_data)
        public_key = Path(f"{self.key}.pub").read_text().strip()
        (seed / "meta-data").write_text(
            f"instance-id: {self.instance.id}\nlocal-hostname: rehearsal\npublic-keys:\n  - {public_key}\n")
        sshd = root / "etc/ssh/sshd_config.d/50-rehearsal.conf"
        sshd.write_text(f"# the host's network is shared: listen on the instance's own address only\n"
                        f"ListenAddress {self.instance.ip}:{self.ssh_port}\nPasswordAuthentication no\n")
        trust_host_certificates(root)
        install_nvidia_smi(root, self.options.gpus, self.options.driver_version)
        install_sglang_standin(root, SGLANG_VERSION)
        for inside in (f"lambda/nfs/{self.options.filesystem_name}", "root/.cache/pip", "root/.npm"):
            (root / inside).mkdir(parents=True, exist_ok=True)
        if not self.options.n8n_metrics:
            self.n8n_metrics_off(root)

    @staticmethod
    def n8n_metrics_off(root: Path) -> Path:
        """Write the unit drop-in that switches n8n's /metrics off into the machine at ``root``."""
        dropin = root / "etc/systemd/system/soong-n8n.service.d/90-rehearsal-metrics-off.conf"
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text("[Service]\nEnvironment=N8N_METRICS=false\n")
        return dropin

    # -- watching ----------------------------------------------------------------------------------
    def boot_log(self) -> list[tuple[str, str, str]]:
        """The boot log's ``(time, phase, message)`` lines so far."""
        out = []
        for line in self.machine.read("/var/log/soong-boot.log").splitlines():
            match = _PHASE_LINE.match(line)
            if match:
                out.append(match.groups())
        return out

    def _observe(self) -> None:
        """Record new boot-log phases: seconds after the machine started, from the line's own time
        (the machine shares the host's clock; whole seconds), or when the host first saw it."""
        started = self.machine.started_at or time.time()
        for logged_at, phase, message in self.boot_log():
            if phase not in self.phases:
                try:
                    at = _dt.datetime.strptime(logged_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
                    after = max(0.0, at.timestamp() - int(started))
                except ValueError:
                    after = time.time() - started
                self.phases[phase] = PhaseSeen(phase, logged_at, round(after, 1), message)

    def wait_phase(self, *names: str, timeout: float = 600.0, fail_on: Sequence[str] = ()) -> PhaseSeen:
        """Wait until one of the phases ``names`` is logged; RehearsalError on timeout or a ``fail_on`` phase."""
        deadline = time.monotonic() + timeout
        while True:
            self._observe()
            for name in names:
                if name in self.phases:
                    return self.phases[name]
            bad = [p for p in fail_on if p in self.phases]
            if bad:
                raise RehearsalError(f"the boot logged {bad[0]} ({self.phases[bad[0]].message}) while waiting for "
                                     f"{'/'.join(names)}\n{self.diagnostics()}")
            if not self.machine.running():
                raise RehearsalError(f"the machine stopped while waiting for {'/'.join(names)}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise RehearsalError(f"no {'/'.join(names)} in the boot log after {timeout:g}s\n{self.diagnostics()}")
            time.sleep(0.2)

    def diagnostics(self, limit: int = 2500) -> str:
        """The boot log, failed units and the ends of cloud-init's output and the console."""
        parts = ["--- /var/log/soong-boot.log:\n" + self.machine.read("/var/log/soong-boot.log")[-limit:]]
        with contextlib.suppress(Exception):
            failed = self.machine.run(["systemctl", "--failed", "--no-legend", "--plain"], timeout=15).stdout
            parts.append("--- failed units:\n" + failed)
        parts.append("--- cloud-init-output.log:\n" + self.machine.read("/var/log/cloud-init-output.log")[-limit:])
        parts.append("--- console:\n" + self.machine.console_tail(limit))
        return "\n".join(parts)

    # -- talking to the instance through soong -----------------------------------------------------
    @contextlib.contextmanager
    def tunnel(self, *remote_ports: int) -> Iterator[list[str]]:
        """Forwards to the instance's loopback ports through soong's configured tunnel backend (an SSH login)."""
        from soong.core.types import Forward, TunnelTarget

        instance = self.context.provider("lambda").get_instance(self.instance.id)
        target = TunnelTarget(instance_id=instance.id, host=instance.ip, name=instance.name)
        forwards = [Forward(f"port{port}", 0, port) for port in remote_ports]
        with self.context.tunnel_backend().open(target, forwards) as opened:
            yield [f"http://{f.local_host}:{f.local_port}" for f in opened]

    def daemon_status(self) -> dict[str, Any]:
        """The status daemon's ``GET /status`` with the token, through the tunnel."""
        from soong.core.daemon_client import DaemonClient

        with self.tunnel(self.daemon_port) as (url,), DaemonClient(url, self.token, timeout=(5.0, 10.0)) as client:
            return client.status()

    def deliver_secrets(self) -> list[Any]:
        """What ``soong start`` does once the daemon answers: deliver what its ``/status`` says is missing
        (the canary Hugging Face token of a gated plan) with soong's courier, through the tunnel backend."""
        from soong.core.secret_delivery import SecretCourier

        instance = self.context.provider("lambda").get_instance(self.instance.id)
        return SecretCourier(self.context).deliver(instance, self.daemon_status())

    def ssh(self, command: str, timeout: float = 60.0) -> Any:
        """Run ``command`` over a real SSH login as the login user (the tunnel backend's options)."""
        import subprocess

        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={self.workdir / 'known_hosts'}",
             "-o", "LogLevel=ERROR", f"{LOGIN_USER}@{self.instance.ip}", command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    # -- reporting ---------------------------------------------------------------------------------------
    def phase_table(self) -> list[tuple[str, float, str]]:
        """``(phase, seconds after the machine started, boot-log time)`` in boot-log order."""
        self._observe()
        return [(p.phase, p.seen_after, p.logged_at) for p in sorted(self.phases.values(), key=lambda p: p.seen_after)]

    @staticmethod
    def log_seconds(first: str, second: str) -> float:
        """Seconds between two boot-log times."""
        parse = lambda text: _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        return (parse(second) - parse(first)).total_seconds()
