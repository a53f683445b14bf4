"""Clock skew between the laptop that launched the instance and the instance itself.

The config's ``launched_at`` is the laptop's clock; the rules run on this
machine's clock. The daemon fixes the launch time on its own clock once, at its
first start (``first_launch``), and keeps it in the state:

* ``launched_at`` no later than the first start: taken as it is (a launch comes
  before the daemon's first start; a laptop clock that was behind can only make
  the deadlines earlier, never later);
* ``launched_at`` after the first start (the laptop's clock ahead of this one, or
  this one behind): clamped to the first start, so the hard limit counts from
  the first start at the latest and skew never pushes it out, and marked
  ``pending``. The enforcer then reads the provider's clock (``api.LambdaApi``:
  the ``Date`` of an API answer) and, when that shows this machine's clock is
  off and the laptop's was right, moves the launch back to ``launched_at``
  translated onto this clock (``apply_provider_offset``). It only ever moves the
  deadlines earlier.

Lambda's API has no launch or creation time of its own for an instance: the
``Instance`` schema of the Lambda Cloud API 1.8.3 (openapi-1.8.3.json,
``components.schemas.Instance``) lists id, name, ip, private_ip, status,
ssh_key_names, file_system_names, file_system_mounts, region, instance_type,
hostname, jupyter_token, jupyter_url, actions, tags and firewall_rulesets, and
no time. Hence the provider's clock, not a provider record, settles which clock
was off.
"""

from __future__ import annotations

from typing import Any

#: A ``launched_at`` further than this ahead of this machine's clock at the first start is logged as a warning.
SKEW_TOLERANCE_SECONDS = 60.0

AGREED = "agreed"        # launched_at is not after the first start: used as it is
PENDING = "pending"      # clamped to the first start; the provider's clock is still to be read
CLAMPED = "clamped"      # clamped to the first start for good (the laptop's clock was ahead, or no provider clock)
PROVIDER = "provider"    # launched_at translated onto this clock through the provider's clock


def first_launch(config_launched: float, first_start: float, *, provider_check: bool = True) -> tuple[float, dict[str, Any]]:
    """The launch time on this machine's clock at the first start, and the ``clock`` record for the state.

    Never later than ``first_start``. ``provider_check`` False (a sped-up sandbox
    clock, which shares the laptop's machine) settles a clamped launch at once.
    """
    skew = config_launched - first_start
    record: dict[str, Any] = {"config_launched_at": config_launched, "first_start": first_start,
                              "skew_seconds": skew, "provider_offset_seconds": None}
    if skew <= 0:
        return config_launched, dict(record, status=AGREED)
    return first_start, dict(record, status=PENDING if provider_check else CLAMPED)


def translated_launch(config_launched: float, first_start: float, provider_offset: float) -> float:
    """``launched_at`` moved onto this machine's clock (provider time minus ``provider_offset``), never after ``first_start``.

    ``provider_offset`` is the provider's clock minus this machine's. The laptop
    stamped ``launched_at`` with its own clock, taken to agree with the provider's;
    when it does not (it was itself ahead), the result lies after the first
    start and the first start is kept.
    """
    return min(first_start, config_launched - provider_offset)


def apply_provider_offset(state: dict[str, Any], provider_offset: float, hard_limit_hours: float) -> float:
    """Settle a ``pending`` launch with the provider's clock; return how many seconds earlier the deadlines moved.

    The launch, the lease (start, first end and current end, extensions kept) and
    the hard limit move back together, never forward.
    """
    clock = state.get("clock") or {}
    if clock.get("status") != PENDING:
        return 0.0
    launched = translated_launch(clock["config_launched_at"], clock["first_start"], provider_offset)
    shift = max(0.0, float(state["launched_at"]) - launched)
    if shift > 0:
        state["launched_at"] = float(state["launched_at"]) - shift
        for key in ("lease_start", "initial_lease_end", "lease_end"):
            state[key] = float(state[key]) - shift
    state["hard_limit_at"] = min(float(state["hard_limit_at"]), float(state["launched_at"]) + hard_limit_hours * 3600)
    state["lease_end"] = min(float(state["lease_end"]), state["hard_limit_at"])
    state["clock"] = dict(clock, status=PROVIDER if shift > 0 else CLAMPED, provider_offset_seconds=provider_offset)
    return shift


def describe(clock: dict[str, Any]) -> str:
    """One line about a clamped launch, for the log."""
    return (f"launched_at is {clock['skew_seconds']:.0f} s ahead of this machine's clock at the daemon's first start "
            "(the laptop's clock is ahead, or this one behind); the lease and the hard limit count from the first "
            "start instead, until the provider's clock shows which clock is off")
