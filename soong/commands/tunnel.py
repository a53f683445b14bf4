"""``soong tunnel start|stop|status|api-key``: persistent tunnels to instances' SGLang, n8n and status daemon,
and SGLang's per-instance API key (what an OpenAI client sends as ``OPENAI_API_KEY``)."""

from __future__ import annotations

import argparse
from typing import Any

from soong.core.command import Command, Lister
from soong.core.errors import NotFoundError, UnreachableError, UsageError

#: Remote ports on the instance fixed by its bootstrap (the status daemon's comes from config).
SGLANG_REMOTE_PORT = 8000
N8N_REMOTE_PORT = 5678

#: (forward name, local-port config key, command-line flag, service switch or None).
SERVICES = (
    ("sglang", "tunnel.sglang_port", "--sglang-port", "services.sglang"),
    ("n8n", "tunnel.n8n_port", "--n8n-port", "services.n8n"),
    ("status", "tunnel.status_port", "--status-port", None),
)


def _remote_port(context: Any, name: str) -> int:
    if name == "sglang":
        return SGLANG_REMOTE_PORT
    if name == "n8n":
        return N8N_REMOTE_PORT
    return int(context.config.get("status_daemon.port"))


def plan_forwards(context: Any, requested: dict[str, int | None], *, reserved: set[int] = frozenset()) -> list[Any]:
    """The forwards of a tunnel with their local ports decided.

    A port given on the command line or in config/env is used as is, and a taken
    one is an error naming it; a default port becomes the next free one from it
    (so several instances can have tunnels at once). ``reserved`` ports are
    treated as taken.
    """
    from soong.core.local_ports import PortInUseError, next_free_port, port_is_free
    from soong.core.types import Forward

    chosen: set[int] = set(reserved)
    forwards = []
    for name, key, flag, switch in SERVICES:
        if switch is not None and not context.config.get(switch):
            continue
        port = requested.get(name)
        explicit = port is not None or context.config.source(key) != "default"
        if port is None:
            port = int(context.config.get(key))
        if port == 0:
            pass  # any free port, chosen by the backend
        elif explicit:
            if port in chosen or not port_is_free(port):
                raise PortInUseError(port, name, hint=f"choose another with {flag} or config key {key}")
        else:
            port = next_free_port(port, avoid=chosen)
        chosen.add(port)
        forwards.append(Forward(name, port, _remote_port(context, name)))
    return forwards


def tunnel_target(context: Any, instance: Any) -> Any:
    """The :class:`~soong.core.types.TunnelTarget` of an instance (from its provider); raises if it has no address yet."""
    from soong.core.tunnel_state import target_for

    if not instance.ip:
        raise UnreachableError(f"instance {instance.id} has no address yet (status {instance.status}); "
                               "try again when it is active")
    return target_for(context, instance)


def backends_with_tunnels(context: Any) -> list[Any]:
    """The configured backend plus every registered backend that has recorded tunnels."""
    from soong.core.tunnel_state import TunnelStore

    names = [context.config.get("tunnel.backend")]
    registry = context.plugins.tunnel_backends()
    for stored in TunnelStore(context.paths.state_dir).all():
        if stored.backend in registry and stored.backend not in names:
            names.append(stored.backend)
    return [context.tunnel_backend(name) for name in names if name in registry]


def forwards_text(forwards: Any) -> str:
    """``sglang 127.0.0.1:8000->8000, ...``."""
    return ", ".join(f"{f.name} {f.local_host}:{f.local_port}->{f.remote_port}" for f in forwards)


def _port_rows(forwards: Any) -> list[tuple[str, str, str]]:
    return [(f.name, f"{f.local_host}:{f.local_port}", f"{f.remote_host}:{f.remote_port}") for f in forwards]


def _add_instance_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance-id", metavar="ID", help="the instance (default: the only running one, or ask)")


class StartTunnel(Lister):
    """Open a persistent tunnel to an instance's SGLang, n8n and status daemon ports.

    Local ports are the configured ones; a default one that is taken becomes the
    next free port. The tunnel keeps running after the command ends; see
    'soong tunnel status' and 'soong tunnel stop'.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_instance_option(parser)
        for name, key, flag, _switch in SERVICES:
            parser.add_argument(flag, type=int, metavar="N", dest=f"{name}_port",
                                help=f"local port for {name} (default: config {key}, or the next free one; "
                                     "0: any free port)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.local_ports import PortInUseError
        from soong.core.selection import choose_instance

        for name, _key, flag, _switch in SERVICES:
            port = getattr(parsed_args, f"{name}_port")
            if port is not None and not 0 <= port <= 65535:
                raise UsageError(f"{flag} must be a port number between 1 and 65535 (0: any free port), not {port}")
        instance = choose_instance(self.context, parsed_args.instance_id, stdin=self.app.stdin, stderr=self.app.stderr)
        target = tunnel_target(self.context, instance)
        backend = self.context.tunnel_backend()
        for record in backend.list():
            if record.instance_id == instance.id and record.alive:
                self.app.stderr.write(f"soong: the tunnel to {instance.id} is already running (pid {record.pid})\n")
                return ("Service", "Local", "Remote"), _port_rows(record.forwards)
        requested = {name: getattr(parsed_args, f"{name}_port") for name, *_ in SERVICES}
        forwards = plan_forwards(self.context, requested)
        try:
            record = backend.start(target, forwards)
        except PortInUseError as exc:
            keys = {name: key for name, key, *_rest in SERVICES}
            picked = {f.local_port for f in forwards
                      if requested.get(f.name) is None and self.context.config.source(keys[f.name]) == "default"}
            if exc.port not in picked:
                raise
            # another process took a port we picked between choosing and binding: choose again once
            record = backend.start(target, plan_forwards(self.context, requested, reserved={exc.port}))
        pid = f", pid {record.pid}" if record.pid else ""
        self.app.stderr.write(f"soong: tunnel to {instance.id} ({instance.name or instance.ip}) is up "
                              f"[{backend.name}{pid}]\n")
        return ("Service", "Local", "Remote"), _port_rows(record.forwards)


class StopTunnel(Command):
    """Stop the persistent tunnel of an instance (or of all instances with --all)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--instance-id", metavar="ID", help="the instance whose tunnel to stop")
        group.add_argument("--all", action="store_true", help="stop every tunnel")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.selection import choose_one
        from soong.core.tunnel_state import check_instance_id

        owners = [(backend, record) for backend in backends_with_tunnels(self.context) for record in backend.list()]
        if parsed_args.instance_id:
            check_instance_id(parsed_args.instance_id)
            chosen = [(b, r) for b, r in owners if r.instance_id == parsed_args.instance_id]
            if not chosen:
                raise NotFoundError(f"no tunnel for instance {parsed_args.instance_id}")
        elif parsed_args.all:
            chosen = owners
        elif not owners:
            self.app.stdout.write("no tunnel is running\n")
            return 0
        else:
            chosen = [choose_one(owners, describe=lambda o: f"{o[1].instance_id} ({o[1].name or o[1].host}, "
                                 f"{forwards_text(o[1].forwards)})", key=lambda o: o[1].instance_id,
                                 what="tunnels", stdin=self.app.stdin, stderr=self.app.stderr)]
        for backend, record in chosen:
            backend.close(record.instance_id)
            state = "stopped" if record.alive else "removed the record of the dead"
            self.app.stdout.write(f"{state} tunnel to {record.instance_id}\n")
        if not chosen:
            self.app.stdout.write("no tunnel is running\n")
        return 0


class TunnelStatus(Lister):
    """List persistent tunnels: instance, pid, local->remote ports and whether they answer.

    A tunnel whose process has died is shown once as dead and its record removed.
    For each live tunnel to SGLang, how to point an OpenAI client at it is printed
    on stderr: SGLang asks every request for the instance's own API key, which
    'soong tunnel api-key' prints.
    """

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.commands.start_wait import openai_hint
        from soong.core.tunnel_state import TunnelStore

        store = TunnelStore(self.context.paths.state_dir)
        rows = []
        for backend in backends_with_tunnels(self.context):
            for record in backend.list():
                sglang = next((f for f in record.forwards if f.name == "sglang"), None)
                if record.alive and sglang is not None:
                    self.app.stderr.write(f"soong: SGLang of {record.instance_id} (every request needs its API key):\n"
                                          + openai_hint(f"http://{sglang.local_host}:{sglang.local_port}",
                                                        record.instance_id, profile=self.context.profile, indent="  "))
                if record.alive:
                    alive = "yes"
                elif record.pid and store.load(record.instance_id) is None:
                    alive = "dead (removed)"
                else:
                    alive = "no"
                started = record.started_at.isoformat(timespec="seconds") if record.started_at else ""
                rows.append((record.instance_id, record.name or "", record.backend, record.pid or "",
                             forwards_text(record.forwards), alive, started))
        return ("Instance", "Name", "Backend", "PID", "Forwards", "Alive", "Started"), rows


class TunnelApiKey(Command):
    """Print the SGLang API key of an instance, and nothing else, on stdout.

    SGLang on every instance requires its own key (Authorization: Bearer KEY), so a web
    page in your browser cannot use the tunnel. Use it with an OpenAI client:
    'export OPENAI_API_KEY=$(soong tunnel api-key --instance-id ID)'. The key is
    derived from this profile's daemon token and the instance's launch name; soong
    never writes it to a log.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _add_instance_option(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from soong.core.instance_keys import sglang_api_key_for
        from soong.core.selection import choose_instance

        instance = choose_instance(self.context, parsed_args.instance_id, stdin=self.app.stdin, stderr=self.app.stderr)
        self.app.stdout.write(sglang_api_key_for(self.context, instance) + "\n")
        return 0
