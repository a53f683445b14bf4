"""``soong adopt``: let soong watch (and end) an instance that was launched elsewhere."""

from __future__ import annotations

from soong.core.command import ShowOne
from soong.core.errors import SoongError


class Adopt(ShowOne):
    """Track an untracked instance in the ledger so the watchdog ends it at its hard limit.

    If it runs soong's daemon with this profile's token and still waits for a secret
    (the Hugging Face token; the API key with secrets.api_key_delivery: ssh), the
    secret is delivered too.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance_id", help="the instance (see the untracked ones in 'soong history')")
        parser.add_argument("--hours", type=float, default=None,
                            help="lease from now, in hours (default: defaults.lease_hours)")
        parser.add_argument("--model", default=None, help="the model it serves, if known (for reports)")
        self.add_yes_option(parser)
        return parser

    def take_action(self, parsed_args):
        from soong.core.costs import emitter_for, launched_event
        from soong.core.ledger import Ledger
        from soong.core.reconcile import adopt_instance

        context = self.context
        ledger = Ledger.for_context(context)
        if ledger.get(parsed_args.instance_id) is not None:
            raise SoongError(f"instance {parsed_args.instance_id} is already tracked by soong")
        provider = context.provider("lambda")
        instance = provider.get_instance(parsed_args.instance_id)
        if not instance.is_billable:
            raise SoongError(f"instance {instance.id} is {instance.status}; nothing to adopt")
        price, gpu = instance.price_cents_per_hour, None
        for itype in provider.list_instance_types():
            if itype.name == instance.instance_type:
                price = price if price is not None else itype.price_cents_per_hour
                gpu = itype.gpu_description
        hard_limit = context.config.get("defaults.hard_limit_hours")
        lease = min(parsed_args.hours or context.config.get("defaults.lease_hours"), hard_limit)
        rate = f"${price / 100:.2f}/h" if price is not None else "unknown price"
        self.confirm(f"Adopt {instance.id} ({instance.instance_type}, {rate})? The watchdog will terminate it "
                     f"{hard_limit:g} h from now at the latest", parsed_args)
        now = context.clock()
        record = adopt_instance(ledger, instance, now=now, lease_hours=lease, hard_limit_hours=hard_limit,
                                price_cents_per_hour=price, gpu=gpu, model=parsed_args.model)
        emitter_for(context).emit(launched_event(record, now))
        self._deliver(instance)
        fields = ("Instance ID", "Type", "Region", "Price/h (USD)", "Lease ends", "Hard limit")
        return fields, (record.instance_id, record.instance_type, record.region, record.price_per_hour,
                        record.lease_ends_at.isoformat(timespec="seconds"), record.hard_limit_at.isoformat(timespec="seconds"))

    def _deliver(self, instance):
        """Deliver what the instance's daemon says it lacks (best effort: adopting never fails for it)."""
        from soong.core.daemon_client import connect
        from soong.core.secret_delivery import deliver_after

        if not instance.ip or instance.status != "active":
            return
        timeout = float(self.context.config.get("status.daemon_timeout_seconds"))
        say = lambda line: self.app.stderr.write(f"soong: {line}\n")  # noqa: E731
        try:
            with connect(self.context, instance, timeout=(min(2.0, timeout), timeout)) as client:
                deliver_after(self.context, instance, client, say)
        except SoongError as exc:
            say(f"the daemon of {instance.id} did not answer ({exc}); 'soong status' delivers any missing secret later")
