"""Delivering secrets to an instance after boot, over the connection soong already makes.

Two secrets may be missing from an instance on purpose, because they are not in
its user data (docs/security.md):

* the Hugging Face token (``hf_token``), always: SGLang waits for it when the model
  is gated;
* the Lambda API key (``lambda_api_key``) with ``secrets.api_key_delivery: ssh``: the
  daemon cannot end the instance until it has it.

The instance's daemon says which it lacks (``GET /status``, ``secrets``).
:class:`SecretCourier` delivers each from this machine's secrets by running the
instance's receiver (:data:`~soong.core.bootstrap.SECRET_RECEIVER_PATH`, as root
through ``sudo -n`` unless the login is root) through the tunnel backend's
:meth:`~soong.core.interfaces.TunnelBackend.run`, with the value on its stdin only:
never on a command line, in a log or in an error. ``start`` does it as soon as the
daemon answers; ``status``, ``extend`` and ``adopt`` do it for an instance that
still lacks one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Sequence

from soong.core.bootstrap import API_KEY_SECRET, HF_TOKEN_SECRET, SECRET_RECEIVER_PATH
from soong.core.errors import SoongError

#: Each deliverable secret: the keyring name it is read from here, and its name in words.
SECRETS = {
    HF_TOKEN_SECRET: ("hf_token", "the Hugging Face token"),
    API_KEY_SECRET: ("lambda_api_key", "the Lambda API key"),
}
#: Runs the receiver as root: directly when the login is root, else through ``sudo -n`` (never prompting).
_AS_ROOT = 'if [ "$(id -u)" -eq 0 ]; then exec "$@"; fi; exec sudo -n "$@"'
#: Seconds before a failed delivery is tried again by the same courier.
RETRY_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What happened to one secret: ``delivered``, ``failed`` or ``not_set`` (no value on this machine)."""

    instance_id: str
    name: str
    outcome: str
    detail: str = ""

    @property
    def what(self) -> str:
        """The secret in words."""
        return SECRETS[self.name][1]

    def line(self) -> str:
        """One line for the user (never the value)."""
        if self.outcome == "delivered":
            return f"delivered {self.what} to instance {self.instance_id} over SSH"
        if self.outcome == "not_set":
            return (f"instance {self.instance_id} waits for {self.what}, and none is set here "
                    f"(soong secrets set {SECRETS[self.name][0]})")
        return f"could not deliver {self.what} to instance {self.instance_id}: {self.detail}"


def missing_secrets(status: Mapping[str, Any] | None) -> list[str]:
    """The receiver names of the secrets a daemon ``/status`` says the instance waits for."""
    secrets = (status or {}).get("secrets")
    if not isinstance(secrets, Mapping):
        return []  # a daemon from before secrets were delivered: it has everything in its user data
    wanted = []
    hf = secrets.get("hf_token") or {}
    if hf.get("expected") and not hf.get("delivered"):
        wanted.append(HF_TOKEN_SECRET)
    key = secrets.get("lambda_api_key") or {}
    if key.get("delivery") == "ssh" and not key.get("present"):
        wanted.append(API_KEY_SECRET)
    return wanted


def cannot_self_terminate(status: Mapping[str, Any] | None) -> bool:
    """Whether a daemon ``/status`` says it has no API key, so it cannot end its instance."""
    secrets = (status or {}).get("secrets")
    return isinstance(secrets, Mapping) and secrets.get("can_self_terminate") is False


def receiver_command(receiver: Sequence[str], name: str) -> list[str]:
    """The command that runs the receiver as root on the instance for secret ``name`` (no secret in it)."""
    return ["sh", "-c", _AS_ROOT, "receive-secret", *receiver, name]


class SecretCourier:
    """Delivers the secrets an instance waits for (see the module docstring).

    :param receiver: the receiver's command on the instance (its path; tests add ``--config``).
    :param report: called with each :class:`Delivery` as it happens.
    """

    def __init__(self, context: Any, *, backend: Any = None, receiver: Sequence[str] = (SECRET_RECEIVER_PATH,),
                 report: Callable[[Delivery], None] | None = None, timeout: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.context = context
        self._backend = backend
        self.receiver = tuple(receiver)
        self.report = report or (lambda delivery: None)
        self.timeout = timeout
        self.clock = clock
        self._done: set[tuple[str, str]] = set()
        self._failed_at: dict[tuple[str, str], float] = {}

    @property
    def backend(self) -> Any:
        """The tunnel backend commands run through (the configured one unless given)."""
        if self._backend is None:
            self._backend = self.context.tunnel_backend()
        return self._backend

    def _secret_name(self, name: str) -> str:
        """The secret store's name for receiver name ``name``: the API key is the provider's own secret."""
        if name == API_KEY_SECRET:
            try:
                ending = self.context.provider().self_termination()
            except SoongError:
                ending = None
            if ending is not None:
                return ending.api_key_secret
        return SECRETS[name][0]

    def _value(self, name: str) -> str | None:
        try:
            return self.context.secrets.get(self._secret_name(name)) or None
        except SoongError:
            return None

    def deliver(self, instance: Any, status: Mapping[str, Any] | None) -> list[Delivery]:
        """Deliver what ``status`` says ``instance`` lacks; one :class:`Delivery` per secret tried."""
        out = []
        for name in missing_secrets(status):
            key = (instance.id, name)
            if key in self._done or self.clock() - self._failed_at.get(key, -RETRY_SECONDS) < RETRY_SECONDS:
                continue
            delivery = self._deliver_one(instance, name)
            if delivery.outcome == "delivered":
                self._done.add(key)
            else:
                self._failed_at[key] = self.clock()
            self.report(delivery)
            out.append(delivery)
        return out

    def _deliver_one(self, instance: Any, name: str) -> Delivery:
        from soong.core.types import TunnelTarget

        value = self._value(name)
        if not value:
            return Delivery(instance.id, name, "not_set")
        if not instance.ip:
            return Delivery(instance.id, name, "failed", f"it has no address yet (status {instance.status})")
        target = TunnelTarget(instance_id=instance.id, host=instance.ip, name=instance.name)
        try:
            result = self.backend.run(target, receiver_command(self.receiver, name), stdin=(value + "\n").encode(),
                                      timeout=self.timeout)
        except SoongError as exc:
            return Delivery(instance.id, name, "failed", _clean(str(exc), value))
        finally:
            del value
        if result.ok:
            return Delivery(instance.id, name, "delivered")
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return Delivery(instance.id, name, "failed",
                        f"the receiver exited with status {result.returncode}" + (f" ({said[-1][:200]})" if said else ""))


def _clean(text: str, value: str) -> str:
    """``text`` with ``value`` masked (an error should never carry it; this makes sure)."""
    from soong.core.redact import MASK

    return text.replace(value, MASK) if value else text


def deliver_after(context: Any, instance: Any, client: Any, say: Callable[[str], None]) -> list[Delivery]:
    """Read ``/status`` through a connected daemon ``client`` and deliver what it lacks; say each
    outcome. Never raises: a command that delivers on the side (``extend``, ``adopt``) still succeeds."""
    try:
        status = client.status()
        deliveries = SecretCourier(context).deliver(instance, status)
    except Exception as exc:  # the command's own work is done; this is a bonus
        say(f"could not check or deliver the secrets of instance {instance.id}: {exc}")
        return []
    for delivery in deliveries:
        say(delivery.line())
    if cannot_self_terminate(status) and not any(d.name == API_KEY_SECRET and d.outcome == "delivered"
                                                 for d in deliveries):
        say(f"instance {instance.id} cannot end itself: its daemon has no Lambda API key yet")
    return deliveries
