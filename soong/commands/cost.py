"""``soong cost``: what soong's instances cost, grouped by day, GPU or model; the month and its projection."""

from __future__ import annotations

from soong.core.command import Lister


class CostReport(Lister):
    """Report spend from the local ledger, and this month's spend, projection and budget."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--since", default="30d", metavar="DURATION", help="how far back (default: 30d)")
        parser.add_argument("--by", default="day", choices=("day", "gpu", "model", "instance"),
                            help="how to group the spend (default: day)")
        parser.add_argument("--offline", action="store_true", help="do not ask the provider first")
        return parser

    @property
    def need_sort_by_cliff(self):
        return False

    def take_action(self, parsed_args):
        from soong.core.budget import budget_status
        from soong.core.costs import emitter_for
        from soong.core.durations import parse_duration
        from soong.core.ledger import Ledger
        from soong.core.reconcile import try_reconcile
        from soong.core.spend import group_spend

        since = parse_duration(parsed_args.since)
        context = self.context
        ledger = Ledger.for_context(context)
        if not parsed_args.offline:
            try_reconcile(context, ledger, self.warn)
        emitter = emitter_for(context)
        emitter.retry_pending()
        now = context.clock()
        start = now - since
        groups = group_spend(ledger.records(since=start), start, now, now, by=parsed_args.by)
        rows = [(g.key, g.instances, round(g.hours, 2), round(g.cost_usd, 2)) for g in groups]
        rows.append(("total", sum(g.instances for g in groups) if parsed_args.by != "day" else len(ledger.records(since=start)),
                     round(sum(g.hours for g in groups), 2), round(sum(g.cost_usd for g in groups), 2)))
        self._summary = budget_status(ledger, context.config, now)
        queued = sum(s.queued for s in emitter.status())
        if queued:
            self.warn(f"{queued} cost event(s) wait for delivery to a sink; see 'soong sinks status'")
        label = {"day": "Day (UTC)", "gpu": "GPU", "model": "Model", "instance": "Instance"}[parsed_args.by]
        return (label, "Instances", "Hours", "Cost (USD)"), rows

    def produce_output(self, parsed_args, column_names, data):
        result = super().produce_output(parsed_args, column_names, data)
        summary = getattr(self, "_summary", None)
        if summary is not None and parsed_args.formatter == "table":
            self.app.stdout.write(
                f"This month: ${summary.spent_usd:.2f} spent; projected ${summary.projected_usd:.2f} at this month's rate; "
                f"open instances may add ${summary.committed_usd:.2f} to their hard limits.\n"
            )
            if summary.monthly_budget_usd is not None:
                self.app.stdout.write(f"Budget: ${summary.left_usd:.2f} of ${summary.monthly_budget_usd:.2f} left this month.\n")
        return result
