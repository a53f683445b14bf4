"""Where a launch goes: regions, capacity, failover and waiting for capacity.

Rules (:func:`decide_region`):

* a persistent file system is regional, so with one the launch can only go to
  the file system's region; a ``--region`` naming another region is an error;
* a region given with ``--region`` is a requirement: without capacity there,
  the other regions with capacity are *offered*, never taken silently;
* the provider's configured default region (``Provider.default_region``, e.g.
  ``lambda.default_region``) is a preference: without capacity there, the
  launch fails over to a region that has some (and says so);
* with no region anywhere, the first region with capacity is used.

:class:`CapacityWaiter` is ``--retry-until-up``: it checks capacity every
``start.capacity_poll_seconds`` until the type can be launched in an allowed
region or the duration passes, reporting what it waits for. Its clock and
sleep are injectable.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

from soong.core.errors import AuthError, CapacityError, PermissionDeniedError, SoongError, UsageError
from soong.core.types import InstanceType


@dataclasses.dataclass(frozen=True)
class RegionPolicy:
    """What constrains the region of one launch."""

    requested: str | None = None  # --region
    preferred: str | None = None  # the provider's default region
    filesystem: str | None = None
    filesystem_region: str | None = None
    #: Where ``preferred`` comes from, for messages (the provider's config key).
    preferred_from: str = "the default region"

    def __post_init__(self) -> None:
        if self.requested and self.filesystem_region and self.requested != self.filesystem_region:
            raise UsageError(f"file system '{self.filesystem}' is in {self.filesystem_region}, but --region "
                             f"{self.requested} was given; a file system can only be mounted in its own region",
                             hint="drop --region, or launch with --no-filesystem")

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The regions a launch may use (None: any)."""
        if self.filesystem_region:
            return (self.filesystem_region,)
        if self.requested:
            return (self.requested,)
        return None

    @property
    def pinned(self) -> bool:
        """True when the region is fixed by --region or a file system."""
        return self.allowed is not None

    def describe(self) -> str:
        """The allowed regions in words."""
        allowed = self.allowed
        if allowed is None:
            return "any region"
        why = f" (where file system '{self.filesystem}' is)" if self.filesystem_region else ""
        return f"{allowed[0]}{why}"


@dataclasses.dataclass(frozen=True)
class RegionDecision:
    """The region chosen (None: no allowed region has capacity) and what else there is."""

    region: str | None
    note: str | None = None
    #: regions with capacity for the type outside what is allowed (to offer or to name).
    elsewhere: tuple[str, ...] = ()


def decide_region(itype: InstanceType, policy: RegionPolicy) -> RegionDecision:
    """Apply the module's rules to ``itype``'s live capacity."""
    with_capacity = [r.name for r in itype.regions_with_capacity]
    allowed = policy.allowed
    usable = [r for r in with_capacity if allowed is None or r in allowed]
    elsewhere = tuple(r for r in with_capacity if r not in usable)
    if not usable:
        return RegionDecision(None, elsewhere=elsewhere)
    if policy.requested and policy.requested in usable:
        return RegionDecision(policy.requested)
    if policy.preferred and policy.preferred in usable:
        return RegionDecision(policy.preferred)
    note = None
    if policy.preferred and policy.preferred not in usable:
        why = f"file system '{policy.filesystem}' is in {usable[0]}" if policy.filesystem_region else \
            f"no capacity for {itype.name} in {policy.preferred}"
        note = f"{why}; launching in {usable[0]} instead of {policy.preferred_from} {policy.preferred}"
    return RegionDecision(usable[0], note=note, elsewhere=elsewhere)


def no_capacity_error(itype: InstanceType, policy: RegionPolicy, decision: RegionDecision) -> CapacityError:
    """The error for a type with no capacity where the launch may go, naming where there is some."""
    if decision.elsewhere and policy.filesystem_region:
        hint = (f"capacity exists in {', '.join(decision.elsewhere)}, but file system '{policy.filesystem}' is in "
                f"{policy.filesystem_region}; wait with --retry-until-up, or use --no-filesystem with --region")
    elif decision.elsewhere:
        hint = f"capacity exists in {', '.join(decision.elsewhere)}: rerun with --region NAME, or wait with --retry-until-up"
    else:
        hint = "no region has any now; wait with --retry-until-up, or choose another --gpu ('soong available')"
    return CapacityError(f"no capacity for {itype.name} in {policy.describe()}", suggestion=hint,
                         code="soong/no-capacity")


def find_type(types: Sequence[InstanceType], name: str) -> InstanceType:
    """The type called ``name`` in ``types`` (the provider stopped offering it: an error)."""
    for itype in types:
        if itype.name == name:
            return itype
    raise SoongError(f"the provider no longer lists instance type '{name}'")


class CapacityWaiter:
    """``--retry-until-up``: wait until ``type_name`` has capacity in an allowed region.

    :param fetch_types: returns the provider's live instance types.
    :param duration: seconds to keep trying.
    :param interval: seconds between checks.
    :param report: receives one line each time it goes on waiting.
    """

    def __init__(self, fetch_types: Callable[[], Sequence[InstanceType]], *, duration: float, interval: float,
                 report: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.fetch_types = fetch_types
        self.duration = duration
        self.interval = interval
        self.report = report
        self.clock = clock
        self.sleep = sleep
        self.deadline = clock() + duration
        self.checks = 0

    @property
    def remaining(self) -> float:
        """Seconds left to wait."""
        return max(0.0, self.deadline - self.clock())

    def pause(self, why: str) -> bool:
        """Report ``why`` and sleep one interval; False (and no sleep) when the time is up."""
        left = self.remaining
        if left <= 0:
            return False
        self.report(f"{why}; checking again in {min(self.interval, left):.0f}s ({_minutes(left)} left)")
        self.sleep(min(self.interval, left))
        return True

    def wait(self, type_name: str, policy: RegionPolicy) -> tuple[InstanceType, RegionDecision]:
        """The type and a region once it has capacity; CapacityError when the time is up."""
        while True:
            self.checks += 1
            try:
                itype = find_type(self.fetch_types(), type_name)
            except (AuthError, PermissionDeniedError):
                raise
            except SoongError as exc:  # a passing API problem must not end a long wait
                if not self.pause(f"could not read capacity ({exc})"):
                    raise
                continue
            decision = decide_region(itype, policy)
            if decision.region:
                return itype, decision
            if not self.pause(f"waiting for capacity: {type_name} in {policy.describe()}"):
                error = no_capacity_error(itype, policy, decision)
                error.message = f"{error.message} after waiting {_minutes(self.duration)} ({self.checks} checks)"
                raise error


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min"


def filesystem_region(provider: Any, name: str | None) -> str | None:
    """The region of the account's file system ``name`` (None without one); NotFoundError if unknown."""
    if not name:
        return None
    from soong.core.errors import NotFoundError

    systems = provider.list_file_systems()
    for fs in systems:
        if fs.name == name:
            return fs.region
    known = ", ".join(sorted(f.name for f in systems)) or "none"
    raise NotFoundError(f"the account has no file system '{name}' (known: {known})",
                        hint="create it with 'soong configure', or launch with --no-filesystem")
