"""One launch, from a decided :class:`LaunchOrder` to a recorded instance.

Money rules, in the order :func:`launch_recorded` follows them:

1. the intent is written to the ledger BEFORE the API call, under the unique
   launch name the provider gives the instance (``Provider.instance_name``,
   ``<name>-<token>`` by default), so a kill -9 at any later point still leaves
   a row that reconciliation matches by name;
2. the launch is sent once; it is never re-sent on an error (the provider
   resolves an ambiguous failure by looking the name up);
3. the instance id is recorded right after the call returns, and a
   ``launched`` cost event is emitted;
4. a launch the provider surely refused (capacity, invalid request, quota, a
   failure before the request was sent) is marked failed; anything that may
   have launched keeps its intent open for reconciliation.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from soong.core import errors as E
from soong.core.images import ImageFamily, MachineImage
from soong.core.types import Instance, InstanceType, LaunchRequest, ModelSpec


@dataclasses.dataclass(frozen=True)
class LaunchOrder:
    """Everything decided about a launch before the API is called."""

    model: ModelSpec
    instance_type: InstanceType
    region: str
    ssh_key_name: str
    name: str
    token: str
    #: The instance's name at the provider (``provider.instance_name(name, token)``) and its key in the ledger.
    launch_name: str
    lease_hours: float
    hard_limit_hours: float
    context_length: int
    filesystem: str | None = None
    #: The exact image to boot (chosen from the provider's list for the type's architecture
    #: and the region) and its family's facts; None when the provider does not choose images.
    image: MachineImage | None = None
    image_family: ImageFamily | None = None
    #: Whether the Hub said the model is gated (None: unknown). SGLang waits for the Hugging Face
    #: token (delivered over SSH) unless the Hub said the model is public.
    hf_gated: bool | None = None

    @property
    def price_cents_per_hour(self) -> int:
        """The type's hourly price in cents."""
        return self.instance_type.price_cents_per_hour


def launch_secrets(context: Any, provider: Any, *, warn: Any = None) -> Any:
    """The real secrets an instance of ``provider`` needs; a missing daemon token is generated and stored once.

    Refuses (UsageError) a provider whose instances cannot terminate themselves
    (``Provider.self_termination`` is None): every shutdown rule depends on it.
    """
    import secrets as _random

    from soong.core.bootstrap import LaunchSecrets

    ending = provider.self_termination()
    if ending is None:
        raise E.UsageError(f"provider '{provider.name}' gives its instances no way to terminate themselves, so the "
                           "lease, the idle timeout and the hard limit could not end them; nothing was launched",
                           hint="the provider's plugin must implement Provider.self_termination")
    store = context.secrets
    api_key = store.require(ending.api_key_secret)
    token = store.get("daemon_token")
    if not token:
        token = _random.token_urlsafe(32)
        store.set("daemon_token", token)
        if warn:
            warn("generated a daemon token and stored it in the keyring (see 'soong secrets list')")
    return LaunchSecrets(api_key, token, store.get("hf_token") or None)


def build_plan(context: Any, provider: Any, order: LaunchOrder, secrets: Any) -> Any:
    """The :class:`~soong.core.bootstrap.LaunchPlan` the bootstrap is rendered from."""
    from soong.core.bootstrap import LaunchPlan

    plan = LaunchPlan.from_context(
        context, order.model, instance_name=order.launch_name, gpu_count=order.instance_type.gpu_count,
        secrets=secrets, provider=provider, instance_type=order.instance_type.name, region=order.region,
        context_length=order.context_length, lease_hours=order.lease_hours, hard_limit_hours=order.hard_limit_hours,
    )
    return dataclasses.replace(plan, filesystem_name=order.filesystem,
                               image_family=order.image.family if order.image else None,
                               architecture=order.instance_type.architecture,
                               await_hf_token=bool(secrets.hf_token) and order.hf_gated is not False)


def build_request(order: LaunchOrder, user_data: str | None) -> LaunchRequest:
    """The provider request for ``order`` with its rendered bootstrap."""
    return LaunchRequest(instance_type=order.instance_type.name, region=order.region, ssh_key_name=order.ssh_key_name,
                         name=order.name, user_data=user_data,
                         file_system_names=(order.filesystem,) if order.filesystem else (), token=order.token,
                         image={"id": order.image.id} if order.image else None)


def render(context: Any, provider: Any, order: LaunchOrder, secrets: Any) -> tuple[LaunchRequest, str]:
    """The launch request and its user data for ``order`` on ``provider``."""
    from soong.core.bootstrap import build_user_data

    user_data = build_user_data(context.plugins, build_plan(context, provider, order, secrets))
    return build_request(order, user_data), user_data


def dry_run_text(context: Any, provider: Any, order: LaunchOrder) -> str:
    """What ``start --dry-run`` prints: the provider's request body (secrets masked) and the bootstrap."""
    from soong.core.bootstrap import LaunchSecrets
    from soong.core.errors import SecretError

    try:  # whether a token would be delivered decides whether SGLang waits for one; its value is not read here
        has_hf = bool(context.secrets.get("hf_token"))
    except SecretError:
        has_hf = False
    placeholders = LaunchSecrets.placeholders(with_hf_token=has_hf)
    request, user_data = render(context, provider, order, placeholders)
    call, body = provider.launch_preview(request)
    body = _without(body, user_data, f"<{len(user_data.encode())} bytes, printed below>")
    return (f"# launch request ({call}); nothing was launched\n"
            + image_line(order) + "\n"
            + json.dumps(body, indent=2, default=str) + "\n# user data (secrets masked)\n" + user_data)


def _without(value: Any, text: str, stand_in: str) -> Any:
    """``value`` (a request body) with every string equal to ``text`` (the user data) replaced by ``stand_in``."""
    if isinstance(value, str):
        return stand_in if value == text else value
    if isinstance(value, dict):
        return {key: _without(item, text, stand_in) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without(item, text, stand_in) for item in value]
    return value


def image_line(order: LaunchOrder) -> str:
    """``# image: <family> ...`` for the dry run: the family, the host architecture and the image chosen."""
    arch = order.instance_type.architecture
    if order.image is None:
        return f"# image: the provider's default image ({arch} host)"
    family = order.image_family.describe() if order.image_family else order.image.family
    name = " ".join(p for p in (order.image.name, order.image.version) if p)
    return (f"# image: {family}; {arch} image {order.image.id}"
            + (f" ({name})" if name else "") + f" in {order.image.region}")


def _surely_not_launched(exc: BaseException) -> bool:
    if isinstance(exc, E.AmbiguousLaunchError):
        return False
    if isinstance(exc, E.TransientError):
        return (isinstance(exc, E.RateLimitedError) or getattr(exc, "launched", None) is False
                or getattr(exc, "request_sent", True) is False)
    return isinstance(exc, E.ApiError)


def launch_recorded(context: Any, provider: Any, ledger: Any, order: LaunchOrder, request: LaunchRequest) -> tuple[Instance, Any]:
    """Launch ``request`` following the module's rules; return the instance and its ledger record."""
    from soong.core.costs import emit, launched_event

    ledger.record_intent(order.launch_name, instance_type=order.instance_type.name, region=order.region,
                         price_cents_per_hour=order.price_cents_per_hour, lease_hours=order.lease_hours,
                         hard_limit_hours=order.hard_limit_hours, at=context.clock(), model=order.model.id,
                         gpu=order.instance_type.gpu_description, provider=provider.name)
    try:
        instance = provider.launch(request)
    except E.SoongError as exc:
        if _surely_not_launched(exc):
            ledger.record_launch_failed(order.launch_name, at=context.clock(), reason=str(exc)[:500])
        raise
    record = ledger.record_launched(order.launch_name, instance.id, at=context.clock())
    emit(context, launched_event(record, context.clock()))
    return instance, record
