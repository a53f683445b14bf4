"""``soong demo``: the whole of soong, end to end, in the local sandbox (no account, no network)."""

from __future__ import annotations

from soong.core.command import Command


class Demo(Command):
    """Run soong's whole job in the local sandbox: up, start, chat, extend, idle shutdown, history, down.

    Every step is a real soong command, printed as you would type it, with its real
    output. Exits non-zero if any step fails, and always takes the sandbox down.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--model", default="llama-3.1-8b", help="catalog model to start (default: llama-3.1-8b)")
        parser.add_argument("--time-scale", type=float, default=120.0,
                            help="how much faster the sandbox daemons' clocks run (default 120: the 30-minute "
                                 "idle timeout passes in 15 seconds)")
        parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for each slow step")
        parser.add_argument("--keep", action="store_true", help="leave the sandbox up at the end")
        return parser

    def take_action(self, parsed_args):
        from soong.demo.script import DemoRun

        run = DemoRun(out=self.app.stdout, err=self.app.stderr, model=parsed_args.model,
                      time_scale=parsed_args.time_scale, timeout=parsed_args.timeout, keep=parsed_args.keep)
        return run.run()
