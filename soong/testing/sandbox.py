"""Run the sandbox from tests (and scripts), and drive its instances.

::

    from soong.testing.sandbox import running_sandbox

    def test_something():                        # HOME/XDG dirs are the test's own (tests/conftest.py)
        with running_sandbox(time_scale=600) as sb:
            inst = sb.launch(idle_timeout_minutes=5)          # real user data, through the real provider
            sb.wait_running(inst.id)                          # daemon and model stand-in answer
            sb.daemon_status(inst.id)["instance_id"]          # GET /status on <ip>:8080 with the token
            sb.chat(inst.id, "hello")                         # POST /v1/chat/completions on <ip>:8000
            sb.wait_instance(inst.id, ("terminated", "gone"))  # its daemon ended it (idle)
        # here every process the sandbox started is gone (checked in /proc)

``running_sandbox`` brings the sandbox up with the same code as ``soong sandbox
up`` (:class:`~soong.sandbox.manager.Sandbox`) and always brings it down, even
when the block fails; if anything survived ``down`` it is killed and
:class:`LeftoverProcesses` is raised. For tests that drive the ``soong``
executable instead, :func:`sandbox_processes` lists what is still running.

:meth:`SandboxHandle.launch` does what a launch by soong does (launch plan,
rendered user data with the profile's secrets, ledger intent recorded before the
API call, instance id recorded after) so that instances can be launched before,
and independently of, the lifecycle commands.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterable, Iterator, Mapping

from soong.sandbox.layout import MARKER_ENV, SandboxLayout
from soong.sandbox.manager import Sandbox
from soong.sandbox.processes import kill_all, marked_processes


class LeftoverProcesses(AssertionError):
    """Sandbox processes were still running after the sandbox went down (they have been killed)."""


def sandbox_processes(env: Mapping[str, str] | None = None) -> list[int]:
    """Pids of every live process marked with the sandbox of ``env`` (default: this environment)."""
    layout = SandboxLayout.from_env(os.environ if env is None else env)
    return marked_processes(MARKER_ENV, str(layout.root))


def kill_sandbox_processes(env: Mapping[str, str] | None = None) -> list[int]:
    """SIGKILL every process of the sandbox of ``env``; return their pids (a last-resort cleanup)."""
    pids = sandbox_processes(env)
    kill_all(pids)
    return pids


class SandboxHandle:
    """A running sandbox: its :class:`Sandbox`, a profile context that reaches its emulator, and helpers."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.context = sandbox.api_context()

    # -- the account -----------------------------------------------------------------------------------
    @property
    def provider(self) -> Any:
        """The real Lambda provider of the sandbox profile (talking to the emulator)."""
        return self.context.provider("lambda")

    def admin_instance(self, instance_id: str) -> dict[str, Any] | None:
        """The emulator's admin view of one instance (gone ones too), or None."""
        with contextlib.closing(self.sandbox.admin()) as admin:
            return next((i for i in admin.instances() if i["id"] == instance_id), None)

    def launch(self, *, model: str = "llama-3.1-8b", instance_type: str = "gpu_1x_a100_sxm4", name: str = "soong-test",
               record_in_ledger: bool = True, hf_token: str | None = None, **plan_overrides: Any) -> Any:
        """Launch one instance with soong's real user data; return the provider's Instance.

        ``plan_overrides`` go to :class:`~soong.core.bootstrap.LaunchPlan` (``lease_hours``,
        ``idle_timeout_minutes``, ``hard_limit_hours``, ``api_key_delivery``...). With
        ``hf_token`` the model waits for that token, as a gated model does (it is never
        in the user data: store it with ``soong --profile sandbox secrets set hf_token``,
        then ``soong --profile sandbox status`` delivers it). With ``record_in_ledger`` the launch is recorded in the
        sandbox ledger as soong records its launches.
        """
        from soong.core.bootstrap import LaunchPlan, LaunchSecrets, build_user_data
        from soong.core.catalog import find_model
        from soong.core.ledger import Ledger
        from soong.core.types import LaunchRequest
        from soong.plugins.lambda_cloud.provider import instance_name, new_token

        context = self.context
        config = context.config
        spec = find_model(context.models(), model)
        itype = next((t for t in self.provider.list_instance_types() if t.name == instance_type), None)
        if itype is None:
            raise ValueError(f"no instance type {instance_type!r} in the sandbox")
        token = new_token()
        launch_name = instance_name(name, token)
        secrets = LaunchSecrets(context.secrets.require("lambda_api_key"), context.secrets.require("daemon_token"),
                                hf_token)
        plan = LaunchPlan.from_context(context, spec, instance_name=launch_name, gpu_count=itype.gpu_count,
                                       secrets=secrets, instance_type=instance_type, **plan_overrides)
        document = build_user_data(context.plugins, plan)
        region = config.get("lambda.default_region")
        ledger = Ledger.for_context(context) if record_in_ledger else None
        if ledger is not None:
            ledger.record_intent(launch_name, instance_type=instance_type, region=region,
                                 price_cents_per_hour=itype.price_cents_per_hour, lease_hours=plan.lease_hours,
                                 hard_limit_hours=plan.hard_limit_hours, at=context.clock(), model=spec.id,
                                 gpu=itype.gpu_description)
        instance = self.provider.launch(LaunchRequest(
            instance_type=instance_type, region=region, ssh_key_name=config.get("lambda.ssh_key_name"), name=name,
            user_data=document, token=token,
            file_system_names=(config.get("lambda.filesystem_name"),) if config.get("lambda.filesystem_name") else ()))
        if ledger is not None:
            ledger.record_launched(launch_name, instance.id, at=context.clock())
            ledger.close()
        return instance

    def terminate(self, instance_id: str) -> None:
        """Terminate an instance through the real provider."""
        self.provider.terminate([instance_id])

    # -- waiting -----------------------------------------------------------------------------------------------
    def wait_instance(self, instance_id: str, statuses: Iterable[str], timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the emulator reports one of ``statuses``; return its admin view (TimeoutError otherwise)."""
        wanted = tuple(statuses)
        deadline = time.monotonic() + timeout
        while True:
            view = self.admin_instance(instance_id)
            if view is not None and view.get("status") in wanted:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"instance {instance_id} is {view and view.get('status')}, not {'/'.join(wanted)}, "
                                   f"after {timeout:g}s")
            time.sleep(0.1)

    def machine_record(self, instance_id: str) -> dict[str, Any]:
        """The host's ``instance.json`` for the instance ({} before the host has seen it)."""
        from soong.sandbox.layout import read_json

        return read_json(self.sandbox.layout.instance(instance_id).record) or {}

    def process(self, instance_id: str, component: str) -> Any:
        """The process record of the instance's ``daemon`` or ``standin`` (None before it started)."""
        from soong.sandbox.processes import ProcessRecord

        return ProcessRecord.load(self.sandbox.layout.instance(instance_id).process_record(component))

    def wait_running(self, instance_id: str, timeout: float = 30.0, *, standin: bool = True,
                     identified: bool = True) -> dict[str, Any]:
        """Wait until the instance's daemon (and stand-in) answer ``/health``; return the host's record.

        With ``identified`` also wait until the daemon has found its own instance id
        (it looks itself up by its launch name through the API).
        """
        from soong.sandbox.ports import http_ok

        deadline = time.monotonic() + timeout
        while True:
            record = self.machine_record(instance_id)
            phases = record.get("phases") or []
            if "daemon-up" in phases and (not standin or "sglang-ready" in phases):
                if http_ok(self.daemon_url(instance_id) + "/health") and (
                        not standin or http_ok(self.standin_url(instance_id) + "/health")) and (
                        not identified or self._identified(instance_id)):
                    return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"instance {instance_id} did not come up in {timeout:g}s: {record}\n"
                                   + self.logs(instance_id))
            time.sleep(0.1)

    def _identified(self, instance_id: str) -> bool:
        try:
            return self.daemon_status(instance_id).get("instance_id") == instance_id
        except Exception:
            return False

    def logs(self, instance_id: str, limit: int = 2000) -> str:
        """The ends of the instance's daemon and stand-in logs and of the host's log (for failure messages)."""
        files = self.sandbox.layout.instance(instance_id)
        parts = []
        for title, path in (("daemon", files.log("daemon")), ("standin", files.log("standin")),
                            ("host", self.sandbox.layout.log("host"))):
            try:
                parts.append(f"--- {title} log:\n" + path.read_text(errors="replace")[-limit:])
            except OSError:
                parts.append(f"--- {title} log: (none)")
        return "\n".join(parts)

    # -- talking to an instance --------------------------------------------------------------------------------
    def daemon_url(self, instance_id: str) -> str:
        """``http://<ip>:<port>`` of the instance's status daemon."""
        record = self.machine_record(instance_id)
        return f"http://{record['ip']}:{record.get('daemon_port', 8080)}"

    def standin_url(self, instance_id: str) -> str:
        """``http://<ip>:8000`` of the instance's model stand-in."""
        return f"http://{self.machine_record(instance_id)['ip']}:8000"

    def daemon_token(self) -> str:
        """The sandbox profile's daemon token."""
        return self.context.secrets.require("daemon_token")

    def daemon(self, instance_id: str, method: str, path: str, json: Any = None) -> Any:
        """Call the instance's daemon with the token; return the ``requests`` Response."""
        import requests

        return requests.request(method, self.daemon_url(instance_id) + path, json=json, timeout=10,
                                headers={"Authorization": f"Bearer {self.daemon_token()}"})

    def daemon_status(self, instance_id: str) -> dict[str, Any]:
        """``GET /status`` of the instance's daemon."""
        response = self.daemon(instance_id, "GET", "/status")
        response.raise_for_status()
        return response.json()

    def sglang_api_key(self, instance_id: str) -> str:
        """The instance's SGLang API key, as soong computes it (the stand-in requires it, as SGLang does)."""
        from soong.core.instance_keys import sglang_api_key

        return sglang_api_key(self.daemon_token(), self.machine_record(instance_id)["name"])

    def chat(self, instance_id: str, text: str, *, api_key: str | None = None) -> dict[str, Any]:
        """One chat completion from the instance's model stand-in (with its API key unless another is given)."""
        import requests

        key = api_key if api_key is not None else self.sglang_api_key(instance_id)
        response = requests.post(self.standin_url(instance_id) + "/v1/chat/completions", timeout=10,
                                 headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "any", "messages": [{"role": "user", "content": text}]})
        response.raise_for_status()
        return response.json()


@contextlib.contextmanager
def running_sandbox(*, time_scale: float = 1.0, boot_delay: float = 0.0, env: Mapping[str, str] | None = None,
                    startup_timeout: float = 30.0, nvidia_driver: str | None = None) -> Iterator[SandboxHandle]:
    """Bring the sandbox of ``env`` up, yield a :class:`SandboxHandle`, and always bring it down.

    Raises :class:`LeftoverProcesses` (after killing them) if any sandbox process
    outlived ``down``.
    """
    sandbox = Sandbox(env, startup_timeout=startup_timeout)
    try:
        sandbox.up(time_scale=time_scale, boot_delay=boot_delay, nvidia_driver=nvidia_driver)
        yield SandboxHandle(sandbox)
    finally:
        try:
            sandbox.down()
        finally:
            leftovers = kill_sandbox_processes(sandbox.env)
            if leftovers:
                raise LeftoverProcesses(f"sandbox processes survived down and were killed: {leftovers}")
