"""Which model and which instance type a launch uses.

Precedence for each: the command-line flag, then the configuration
(``defaults.model``, ``defaults.gpu``), then for the GPU the recommendation
(:func:`soong.core.recommend.recommend`: the cheapest type that fits, one with
capacity in an allowed region first). A named type that cannot hold the model is
refused unless ``force`` is given: launching it would pay for a GPU that then
fails to load the weights.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Collection, Sequence

from soong.core.errors import NotFoundError, UsageError
from soong.core.recommend import Fit, Recommendation, assess, recommend
from soong.core.types import InstanceType, ModelSpec


@dataclasses.dataclass(frozen=True)
class TypeChoice:
    """The instance type chosen for a model, why, and how well it fits."""

    instance_type: InstanceType
    fit: Fit
    source: str  # flag | config | recommended
    forced: bool = False
    alternatives: tuple[Recommendation, ...] = ()

    @property
    def describe_source(self) -> str:
        """A few words on where the choice came from."""
        return {"flag": "from --gpu", "config": "from defaults.gpu", "recommended": "recommended"}.get(self.source, self.source)


def resolve_model(context: Any, requested: str | None) -> tuple[ModelSpec, str]:
    """The model to serve (flag > ``defaults.model``) and where the id came from."""
    from soong.core.catalog import find_model

    model_id = requested or context.config.get("defaults.model")
    source = "flag" if requested else "config"
    return find_model(context.models(), model_id), source


def _capacity_in(itype: InstanceType, regions: Collection[str] | None) -> bool:
    if regions is None:
        return itype.has_capacity()
    return any(itype.has_capacity(r) for r in regions)


def choose_instance_type(spec: ModelSpec, types: Sequence[InstanceType], *, requested: str | None, source: str,
                         context_length: int, force: bool = False,
                         allowed_regions: Collection[str] | None = None, platform: Any = None) -> TypeChoice:
    """The instance type for ``spec`` (see the module docstring).

    :param requested: a type name from the flag or the configuration (None: recommend one).
    :param source: ``flag`` or ``config`` for a requested type.
    :param allowed_regions: regions a launch may use (None: any); a recommended type
        with capacity there is preferred over a cheaper one without.
    :param platform: the image family and engines the launch would use (see ``recommend.assess``).
    """
    ranked = recommend(spec, types, context=context_length, platform=platform)
    if requested:
        by_name = {t.name: t for t in types}
        itype = by_name.get(requested)
        if itype is None:
            near = difflib.get_close_matches(requested, list(by_name), n=3)
            hint = f"did you mean {', '.join(near)}?" if near else "see 'soong available --all'"
            raise NotFoundError(f"the provider has no instance type '{requested}'", hint=hint)
        fit = assess(spec, itype, context=context_length, platform=platform)
        if not fit.fits and not force:
            better = ", ".join(r.instance_type.name for r in ranked[:3]) or "none"
            raise UsageError(f"{itype.name} cannot serve {spec.id} at {context_length} tokens: {fit.problem}",
                             hint=f"types that fit: {better}; --force launches it anyway")
        return TypeChoice(itype, fit, source, forced=not fit.fits, alternatives=tuple(ranked[:3]))
    if not ranked:
        raise UsageError(f"no instance type the provider offers can serve {spec.id} at {context_length} tokens",
                         hint="try a quantized variant or a shorter --context; see 'soong models recommend'")
    with_capacity = [r for r in ranked if _capacity_in(r.instance_type, allowed_regions)]
    best = (with_capacity or ranked)[0]
    return TypeChoice(best.instance_type, best.fit, "recommended", alternatives=tuple(ranked[:3]))
