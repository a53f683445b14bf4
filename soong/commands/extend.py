"""``soong extend HOURS``: add time to an instance's lease, through its status daemon."""

from __future__ import annotations

import argparse
import datetime as _dt
from typing import Any

from soong.core.command import ShowOne
from soong.core.errors import UsageError


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"HOURS must be a number, not {text!r}") from None
    if not 0 < value <= 8 or value != value:
        raise argparse.ArgumentTypeError(f"HOURS must be more than 0 and at most 8, not {text}")
    return value


def _parse_time(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Extend(ShowOne):
    """Extend the lease of an instance by HOURS (never past its hard limit).

    The added cost is shown and confirmed first; the instance's daemon decides
    and, if it refuses (the hard limit, a shutdown already decided), its reason
    is shown. A secret the instance still waits for (the Hugging Face token; the
    API key with secrets.api_key_delivery: ssh) is delivered on the way.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("hours", type=_hours, metavar="HOURS", help="hours to add, e.g. 1 or 0.5")
        parser.add_argument("--instance-id", metavar="ID", help="the instance (default: the only running one, or ask)")
        self.add_yes_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.costs import emit, extended_event
        from soong.core.daemon_client import connect
        from soong.core.ledger import Ledger
        from soong.core.selection import choose_instance

        context = self.context
        hours = parsed_args.hours
        instance = choose_instance(context, parsed_args.instance_id, stdin=self.app.stdin, stderr=self.app.stderr)
        if instance.status != "active":
            raise UsageError(f"instance {instance.id} is {instance.status}; only an active instance can be extended")
        ledger = Ledger.for_context(context)
        record = ledger.get(instance.id)
        cents = record.price_cents_per_hour if record else instance.price_cents_per_hour
        added = f"${cents / 100 * hours:.2f} more (${cents / 100:.2f}/h)" if cents is not None else "an unknown cost"
        self.confirm(f"Extend the lease of {instance.id} by {hours:g} h for up to {added}?", parsed_args)
        timeout = float(context.config.get("status.daemon_timeout_seconds"))
        from soong.core.secret_delivery import deliver_after

        with connect(context, instance, timeout=(min(2.0, timeout), max(timeout, 5.0))) as client:
            answer = client.extend(hours)
            deliver_after(context, instance, client, lambda line: self.app.stderr.write(f"soong: {line}\n"))
        lease_end = _parse_time(answer.get("lease_end"))
        hard_limit = _parse_time(answer.get("hard_limit_at"))
        if record is not None and record.is_open and lease_end is not None:
            now = context.clock()
            updated = ledger.record_extension(instance.id, lease_ends_at=lease_end, at=now, hours=hours)
            emit(context, extended_event(updated, now, hours=hours))
        fields = ("Instance ID", "Added hours", "Lease ends", "Lease left", "Hard limit", "Added cost (USD)")
        left = answer.get("lease_seconds_left")
        return fields, (instance.id, hours, _iso(lease_end), _left(left), _iso(hard_limit),
                        round(cents / 100 * hours, 2) if cents is not None else "")


def _iso(moment: _dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _left(seconds: Any) -> str:
    from soong.core.durations import format_hours

    return "" if seconds is None else format_hours(float(seconds) / 3600)
