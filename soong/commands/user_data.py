"""``soong user-data``: print the cloud-init document an instance would boot with."""

from __future__ import annotations

import argparse
from typing import Any

from soong.core.command import Command
from soong.core.errors import SecretError, UsageError


class ShowUserData(Command):
    """Print the cloud-init user data for a model (secrets masked unless --reveal)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--model", metavar="ID", help="model to serve (default: config defaults.model)")
        parser.add_argument("--gpu", metavar="TYPE", help="instance type, e.g. gpu_2x_h100_sxm5 (default: config "
                                                          "defaults.gpu, else the smallest fitting setup)")
        parser.add_argument("--context", type=int, metavar="TOKENS", help="context length (default: the model's)")
        parser.add_argument("--name", metavar="NAME", help="instance name the daemon looks itself up by "
                                                           "(default: soong-<model>-preview)")
        parser.add_argument("--filesystem", metavar="NAME", help="persistent file system (default: the provider's, "
                                                                 "lambda.filesystem_name on Lambda)")
        parser.add_argument("--reveal", action="store_true", help="include the real secrets (the provider's API key, "
                                                                  "the daemon token)")
        parser.add_argument("--output", metavar="FILE", help="write to FILE (created 0600) instead of stdout")
        return parser

    def _gpu_count(self, spec: Any, gpu: str | None, context: int) -> tuple[int, str]:
        from soong.core.recommend import STATIC_SETUPS, gpu_count_from_name, smallest_setup
        from soong.core.vram import tp_problem

        if gpu is None:
            best = smallest_setup(spec, context=context)
            if best is None:
                raise UsageError(f"no known GPU setup fits {spec.id} at {context} tokens; pass --gpu or a shorter --context")
            return best.instance_type.gpu_count, best.instance_type.name
        count = gpu_count_from_name(gpu)
        if count is None:
            known = {s.name: s.gpu_count for s in STATIC_SETUPS}
            if gpu not in known:
                raise UsageError(f"cannot tell how many GPUs '{gpu}' has; use a type name like gpu_2x_h100_sxm5")
            count = known[gpu]
        problem = tp_problem(spec, count)
        if problem:
            raise UsageError(f"{gpu} cannot serve {spec.id}: {problem}")
        return count, gpu

    def _secrets(self, reveal: bool, provider: Any) -> Any:
        import secrets as _random

        from soong.core.bootstrap import LaunchSecrets

        store = self.context.secrets
        if not reveal:
            try:
                has_hf = bool(store.get("hf_token"))
            except SecretError:
                has_hf = False
            return LaunchSecrets.placeholders(with_hf_token=has_hf)
        ending = provider.self_termination()
        api_key = store.require(ending.api_key_secret) if ending is not None else ""
        token = store.get("daemon_token")
        if not token:
            token = _random.token_urlsafe(32)
            self.warn("no daemon_token is stored; this document uses a fresh random one")
        return LaunchSecrets(api_key, token, store.get("hf_token") or None)

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.atomic import write_private
        from soong.core.bootstrap import LaunchPlan, build_user_data
        from soong.core.catalog import find_model
        from soong.core.recommend import check_context

        config = self.context.config
        spec = find_model(self.context.models(), parsed_args.model or config.get("defaults.model"))
        context = check_context(spec, parsed_args.context)
        count, type_name = self._gpu_count(spec, parsed_args.gpu or config.get("defaults.gpu"), context)
        provider = self.context.provider()
        secrets = self._secrets(parsed_args.reveal, provider)
        plan = LaunchPlan.from_context(
            self.context, spec, instance_name=parsed_args.name or f"soong-{spec.id}-preview", gpu_count=count,
            secrets=secrets, provider=provider, instance_type=type_name, context_length=context,
            filesystem_name=parsed_args.filesystem,
        )
        document = build_user_data(self.context.plugins, plan)
        if parsed_args.output:
            write_private(parsed_args.output, document)
            self.app.stderr.write(f"soong: wrote {len(document.encode())} bytes to {parsed_args.output}\n")
        else:
            self.app.stdout.write(document)
        return 0
