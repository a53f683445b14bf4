"""``soong watchdog run|install|uninstall|status``: the watchdog on this machine."""

from __future__ import annotations

from soong.core.command import Command, ShowOne
from soong.core.errors import SoongError, UnconfirmedError


class WatchdogRun(Command):
    """Terminate instances past their hard limit, or past their lease with a dead daemon."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--once", action="store_true", help="one pass, then exit (what the timer runs)")
        parser.add_argument("--include-untracked", action="store_true",
                            help="also adopt and watch instances soong did not launch")
        parser.add_argument("--interval", type=float, default=None, metavar="MINUTES",
                            help="minutes between passes without --once (default: watchdog.interval_minutes)")
        return parser

    def take_action(self, parsed_args):
        import time

        from soong.core.watchdog import Watchdog

        watchdog = Watchdog(self.context, include_untracked=parsed_args.include_untracked)
        if parsed_args.once:
            return self._report(watchdog.run_once())
        interval = 60 * (parsed_args.interval or self.context.config.get("watchdog.interval_minutes"))
        while True:
            try:
                self._report(watchdog.run_once())
            except SoongError as exc:
                self.warn(str(exc))
            time.sleep(interval)

    def _report(self, report):
        out = self.app.stdout
        if report.skipped:
            out.write("another watchdog pass is running; this one did nothing\n")
            return 0
        for action in report.actions:
            reason = f" ({action.reason})" if action.reason else ""
            out.write(f"{action.action} {action.instance_id}{reason}: {action.detail}\n")
        if report.untracked:
            out.write(f"left alone {len(report.untracked)} untracked instance(s): {', '.join(report.untracked)} "
                      "(--include-untracked to watch them)\n")
        out.write(f"watchdog: checked {report.checked} instance(s), {len(report.actions)} action(s), "
                  f"{len(report.errors)} error(s)\n")
        failed = sorted(set(report.unconfirmed) | {a.instance_id for a in report.actions if a.action == "terminate-failed"})
        if failed:
            for error in report.errors:
                self.warn(error)
            raise UnconfirmedError(f"could not confirm the termination of {', '.join(failed)}; it may still be billing",
                                   hint="the next watchdog pass tries again; check with 'soong status'")
        if report.errors:
            for error in report.errors[1:]:
                self.warn(error)
            more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
            error = SoongError(f"watchdog: {report.errors[0]}{more}")
            error.exit_code = report.error_codes[0]
            raise error
        return 0


class _InstallBase(Command):
    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--method", choices=("auto", "systemd", "cron"), default="auto",
                            help="systemd user timer or cron entry (default: systemd if available)")
        parser.add_argument("--unit-dir", default=None, metavar="DIR",
                            help="where systemd user units go (default: $XDG_CONFIG_HOME/systemd/user)")
        return parser

    def _installer(self, parsed_args):
        from pathlib import Path

        from soong.core.watchdog_install import choose

        return choose(self.context, parsed_args.method, unit_dir=Path(parsed_args.unit_dir) if parsed_args.unit_dir else None)


class WatchdogInstall(_InstallBase):
    """Run the watchdog every few minutes (systemd user timer, or cron without systemd)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--interval", type=int, default=None, metavar="MINUTES",
                            help="minutes between passes (default: watchdog.interval_minutes)")
        return parser

    def take_action(self, parsed_args):
        from soong.core.config_schema import KEYS_BY_PATH
        from soong.core.watchdog_install import job_command, job_environment

        interval = parsed_args.interval
        if interval is None:
            interval = self.context.config.get("watchdog.interval_minutes")
        KEYS_BY_PATH["watchdog.interval_minutes"].coerce(interval)
        installer = self._installer(parsed_args)
        where = installer.install(job_command(self.context.profile), job_environment(self.context.env), interval)
        self.app.stdout.write(f"watchdog installed: {where}\n")
        return 0


class WatchdogUninstall(_InstallBase):
    """Remove the scheduled watchdog."""

    def take_action(self, parsed_args):
        from pathlib import Path

        from soong.core.watchdog_install import installers

        removed = []
        methods = ("systemd", "cron") if parsed_args.method == "auto" else (parsed_args.method,)
        unit_dir = Path(parsed_args.unit_dir) if parsed_args.unit_dir else None
        for installer in installers(self.context, unit_dir=unit_dir):
            if installer.method not in methods:
                continue
            try:
                if installer.uninstall():
                    removed.append(installer.method)
            except SoongError as exc:
                if parsed_args.method != "auto":
                    raise
                self.warn(f"{installer.method}: {exc}")
        self.app.stdout.write(f"watchdog removed ({', '.join(removed)})\n" if removed else "the watchdog was not installed\n")
        return 0


class WatchdogStatus(ShowOne):
    """Show whether the watchdog is scheduled, when it last ran and what it did."""

    def take_action(self, parsed_args):
        import datetime as dt

        from soong.core.costs import emitter_for
        from soong.core.watchdog import WATCHDOG_DIR, last_run, recent_actions
        from soong.core.watchdog_install import installers

        context = self.context
        state = context.paths.state_dir / WATCHDOG_DIR
        systemd, cron = installers(context)
        where = systemd.installed()
        method = "systemd" if where else None
        if where is None:
            where = cron.installed()
            method = "cron" if where else None
        last = last_run(state)
        if last is None:
            ran, result = "never", ""
        else:
            finished = dt.datetime.fromisoformat(last.get("finished_at") or last["started_at"])
            ago = int((context.clock() - finished).total_seconds() // 60)
            ran = f"{last.get('finished_at')} ({ago} min ago)"
            result = (f"checked {last.get('checked', 0)}, {len(last.get('actions', []))} action(s), "
                      f"{len(last.get('errors', []))} error(s)")
            if last.get("errors"):
                result += f"; first error: {last['errors'][0]}"
        actions = "\n".join(f"{a.get('at')} {a.get('action')} {a.get('instance_id')}"
                            + (f" ({a['reason']})" if a.get("reason") else "") for a in recent_actions(state)) or "none"
        queued = sum(s.queued for s in emitter_for(context).status())
        fields = ("Installed", "Method", "Interval (min)", "Last run", "Last result", "Recent actions", "Queued cost events")
        values = ("yes" if method else "no", method or "", context.config.get("watchdog.interval_minutes"), ran, result,
                  actions, queued)
        return fields, values
