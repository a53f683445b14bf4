"""``soong history``: every instance soong launched, with when, what, how long, how much, how it ended."""

from __future__ import annotations

from soong.core.command import Lister

COLUMNS = ("Instance ID", "Name", "State", "Launched", "Ended", "GPU", "Region", "Model", "Hours", "Cost (USD)", "Ended by")


def _when(moment):
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class History(Lister):
    """List instances from the local ledger (compared with the provider's live list first)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--since", default="7d", metavar="DURATION",
                            help="how far back, e.g. 12h, 7d, 4w (default: 7d)")
        parser.add_argument("--instance-id", default=None, help="only this instance")
        parser.add_argument("--offline", action="store_true",
                            help="do not ask the provider; show the ledger as recorded")
        return parser

    @property
    def need_sort_by_cliff(self):  # rows are already in launch order
        return False

    def take_action(self, parsed_args):
        from soong.core.costs import emitter_for
        from soong.core.durations import parse_duration
        from soong.core.ledger import Ledger
        from soong.core.reconcile import try_reconcile

        since = parse_duration(parsed_args.since)
        context = self.context
        ledger = Ledger.for_context(context)
        report = None if parsed_args.offline else try_reconcile(context, ledger, self.warn)
        emitter_for(context).retry_pending()
        now = context.clock()
        records = ledger.records(since=now - since, instance_id=parsed_args.instance_id)
        rows = [
            (r.instance_id or "(pending)", r.launch_name, r.state, _when(r.started_at), _when(r.ended_at),
             r.gpu or r.instance_type, r.region, r.model or "", round(r.hours(now), 2), round(r.cost_usd(now), 2),
             r.end_reason or ("adopted" if r.adopted and r.is_open else ""))
            for r in records
        ]
        if report is not None:
            for inst in report.untracked:
                if parsed_args.instance_id in (None, inst.id):
                    rows.append((inst.id, inst.name or "", "untracked", "", "", inst.instance_type, inst.region, "", "", "", ""))
        return COLUMNS, rows
