"""Region rules: file systems pin, --region requires, the configured region fails over; waiting for capacity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core.errors import CapacityError, TransientError, UsageError
from soong.core.regions import CapacityWaiter, RegionPolicy, decide_region, no_capacity_error
from soong.core.types import InstanceType, Region
from soong.testing.clock import ManualClock

REGIONS = ("us-east-1", "us-west-1", "us-south-2", "europe-central-1")


def itype(*regions: str, name: str = "gpu_1x_a10") -> InstanceType:
    return InstanceType(name=name, description="", gpu_description="A10 (24 GB)", gpu_count=1, gpu_memory_gib=24,
                        price_cents_per_hour=75, regions_with_capacity=tuple(Region(r) for r in regions),
                        compute_capability=8.6)


region = st.sampled_from(REGIONS)
maybe_region = st.none() | region


@st.composite
def policies(draw):
    fs_region = draw(maybe_region)
    requested = draw(maybe_region)
    if fs_region and requested and requested != fs_region:
        requested = fs_region
    return RegionPolicy(requested=requested, preferred=draw(maybe_region),
                        filesystem="fs" if fs_region else None, filesystem_region=fs_region)


@given(capacity=st.lists(region, unique=True), policy=policies())
def test_decision_never_leaves_the_allowed_regions_and_only_uses_capacity(capacity, policy):
    decision = decide_region(itype(*capacity), policy)
    if decision.region is not None:
        assert decision.region in capacity
        assert policy.allowed is None or decision.region in policy.allowed
    else:
        allowed = policy.allowed or REGIONS
        assert not set(capacity) & set(allowed)
        assert set(decision.elsewhere) == set(capacity)


@given(capacity=st.lists(region, unique=True, min_size=1), preferred=region)
def test_configured_region_is_kept_when_it_has_capacity_and_failed_over_otherwise(capacity, preferred):
    decision = decide_region(itype(*capacity), RegionPolicy(preferred=preferred))
    if preferred in capacity:
        assert decision.region == preferred and decision.note is None
    else:
        assert decision.region == capacity[0]
        assert preferred in decision.note and capacity[0] in decision.note


def test_requested_region_without_capacity_is_never_swapped_silently():
    decision = decide_region(itype("us-west-1"), RegionPolicy(requested="us-east-1", preferred="us-west-1"))
    assert decision.region is None
    assert decision.elsewhere == ("us-west-1",)
    error = no_capacity_error(itype("us-west-1"), RegionPolicy(requested="us-east-1"), decision)
    assert isinstance(error, CapacityError) and "us-west-1" in str(error)


def test_file_system_region_wins_over_the_configured_one():
    policy = RegionPolicy(preferred="us-west-1", filesystem="models", filesystem_region="us-east-1")
    decision = decide_region(itype("us-east-1", "us-west-1"), policy)
    assert decision.region == "us-east-1"
    assert "models" in decision.note


def test_requested_region_other_than_the_file_systems_is_refused():
    with pytest.raises(UsageError, match="regional|own region"):
        RegionPolicy(requested="us-west-1", filesystem="models", filesystem_region="us-east-1")


def test_no_capacity_with_a_file_system_says_why_elsewhere_does_not_help():
    policy = RegionPolicy(filesystem="models", filesystem_region="us-east-1")
    error = no_capacity_error(itype("us-west-1"), policy, decide_region(itype("us-west-1"), policy))
    assert "models" in str(error) and "--retry-until-up" in str(error)




def test_waiter_returns_once_capacity_appears_and_reports_each_wait():
    clock = ManualClock()
    answers = [[itype()], [itype()], [itype("us-east-1")]]
    lines = []
    waiter = CapacityWaiter(lambda: answers.pop(0), duration=600, interval=30, report=lines.append,
                            clock=clock, sleep=clock.sleep)
    found, decision = waiter.wait("gpu_1x_a10", RegionPolicy())
    assert decision.region == "us-east-1" and found.has_capacity("us-east-1")
    assert clock.sleeps == [30, 30]
    assert len(lines) == 2 and all("gpu_1x_a10" in line for line in lines)


def test_waiter_gives_up_after_its_duration_with_a_capacity_error():
    clock = ManualClock()
    waiter = CapacityWaiter(lambda: [itype("us-west-1")], duration=100, interval=30, report=lambda line: None,
                            clock=clock, sleep=clock.sleep)
    with pytest.raises(CapacityError, match="after waiting") as caught:
        waiter.wait("gpu_1x_a10", RegionPolicy(requested="us-east-1"))
    assert sum(clock.sleeps) == pytest.approx(100)
    assert "us-west-1" in str(caught.value)


def test_waiter_keeps_waiting_through_a_passing_api_failure():
    clock = ManualClock()
    answers = [TransientError("503"), [itype("us-east-1")]]

    def fetch():
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    lines = []
    waiter = CapacityWaiter(fetch, duration=600, interval=10, report=lines.append, clock=clock, sleep=clock.sleep)
    assert waiter.wait("gpu_1x_a10", RegionPolicy())[1].region == "us-east-1"
    assert "could not read capacity" in lines[0]
