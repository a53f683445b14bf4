"""Model and GPU choice: flag > config > recommendation; a GPU that cannot hold the model is refused unless forced."""

from __future__ import annotations

import pytest

from soong.core.cost_preview import CostPreview
from soong.core.errors import NotFoundError, UsageError
from soong.core.launch_choice import choose_instance_type
from soong.core.types import InstanceType, Region
from soong.plugins.lambda_cloud.parsing import compute_capability
from soong.plugins.sglang.catalog import BUILTIN_MODELS


def spec(model_id):
    return next(m for m in BUILTIN_MODELS if m.id == model_id)


def t(name, count, gib, gpu, cents, *regions):
    return InstanceType(name=name, description="", gpu_description=f"{gpu} ({gib} GB)", gpu_count=count,
                        gpu_memory_gib=gib, price_cents_per_hour=cents, regions_with_capacity=tuple(Region(r) for r in regions),
                        compute_capability=compute_capability(gpu))


TYPES = [
    t("gpu_1x_a10", 1, 24, "A10", 75, "us-east-1"),
    t("gpu_1x_a100_sxm4", 1, 40, "A100", 129, "us-west-2"),
    t("gpu_1x_a6000", 1, 48, "A6000", 80),
    t("gpu_1x_h100_pcie", 1, 80, "H100", 249, "us-west-3"),
    t("gpu_8x_h100_sxm5", 8, 80, "H100", 2392, "us-south-2"),
]


def test_recommendation_is_the_cheapest_fitting_type_with_capacity():
    choice = choose_instance_type(spec("llama-3.1-8b"), TYPES, requested=None, source="config",
                                  context_length=spec("llama-3.1-8b").default_context)
    assert choice.source == "recommended"
    assert choice.fit.fits
    fitting_with_capacity = [r.instance_type for r in choice.alternatives if r.instance_type.has_capacity()]
    assert choice.instance_type.price_cents_per_hour <= min(x.price_cents_per_hour for x in fitting_with_capacity)


def test_recommendation_prefers_capacity_in_the_allowed_region_over_a_lower_price():
    model = spec("llama-3.1-8b")
    cheap = choose_instance_type(model, TYPES, requested=None, source="config", context_length=model.default_context)
    pinned = choose_instance_type(model, TYPES, requested=None, source="config", context_length=model.default_context,
                                  allowed_regions=("us-west-3",))
    assert pinned.instance_type.has_capacity("us-west-3")
    assert pinned.instance_type.price_cents_per_hour >= cheap.instance_type.price_cents_per_hour


def test_a_named_type_that_cannot_hold_the_model_is_refused_with_types_that_fit():
    model = spec("llama-3.1-70b")
    with pytest.raises(UsageError) as caught:
        choose_instance_type(model, TYPES, requested="gpu_1x_a10", source="flag", context_length=model.default_context)
    assert "gpu_1x_a10" in str(caught.value) and "--force" in str(caught.value)
    assert "gpu_8x_h100_sxm5" in str(caught.value)


def test_force_launches_the_named_type_anyway_and_says_so():
    model = spec("llama-3.1-70b")
    choice = choose_instance_type(model, TYPES, requested="gpu_1x_a10", source="flag", force=True,
                                  context_length=model.default_context)
    assert choice.forced and choice.instance_type.name == "gpu_1x_a10" and not choice.fit.fits


def test_an_unknown_type_is_not_found_with_a_suggestion():
    model = spec("llama-3.1-8b")
    with pytest.raises(NotFoundError, match="gpu_1x_a100_sxm4"):
        choose_instance_type(model, TYPES, requested="gpu_1x_a100_sxm", source="flag", context_length=8192)


@pytest.mark.parametrize("cents,lease,hard", [(75, 4, 8), (2392, 2, 8), (129, 8, 6)])
def test_cost_preview_numbers(cents, lease, hard):
    preview = CostPreview("x", "us-east-1", cents, lease, hard)
    assert preview.lease_usd == pytest.approx(cents / 100 * min(lease, hard))
    assert preview.worst_case_usd == pytest.approx(cents / 100 * hard)
    text = "\n".join(preview.lines())
    assert f"${cents / 100:.2f}/h" in text and f"${preview.worst_case_usd:.2f}" in text
