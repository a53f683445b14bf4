"""``soong stop``: terminate an instance through the API and confirm it, or say loudly that it could not."""

from __future__ import annotations

import argparse
from typing import Any

from soong.core.command import Command
from soong.core.errors import NotFoundError, UnconfirmedError


class Stop(Command):
    """Terminate an instance (or all of soong's with --all) and wait until the provider confirms it.

    Tunnels to it are closed first, the reason is recorded before the terminate
    call, and the final cost is written to the ledger once the provider reports
    the instance terminated. A terminate that cannot be confirmed is reported
    and exits with code 11: the instance may still be billing.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--instance-id", metavar="ID", help="the instance (default: the only running one, or ask)")
        group.add_argument("--all", action="store_true", help="every running instance soong launched or adopted")
        self.add_yes_option(parser)
        return parser

    def say(self, line: str) -> None:
        self.app.stderr.write(f"soong: {line}\n")
        self.app.stderr.flush()

    def _targets(self, parsed_args: argparse.Namespace, ledger: Any, provider: Any) -> list[Any]:
        from soong.core.reconcile import try_reconcile
        from soong.core.selection import RUNNING_STATUSES, choose_instance

        try_reconcile(self.context, ledger, self.warn)  # attaches ids of launches a kill -9 left unrecorded
        if not parsed_args.all:
            return [choose_instance(self.context, parsed_args.instance_id, stdin=self.app.stdin,
                                    stderr=self.app.stderr, provider=provider,
                                    statuses=RUNNING_STATUSES + ("terminating",))]
        running = [i for i in provider.list_instances() if i.status in RUNNING_STATUSES + ("terminating",)]
        mine = [i for i in running if ledger.get(i.id) is not None]
        others = [i.id for i in running if ledger.get(i.id) is None]
        if others:
            self.warn(f"not touching {len(others)} instance(s) soong did not launch: {', '.join(others)} "
                      "(stop one with --instance-id ID)")
        if not mine:
            raise NotFoundError("no running instance launched by soong")
        return mine

    def _describe(self, instance: Any, ledger: Any) -> str:
        record = ledger.get(instance.id)
        now = self.context.clock()
        where = f"{instance.name or 'unnamed'}, {instance.instance_type}, {instance.region}, {instance.status}"
        if record is None:
            price = instance.price_cents_per_hour
            rate = f"${price / 100:.2f}/h, " if price is not None else ""
            return f"{instance.id} ({where}; {rate}not launched by soong: cost so far unknown)"
        return (f"{instance.id} ({where}; ${record.price_per_hour:.2f}/h, ${record.cost_usd(now):.2f} so far)")

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.ledger import Ledger
        from soong.core.terminate import Stopper

        context = self.context
        provider = context.provider()
        ledger = Ledger.for_context(context)
        targets = self._targets(parsed_args, ledger, provider)
        for instance in targets:
            self.say(f"will terminate {self._describe(instance, ledger)}")
        what = "this instance" if len(targets) == 1 else f"these {len(targets)} instances"
        self.confirm(f"Terminate {what}?", parsed_args)
        stopper = Stopper(context, provider, ledger, report=self.say)
        failed = []
        for instance in targets:
            outcome = stopper.stop(instance.id)
            if outcome.confirmed:
                cost = f"; final cost ${outcome.final_cost_usd:.2f}" if outcome.final_cost_usd is not None else ""
                self.app.stdout.write(f"terminated {instance.id}{cost}\n")
            else:
                failed.append(outcome)
                self._shout(instance, outcome, ledger)
        if failed:
            ids = ", ".join(o.instance_id for o in failed)
            raise UnconfirmedError(f"termination of {ids} is NOT confirmed; it may still be billing",
                                   hint="run 'soong stop' again, and check the Lambda console")
        return 0

    def _shout(self, instance: Any, outcome: Any, ledger: Any) -> None:
        record = ledger.get(instance.id)
        price = record.price_per_hour if record else (instance.price_cents_per_hour or 0) / 100
        for line in (
            f"!!! could not confirm that instance {instance.id} is terminated: {outcome.error}",
            f"!!! it may still be running and billing ${price:.2f}/h",
            f"!!! run 'soong stop --instance-id {instance.id}' again and check the provider's console",
        ):
            self.say(line)
