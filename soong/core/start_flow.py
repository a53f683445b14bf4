"""The decisions of ``soong start`` before anything is launched.

:func:`plan_launch` turns the command line and the configuration into a
:class:`~soong.core.launch.LaunchOrder`: the model, the instance type (refusing
one that cannot hold the model unless forced), the SSH key, the file system and
its region, the region with capacity (failing over, offering alternatives, or
waiting with ``--retry-until-up``), the lease, and the machine image: the
configured family must have a Python the serving engine installs on, only types
whose architecture the family and the engine support are offered, and the
exact image for the type's architecture and the region is read from the
provider before launching (:mod:`soong.core.images`). Once the region is known,
the provider's inbound firewall is read and a warning said when it lets in more
than SSH (:mod:`soong.core.firewall_check`). It talks to the user only
through the small :class:`StartUI` protocol, so it is tested without a terminal.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Protocol, Sequence

from soong.core.errors import AbortedError, NotFoundError, UsageError
from soong.core.hub import check_model_access
from soong.core.images import Platform, check_family, choose_image, platform_for
from soong.core.launch import LaunchOrder
from soong.core.launch_choice import TypeChoice, choose_instance_type, resolve_model
from soong.core.regions import CapacityWaiter, RegionDecision, RegionPolicy, decide_region, filesystem_region, no_capacity_error

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")


class StartUI(Protocol):
    """How the start flow talks to the user."""

    def say(self, line: str) -> None:
        """Tell the user something (one line)."""

    def can_ask(self) -> bool:
        """True when a terminal can answer questions."""

    def choose(self, question: str, options: Sequence[str]) -> str | None:
        """One of ``options``, or None when the user declines."""


@dataclasses.dataclass(frozen=True)
class StartRequest:
    """What the command line asks for (None: not given)."""

    model: str | None = None
    gpu: str | None = None
    region: str | None = None
    hours: float | None = None
    name: str | None = None
    filesystem: str | None = None
    no_filesystem: bool = False
    context_length: int | None = None
    force: bool = False


def _ssh_key_name(provider: Any) -> str:
    configured = provider.default_ssh_key_name()
    keys = provider.list_ssh_keys()
    names = [k.name for k in keys]
    setting = provider.ssh_key_name_key or f"provider {provider.name}"
    if configured:
        if configured not in names:
            raise NotFoundError(f"the account has no SSH key named '{configured}' ({setting}; known: "
                                f"{', '.join(names) or 'none'})", hint="run 'soong configure' to pick or upload one")
        return configured
    if len(names) == 1:
        return names[0]
    if not names:
        raise NotFoundError("the account has no SSH key; soong needs one to reach the instance",
                            hint="run 'soong configure' to upload your public key")
    how = f"'soong config set {provider.ssh_key_name_key} NAME'" if provider.ssh_key_name_key else "the provider's settings"
    raise UsageError(f"the account has {len(names)} SSH keys ({', '.join(names)}); choose one",
                     hint=f"set it with 'soong configure' or {how}")


def _lease(context: Any, hours: float | None) -> tuple[float, float]:
    hard = float(context.config.get("defaults.hard_limit_hours"))
    lease = float(hours if hours is not None else context.config.get("defaults.lease_hours"))
    if not 0 < lease <= 8:
        raise UsageError(f"--hours must be more than 0 and at most 8, not {lease:g}")
    return min(lease, hard), hard


def _name(request: StartRequest, model_id: str) -> str:
    name = request.name or f"soong-{model_id}"
    if not _NAME.match(name):
        raise UsageError(f"invalid --name {name!r} (letters, digits, '.', '_', '-'; at most 48)")
    return name


def _pick_region(itype: Any, policy: RegionPolicy, decision: RegionDecision, ui: StartUI) -> str:
    """Offer the regions with capacity elsewhere (a --region that has none); raise if declined or no terminal."""
    if decision.elsewhere and not policy.filesystem_region and ui.can_ask():
        answer = ui.choose(f"No capacity for {itype.name} in {policy.describe()}. Launch in another region?",
                           list(decision.elsewhere))
        if answer:
            return answer
        raise AbortedError("no region chosen; nothing was launched")
    raise no_capacity_error(itype, policy, decision)


@dataclasses.dataclass
class LaunchPlanner:
    """Builds a :class:`LaunchOrder` (see the module docstring); ``waiter`` is set for --retry-until-up."""

    context: Any
    provider: Any
    ui: StartUI
    #: Makes launch tokens (None: the provider's ``new_token``).
    new_token: Callable[[], str] | None = None
    waiter: CapacityWaiter | None = None
    types: list[Any] = dataclasses.field(default_factory=list)
    platform: Platform | None = None
    images: list[Any] | None = None
    firewall_checked: set[str | None] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        if self.new_token is None:
            self.new_token = self.provider.new_token
        if self.waiter is not None:  # capacity the waiter sees is capacity where an image exists
            fetch = self.waiter.fetch_types
            self.waiter.fetch_types = lambda: [self.servable(t, quiet=True) for t in fetch()]

    def policy(self, request: StartRequest) -> RegionPolicy:
        """The region rules for this launch (the file system's region looked up live)."""
        fs = None if request.no_filesystem else (request.filesystem or self.provider.default_filesystem())
        return RegionPolicy(requested=request.region, preferred=self.provider.default_region(),
                            filesystem=fs, filesystem_region=filesystem_region(self.provider, fs),
                            preferred_from=self.provider.region_key or f"provider {self.provider.name}")

    def choose_type(self, request: StartRequest, policy: RegionPolicy) -> tuple[Any, TypeChoice, int]:
        """The model, the type choice and the context length."""
        from soong.core.recommend import check_context

        spec, _source = resolve_model(self.context, request.model)
        note = self.context.plugins.override_note("models", spec.id)
        if note:
            self.ui.say(f"note: {note}")
        context_length = check_context(spec, request.context_length)
        self.platform = platform_for(self.context, self.provider)
        check_family(self.platform, spec.engine)
        requested = request.gpu or self.context.config.get("defaults.gpu")
        source = "flag" if request.gpu else "config"
        self.types = self.provider.list_instance_types()
        servable = [self.servable(t, quiet=True) for t in self.types]  # capacity only where its image exists
        choice = choose_instance_type(spec, servable, requested=requested, source=source, force=request.force,
                                      context_length=context_length, allowed_regions=policy.allowed,
                                      platform=self.platform)
        return spec, choice, context_length

    def image_for(self, itype: Any, region: str) -> Any:
        """The image to boot ``itype`` in ``region`` (None: the provider does not choose images).

        Uses the provider's image list as read for this start (read now if not yet);
        ImageChoiceError (exit 8) when the family has no image for the type's
        architecture there.
        """
        family = self.platform.family if self.platform is not None else None
        if family is None:
            return None
        if self.images is None:
            self.images = self.provider.machine_images()
        return choose_image(self.images, family.name, itype.architecture, region)

    def image_regions(self, itype: Any) -> tuple[str, ...] | None:
        """Regions where the family has an image for ``itype``'s architecture (None: images not chosen)."""
        family = self.platform.family if self.platform is not None else None
        if family is None:
            return None
        if self.images is None:
            self.images = self.provider.machine_images()
        return tuple(sorted({i.region for i in self.images
                             if i.family == family.name and i.architecture == itype.architecture}))

    def servable(self, itype: Any, *, quiet: bool = False) -> Any:
        """``itype`` with capacity only in regions where its image exists (saying which were dropped)."""
        regions = self.image_regions(itype)
        if regions is None:
            return itype
        dropped = [r.name for r in itype.regions_with_capacity if r.name not in regions]
        if not dropped:
            return itype
        if not quiet:
            assert self.platform is not None and self.platform.family is not None
            self.ui.say(f"{itype.name} has capacity in {', '.join(dropped)}, where {self.platform.family.name} has no "
                        f"{itype.architecture} image; not launching there")
        return dataclasses.replace(itype, regions_with_capacity=tuple(
            r for r in itype.regions_with_capacity if r.name in regions))

    def region(self, itype: Any, policy: RegionPolicy) -> tuple[Any, str]:
        """A region with capacity now, after waiting (``waiter``), or offered; the type as last seen."""
        listed = next((t for t in self.types if t.name == itype.name), itype)  # as the provider lists it
        servable = self.servable(listed)
        decision = decide_region(servable, policy)
        if decision.region is None and self.waiter is None:
            unfiltered = decide_region(listed, policy).region
            if unfiltered is not None:  # capacity only where the image is missing: say that, not "no capacity"
                self.image_for(listed, unfiltered)
        itype = servable
        if decision.region is None and self.waiter is not None:
            itype, decision = self.waiter.wait(itype.name, policy)
        if decision.note:
            self.ui.say(decision.note)
        if decision.region is None:
            return itype, _pick_region(itype, policy, decision, self.ui)
        return itype, decision.region

    def prepare(self, request: StartRequest) -> "Draft":
        """Model, type, lease, name, SSH key and region rules: everything but the region itself."""
        lease, hard = _lease(self.context, request.hours)
        policy = self.policy(request)
        spec, choice, context_length = self.choose_type(request, policy)
        access = check_model_access(self.context, spec, warn=self.ui.say)  # gated without access: refuse before launch
        name = _name(request, spec.id)
        ssh_key = _ssh_key_name(self.provider)
        if choice.forced:
            self.ui.say(f"warning: {choice.instance_type.name} does not fit {spec.id} ({choice.fit.problem}); "
                        "launching anyway because of --force")
        return Draft(spec, choice, context_length, lease, hard, name, ssh_key, policy,
                     hf_gated=access.gated if access is not None else None)

    def region_now(self, draft: "Draft") -> str | None:
        """The region the launch would use with the capacity (where its image exists) known now."""
        return decide_region(self.servable(draft.choice.instance_type, quiet=True), draft.policy).region

    def check_firewall(self, region: str | None) -> None:
        """Warn (one line, once per region) when launches there let in more than SSH; never raises."""
        from soong.core.firewall_check import launch_warning

        if region in self.firewall_checked:
            return
        self.firewall_checked.add(region)
        line = launch_warning(self.provider, region)
        if line:
            self.ui.say(f"warning: {line}")

    def place(self, draft: "Draft", *, refresh: bool = False) -> LaunchOrder:
        """The order, in a region with capacity (waiting or asking as the module docstring says).

        With ``refresh`` (after a launch refused for capacity) capacity is read again
        through the waiter instead of trusting what was seen before.
        """
        itype = draft.choice.instance_type
        if refresh:
            self.images = None  # read the image list again too
        if refresh and self.waiter is not None:
            itype, decision = self.waiter.wait(itype.name, draft.policy)
            if decision.note:
                self.ui.say(decision.note)
            region = decision.region
        else:
            itype, region = self.region(itype, draft.policy)
        self.check_firewall(region)
        return self.order(draft, itype, region)

    def order(self, draft: "Draft", itype: Any, region: str) -> LaunchOrder:
        """The order for ``draft`` on ``itype`` in ``region``, named by the provider with a fresh token."""
        assert self.new_token is not None
        token = self.new_token()
        return LaunchOrder(model=draft.model, instance_type=itype, region=region, ssh_key_name=draft.ssh_key,
                           name=draft.name, token=token, launch_name=self.provider.instance_name(draft.name, token),
                           lease_hours=draft.lease_hours,
                           hard_limit_hours=draft.hard_limit_hours, context_length=draft.context_length,
                           filesystem=draft.policy.filesystem, image=self.image_for(itype, region),
                           image_family=self.platform.family if self.platform is not None else None,
                           hf_gated=draft.hf_gated)


@dataclasses.dataclass(frozen=True)
class Draft:
    """A launch decided except for its region."""

    model: Any
    choice: TypeChoice
    context_length: int
    lease_hours: float
    hard_limit_hours: float
    name: str
    ssh_key: str
    policy: RegionPolicy
    #: What the Hub said: the model is gated (True), public (False), or unknown (None: not asked or unreachable).
    hf_gated: bool | None = None

    def region_now(self) -> str | None:
        """The region the launch would use with the capacity known now (None: none has capacity)."""
        return decide_region(self.choice.instance_type, self.policy).region
