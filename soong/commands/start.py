"""``soong start``: pick a GPU that fits, show the cost, launch, wait until the model answers, open the tunnel."""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from soong.core.command import Command
from soong.core.errors import CapacityError

DEFAULT_RETRY = "1h"


class Start(Command):
    """Launch an instance serving a model and wait until it answers.

    The model and GPU come from the flags, then the configuration, then the
    recommendation (the cheapest type that fits). The price per hour, the lease
    cost and the worst case to the hard limit are shown before anything is
    launched. The launch boots the provider's image family (``lambda.image_family``
    on Lambda) for the type's architecture in the chosen region, checked against
    the provider's image list first. The launch is recorded locally before the API
    call. See docs/lifecycle.md.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--model", metavar="ID", help="model to serve (default: defaults.model)")
        parser.add_argument("--gpu", metavar="TYPE", help="instance type (default: defaults.gpu, else the recommended one)")
        parser.add_argument("--region", metavar="NAME", help="launch only in this region (default: the provider's "
                            "default region, lambda.default_region on Lambda, failing over to a region with capacity)")
        parser.add_argument("--hours", type=float, metavar="H", help="lease in hours (default: defaults.lease_hours)")
        parser.add_argument("--name", metavar="NAME", help="instance name prefix (default: soong-<model>)")
        fs = parser.add_mutually_exclusive_group()
        fs.add_argument("--filesystem", metavar="NAME", help="persistent file system (default: the provider's, "
                        "lambda.filesystem_name on Lambda)")
        fs.add_argument("--no-filesystem", action="store_true", help="attach no file system")
        parser.add_argument("--context", type=int, metavar="TOKENS", help="context length (default: the model's)")
        parser.add_argument("--force", action="store_true", help="launch a GPU even if the model does not fit it")
        parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                            help="wait until the model answers (default: wait)")
        parser.add_argument("--tunnel", action=argparse.BooleanOptionalAction, default=True,
                            help="open the tunnel when ready (default: yes)")
        parser.add_argument("--retry-until-up", nargs="?", const=DEFAULT_RETRY, metavar="DURATION",
                            help=f"without capacity, keep checking until there is some (default {DEFAULT_RETRY}; "
                                 "e.g. 30m, 2h)")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the launch request (secrets masked) and the bootstrap; launch nothing")
        parser.add_argument("--over-budget", action="store_true", help="launch even past budget.* caps")
        self.add_yes_option(parser)
        return parser

    # -- the StartUI protocol --------------------------------------------------------------------
    def say(self, line: str) -> None:
        """One line for the user on stderr (stdout is kept for the result)."""
        self.app.stderr.write(f"soong: {line}\n")
        self.app.stderr.flush()

    def can_ask(self) -> bool:
        """True when stdin is a terminal that can answer."""
        stdin = self.app.stdin
        try:
            return bool(stdin is not None and stdin.isatty())
        except (ValueError, OSError):
            return False

    def choose(self, question: str, options: Sequence[str]) -> str | None:
        """One of ``options`` by number or name, or None."""
        err = self.app.stderr
        err.write(f"{question}\n")
        for number, option in enumerate(options, 1):
            err.write(f"  {number}) {option}\n")
        err.write(f"Choose 1-{len(options)} (Enter: none): ")
        err.flush()
        answer = self.app.stdin.readline().strip()
        for number, option in enumerate(options, 1):
            if answer in (str(number), option):
                return option
        return None

    # -- the command ---------------------------------------------------------------------------------
    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.budget import check_launch
        from soong.core.cost_preview import CostPreview
        from soong.core.launch import dry_run_text, image_line, launch_secrets
        from soong.core.ledger import Ledger
        from soong.core.start_flow import LaunchPlanner

        context = self.context
        provider = context.provider()
        planner = LaunchPlanner(context, provider, self, waiter=self._waiter(parsed_args, provider))
        draft = planner.prepare(_request(parsed_args))
        if parsed_args.dry_run:
            order = planner.place(draft) if planner.region_now(draft) else _unplaced(planner, draft)
            self.app.stdout.write(dry_run_text(context, provider, order))
            return 0
        # without --retry-until-up the region is settled (or refused) before the cost is confirmed
        placed = planner.place(draft) if planner.waiter is None else None
        itype = placed.instance_type if placed else draft.choice.instance_type
        region = placed.region if placed else (planner.region_now(draft) or f"the first with capacity in "
                                                                      f"{draft.policy.describe()}")
        preview = CostPreview(itype.name, region, itype.price_cents_per_hour, draft.lease_hours,
                              draft.hard_limit_hours, itype.gpu_description)
        self.say(f"{draft.model.id} on {itype.name} ({draft.choice.describe_source})")
        if placed is not None:
            self.say(image_line(placed).lstrip("# "))
        for line in preview.lines():
            self.say(line)
        ledger = Ledger.for_context(context)
        check = check_launch(ledger, context.config, price_cents_per_hour=itype.price_cents_per_hour,
                             hard_limit_hours=draft.hard_limit_hours, now=context.clock(),
                             over_budget=parsed_args.over_budget)
        if check.remaining_usd is not None:
            self.say(f"budget:     ${check.remaining_usd:.2f} left this month before this launch")
        if context.config.get("secrets.api_key_delivery") == "ssh":
            self.say(ssh_delivery_warning(context))
        self.confirm(f"Launch {itype.name} at ${preview.hourly_usd:.2f}/h (worst case ${preview.worst_case_usd:.2f})?",
                     parsed_args)
        secrets = launch_secrets(context, provider, warn=self.warn)
        instance, order = self._launch(planner, draft, ledger, secrets, provider, placed)
        self.say(f"launched {instance.id} ({order.launch_name}) in {order.region}; recorded in the ledger")
        if not parsed_args.wait:
            self._print_next(instance.id, waited=False)
            return 0
        from soong.commands.start_wait import wait_and_connect

        return wait_and_connect(self, instance, order, ledger, provider, tunnel=parsed_args.tunnel)

    def _waiter(self, parsed_args: argparse.Namespace, provider: Any) -> Any:
        if not parsed_args.retry_until_up:
            return None
        from soong.core.durations import parse_duration
        from soong.core.regions import CapacityWaiter

        duration = parse_duration(parsed_args.retry_until_up).total_seconds()
        interval = max(float(self.context.config.get("start.capacity_poll_seconds")), 0.0)
        return CapacityWaiter(provider.list_instance_types, duration=duration, interval=interval, report=self.say)

    def _launch(self, planner: Any, draft: Any, ledger: Any, secrets: Any, provider: Any,
                order: Any = None) -> tuple[Any, Any]:
        """Place (unless placed) and launch; with --retry-until-up a launch refused for capacity waits and retries."""
        from soong.core.launch import launch_recorded, render

        order = order or planner.place(draft)
        while True:
            request, _user_data = render(self.context, provider, order, secrets)
            try:
                instance, _record = launch_recorded(self.context, provider, ledger, order, request)
                return instance, order
            except CapacityError as exc:
                if planner.waiter is None or not planner.waiter.pause(f"the launch was refused ({exc.message})"):
                    raise
            except KeyboardInterrupt:
                self.say(f"interrupted during the launch call: it may have gone through; the ledger has it as "
                         f"{order.launch_name}, and 'soong status' shows it if it did")
                raise
            order = planner.place(draft, refresh=True)

    def _print_next(self, instance_id: str, *, waited: bool) -> None:
        out = self.app.stdout
        if not waited:
            out.write(f"instance {instance_id} is booting; it was not waited for (--no-wait)\n")
        out.write("next:\n"
                  "  soong status                    # cost so far, lease left, model state\n"
                  f"  soong tunnel start --instance-id {instance_id}\n"
                  "  soong extend 2                  # add 2 hours to the lease\n"
                  f"  soong stop --instance-id {instance_id}   # terminate: billing stops only then\n")


def ssh_delivery_warning(context: Any) -> str:
    """What ``secrets.api_key_delivery: ssh`` means for this launch, and whether the watchdog is installed."""
    installed = None
    try:
        from soong.core.watchdog_install import installers

        installed = any(installer.installed() for installer in installers(context))
    except Exception:  # only a hint: never let it stop a launch
        installed = None
    state = {True: "it is installed here", False: "it is NOT installed here: run 'soong watchdog install'",
             None: "check it with 'soong watchdog status'"}[installed]
    return ("warning: secrets.api_key_delivery is ssh: the API key is not in the user data, so the instance cannot "
            "end itself until soong delivers the key once its daemon answers; if this machine goes away before "
            f"then, only the watchdog ends it ({state})")


def _request(parsed_args: argparse.Namespace) -> Any:
    from soong.core.start_flow import StartRequest

    return StartRequest(model=parsed_args.model, gpu=parsed_args.gpu, region=parsed_args.region,
                        hours=parsed_args.hours, name=parsed_args.name, filesystem=parsed_args.filesystem,
                        no_filesystem=parsed_args.no_filesystem, context_length=parsed_args.context,
                        force=parsed_args.force)


def _unplaced(planner: Any, draft: Any) -> Any:
    """A dry-run order when no region has capacity now (the region shown is the first allowed or preferred)."""
    itype = draft.choice.instance_type
    with_image = planner.image_regions(itype)
    listed = sorted({r.name for t in planner.types for r in t.regions_with_capacity})
    region = (draft.policy.allowed or (draft.policy.preferred,))[0] or (listed[0] if listed else None)
    if not draft.policy.allowed and with_image and region not in with_image:
        region = with_image[0]  # a region where the image exists, so the request shown could be sent there
    region = region or "any"
    planner.ui.say(f"no capacity for {draft.choice.instance_type.name} in {draft.policy.describe()} now; "
                   f"the request below names {region}")
    return planner.order(draft, itype, region)

