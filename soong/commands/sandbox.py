"""``soong sandbox up|down|status``: the whole of soong on this machine, with no account.

See docs/sandbox.md. The sandbox always uses the ``sandbox`` profile, whatever
``--profile`` says; use it with ``soong --profile sandbox ...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from soong.core.command import Command, Lister, ShowOne


def _sandbox(command: Any) -> Any:
    from soong.sandbox.manager import Sandbox

    profile = command.context.profile
    if profile not in (None, "default", "sandbox"):
        command.warn(f"the sandbox always uses the 'sandbox' profile, not '{profile}'")
    return Sandbox(env=command.context.env)


class SandboxUp(ShowOne):
    """Start the local sandbox: the Lambda emulator and the host that runs its instances (idempotent)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--time-scale", type=float, default=1.0, metavar="N",
                            help="daemon clocks run N times faster: 60 makes a minute last a second, so lease, idle "
                                 "timeout and hard limit pass quickly (applies to instances that become active "
                                 "from now on; default 1)")
        parser.add_argument("--boot-delay", type=float, default=2.0, metavar="SECONDS",
                            help="seconds an instance spends booting before it is active (default 2)")
        parser.add_argument("--nvidia-driver", default=None, metavar="VERSION",
                            help="the NVIDIA driver version the instances' stand-in nvidia-smi reports to their "
                                 "preflight (default 580.95.05; an older one than SGLang needs makes start fail "
                                 "with exit code 12, as on a real machine)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        report = _sandbox(self).up(time_scale=parsed_args.time_scale, boot_delay=parsed_args.boot_delay,
                                   nvidia_driver=parsed_args.nvidia_driver)
        for warning in report.warnings:
            self.warn(warning)
        self.app.stderr.write("soong: sandbox is up; use it with: soong --profile sandbox start --model llama-3.1-8b -y\n")
        fields = ("api_url", "profile", "profile_config", "time_scale", "boot_delay_seconds", "nvidia_driver",
                  "started", "kept", "cleaned")
        values = (report.api_url, "sandbox", str(report.profile_config), f"{report.time_scale:g}",
                  f"{report.boot_delay:g}", report.nvidia_driver, ", ".join(report.started) or "-",
                  ", ".join(report.kept) or "-", ", ".join(report.cleaned) or "-")
        return fields, values


class SandboxDown(Command):
    """Terminate every sandbox instance through the API and stop every sandbox process."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        report = _sandbox(self).down()
        for warning in report.warnings:
            self.warn(warning)
        out = self.app.stdout
        if report.terminated:
            out.write(f"terminated {len(report.terminated)} instance(s): {', '.join(report.terminated)}\n")
        out.write(f"stopped: {', '.join(report.stopped) or 'nothing was running'}\n")
        out.write("sandbox is down; no sandbox process is left\n")
        return 0


class SandboxStatus(Lister):
    """Show the sandbox's processes: the emulator, the host, and each instance's daemon and model stand-in."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        rows = _sandbox(self).status()
        columns = ("Component", "Instance", "PID", "Address", "Alive", "Note")
        return columns, [(r.component, r.instance or "", r.pid or "", r.address or "", r.alive, r.note) for r in rows]
