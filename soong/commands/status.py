"""``soong status``: every instance with its cost so far, lease and limits, idle time, model and tunnel."""

from __future__ import annotations

import argparse
import os
from typing import Any

from soong.core.command import Lister

COLUMNS = ("Instance ID", "Name", "Status", "IP", "GPU", "Region", "Uptime", "Cost (USD)", "Lease left",
           "Hard limit left", "Idle", "Model", "SGLang", "Tunnel")

_COLOURS = {"active": "32", "ready": "32", "up": "32", "booting": "33", "loading": "33", "installing": "33",
            "starting": "33", "unhealthy": "31", "failed": "31", "down": "31", "terminating": "35",
            "untracked": "35", "?": "31", "unknown": "31"}


def _duration(seconds: float | None) -> str:
    from soong.core.durations import format_hours

    return "" if seconds is None else format_hours(seconds / 3600)


class Status(Lister):
    """Show instances: status, address, GPU, uptime, cost so far, lease and hard limit left, idle time,
    model and SGLang state (from each instance's daemon) and tunnel state.

    The provider and every daemon are asked at once with short timeouts; a
    daemon that does not answer leaves the rest of its row. With --all, ended
    instances from the ledger are listed too, with their final cost.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--instance-id", metavar="ID", help="only this instance")
        parser.add_argument("--all", action="store_true", help="also instances that have ended (from the ledger)")
        return parser

    @property
    def need_sort_by_cliff(self) -> bool:
        return False

    def _colour(self, parsed_args: argparse.Namespace) -> bool:
        if getattr(parsed_args, "formatter", "table") != "table" or os.environ.get("NO_COLOR"):
            return False
        try:
            return bool(self.app.stdout.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.status_report import gather

        report = gather(self.context, instance_id=parsed_args.instance_id, include_ended=parsed_args.all)
        for note in report.notes:
            self.app.stderr.write(f"soong: {note}\n")
        for warning in report.warnings:
            self.warn(warning)
        if parsed_args.instance_id and not report.rows:
            from soong.core.errors import NotFoundError

            raise NotFoundError(f"no instance {parsed_args.instance_id} (running, or in the ledger with --all)")
        structured = getattr(parsed_args, "formatter", "table") != "table"
        colour = self._colour(parsed_args)
        rows = [self._row(row, structured, colour) for row in report.rows]
        if not structured:
            if not rows:
                self.app.stderr.write("soong: no running instances" + ("" if parsed_args.all else
                                                                      " ('soong status --all' lists ended ones)") + "\n")
            if rows:
                rows.append(("TOTAL", f"{len(report.rows)} instance(s)", "", "", "", "", "",
                             f"{report.total_cost:.2f}", "", "", "", "", "", ""))
            self._footer = report.budget
        return COLUMNS, rows

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Any, data: Any) -> int:
        result = super().produce_output(parsed_args, column_names, data)
        footer = getattr(self, "_footer", None)
        if footer:
            self.app.stdout.write(f"budget: {footer}\n")
        return result

    def _row(self, row: Any, structured: bool, colour: bool) -> tuple:
        status = row.status if row.tracked != "untracked" else f"{row.status} (untracked)"
        if structured:
            return (row.instance_id, row.name, status, row.ip, row.gpu, row.region, _round(row.uptime),
                    _round(row.cost_usd, 4), _round(row.lease_left), _round(row.hard_left), _round(row.idle),
                    row.model, row.sglang, row.tunnel)
        sglang = row.sglang
        if row.daemon and row.daemon != "ok":
            sglang = f"? (daemon {row.daemon})"
        cells = [row.instance_id, row.name, status, row.ip, row.gpu, row.region, _duration(row.uptime),
                 "" if row.cost_usd is None else f"{row.cost_usd:.2f}", _duration(row.lease_left),
                 _duration(row.hard_left), _duration(row.idle), row.model, sglang, row.tunnel]
        if colour:
            for index in (2, 12, 13):
                cells[index] = _paint(cells[index])
        return tuple(cells)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _paint(text: str) -> str:
    word = text.split(" ")[0] if text else ""
    if "untracked" in text:
        word = "untracked"
    code = _COLOURS.get(word)
    return f"\033[{code}m{text}\033[0m" if code and text else text
