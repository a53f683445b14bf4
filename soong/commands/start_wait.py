"""The second half of ``soong start``: wait for the model, then open the tunnel and print where things are.

Ctrl-C while waiting, or an instance that does not get ready, never ends
silently: soong says what the running instance costs per hour and, on a
terminal, asks whether to terminate it or leave it running. Without a terminal
it is left running (the lease, the idle shutdown, the hard limit and the
watchdog still end it) and soong prints the command that stops it.
"""

from __future__ import annotations

from typing import Any

from soong.core.errors import SoongError, UnconfirmedError, UnreachableError

EXIT_INTERRUPTED = 130


def _ask_terminate(cmd: Any, instance_id: str, hourly: float) -> bool:
    if not cmd.can_ask():
        return False
    err = cmd.app.stderr
    err.write(f"Instance {instance_id} keeps running at ${hourly:.2f}/h until its lease ends. "
              "[t]erminate it now, or [l]eave it running? [t/L] ")
    err.flush()
    try:
        answer = cmd.app.stdin.readline().strip().lower()
    except KeyboardInterrupt:
        return False
    return answer in ("t", "terminate")


def _terminate(cmd: Any, instance_id: str, ledger: Any, provider: Any) -> None:
    from soong.core.terminate import Stopper

    outcome = Stopper(cmd.context, provider, ledger, report=cmd.say).stop(instance_id)
    if not outcome.confirmed:
        raise UnconfirmedError(f"could not confirm that {instance_id} is terminated ({outcome.error}); it may still "
                               f"be billing", hint=f"run 'soong stop --instance-id {instance_id}' again")
    cost = f"; it cost ${outcome.final_cost_usd:.2f}" if outcome.final_cost_usd is not None else ""
    cmd.say(f"terminated {instance_id}{cost}")


def _left_running(cmd: Any, instance_id: str, order: Any) -> None:
    cmd.say(f"left {instance_id} running at ${order.price_cents_per_hour / 100:.2f}/h; its lease ends in "
            f"{order.lease_hours:g} h and the hard limit in {order.hard_limit_hours:g} h")
    cmd.say(f"see it with 'soong status'; end it with 'soong stop --instance-id {instance_id}'")


def handle_not_ready(cmd: Any, instance_id: str, order: Any, ledger: Any, provider: Any) -> None:
    """After an interrupt or a failed wait: terminate (if the user says so) or leave it running."""
    hourly = order.price_cents_per_hour / 100
    if _ask_terminate(cmd, instance_id, hourly):
        _terminate(cmd, instance_id, ledger, provider)
    else:
        _left_running(cmd, instance_id, order)


def _wait(cmd: Any, instance: Any, order: Any, provider: Any) -> Any:
    import datetime as _dt

    from soong.core.durations import format_duration
    from soong.core.progress_display import progress_display
    from soong.core.readiness import TunnelProbe, ready_timeout_seconds, wait_until_ready
    from soong.core.secret_delivery import SecretCourier

    context = cmd.context
    sglang = bool(context.config.get("services.sglang"))
    timeout = ready_timeout_seconds(context.config, order.instance_type.gpu_count)
    header = (f"waiting for {order.model.id} on {instance.id} ({order.instance_type.name}, "
              f"up to {format_duration(_dt.timedelta(seconds=round(timeout)))})")
    said: set[str] = set()
    display = None

    def report(delivery: Any) -> None:  # once per distinct line, above the progress line
        line = delivery.line()
        if line not in said:
            said.add(line)
            (display.note if display is not None else cmd.say)(line)

    # the secrets the user data does not carry go over SSH as soon as the daemon answers
    probe = TunnelProbe(context, sglang=sglang, courier=SecretCourier(context, report=report))
    try:
        with progress_display(cmd.app.stderr, header) as display:
            return wait_until_ready(provider, instance.id, probe, timeout=timeout,
                                    poll=float(context.config.get("start.poll_seconds")), on_progress=display.update,
                                    sglang=sglang)
    finally:
        probe.close()


def open_tunnel(cmd: Any, instance: Any) -> Any:
    """Start the persistent tunnel; UnreachableError (the instance keeps running) when it cannot."""
    from soong.commands.tunnel import plan_forwards, tunnel_target

    backend = cmd.context.tunnel_backend()
    try:
        return backend.start(tunnel_target(cmd.context, instance), plan_forwards(cmd.context, {}))
    except SoongError as exc:
        raise UnreachableError(f"the instance is ready but the tunnel did not open: {exc}",
                               hint=f"retry with 'soong tunnel start --instance-id {instance.id}'") from None


def print_ready(cmd: Any, instance: Any, order: Any, record: Any) -> None:
    """The endpoints and the next commands."""
    out = cmd.app.stdout
    out.write(f"ready: {order.model.id} on {order.instance_type.name} in {order.region}, instance {instance.id}, "
              f"${order.price_cents_per_hour / 100:.2f}/h\n")
    if record is not None:
        ports = {f.name: f"http://{f.local_host}:{f.local_port}" for f in record.forwards}
        labels = (("sglang", "OpenAI-compatible API", "/v1"), ("n8n", "n8n", ""),
                  ("status", "status daemon", "/status  (bearer: the daemon token)"))
        for name, label, suffix in labels:
            if name in ports:
                out.write(f"  {label + ':':<23}{ports[name]}{suffix}\n")
        if "sglang" in ports:
            out.write("  SGLang requires the instance's own API key (Authorization: Bearer KEY); for OpenAI clients:\n")
            out.write(openai_hint(ports["sglang"], instance.id, profile=cmd.context.profile, indent="    "))
    else:
        out.write(f"  no tunnel opened (--no-tunnel); 'soong tunnel start --instance-id {instance.id}' opens one\n")
    out.write("next:\n"
              "  soong status          # cost so far, lease left, idle time\n"
              "  soong extend 2        # add 2 hours to the lease\n"
              f"  soong stop            # terminate {instance.id}: billing stops only then\n")


def openai_hint(base: str, instance_id: str, *, profile: str | None = None, indent: str = "") -> str:
    """How to point an OpenAI client at the tunnel: the key is printed by a command, never here."""
    soong = f"soong --profile {profile}" if profile and profile != "default" else "soong"
    return (f"{indent}export OPENAI_BASE_URL={base}/v1\n"
            f"{indent}export OPENAI_API_KEY=$({soong} tunnel api-key --instance-id {instance_id})\n")


def wait_and_connect(cmd: Any, instance: Any, order: Any, ledger: Any, provider: Any, *, tunnel: bool) -> int:
    """Wait for ready (handling Ctrl-C and failures), open the tunnel unless told not to, print the URLs."""
    try:
        progress = _wait(cmd, instance, order, provider)
    except KeyboardInterrupt:
        cmd.say("interrupted while waiting")
        handle_not_ready(cmd, instance.id, order, ledger, provider)
        return EXIT_INTERRUPTED
    except SoongError as exc:
        from soong.core.readiness import PreflightFailed

        if isinstance(exc, PreflightFailed):
            raise  # its one line says why and when the instance ends itself; nothing to ask
        cmd.say(f"not ready: {exc}")
        handle_not_ready(cmd, instance.id, order, ledger, provider)
        raise
    instance = progress.instance or instance
    record = open_tunnel(cmd, instance) if tunnel else None
    print_ready(cmd, instance, order, record)
    return 0
