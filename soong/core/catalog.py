"""The model catalog: models registered by plugins plus the config's ``custom_models``."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from soong.core.errors import ConfigError, NotFoundError
from soong.core.model_checks import problems
from soong.core.types import ModelSpec

_FIELDS = {f.name: f for f in dataclasses.fields(ModelSpec)}
_REQUIRED = [f.name for f in dataclasses.fields(ModelSpec) if f.default is dataclasses.MISSING]


def spec_from_mapping(raw: Mapping[str, Any], where: str) -> ModelSpec:
    """Build a ModelSpec from a config mapping; raise ConfigError naming the field."""
    unknown = sorted(set(raw) - set(_FIELDS) - {"builtin"})
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [name for name in _REQUIRED if name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {k: v for k, v in raw.items() if k != "builtin"}
    if "extra_args" in values:
        values["extra_args"] = tuple(values["extra_args"] or ())
    spec = ModelSpec(**values, builtin=False)
    found = problems(spec)
    if found:
        raise ConfigError(f"{where}: {'; '.join(found)}")
    return spec


def spec_to_mapping(spec: ModelSpec) -> dict[str, Any]:
    """The config mapping of a custom model (inverse of :func:`spec_from_mapping`)."""
    out = {k: v for k, v in dataclasses.asdict(spec).items() if k != "builtin"}
    out["extra_args"] = list(spec.extra_args)
    return {k: v for k, v in out.items() if v not in (None, "", []) or k in _REQUIRED}


def merged_catalog(registered: Mapping[str, ModelSpec], custom: Sequence[Mapping[str, Any]]) -> dict[str, ModelSpec]:
    """Registered models plus custom ones; a custom id may not shadow a registered one."""
    catalog = dict(registered)
    for index, raw in enumerate(custom or []):
        spec = spec_from_mapping(raw, f"custom_models[{index}] ({raw.get('id', '?')})")
        if spec.id in catalog:
            raise ConfigError(f"custom_models[{index}]: id '{spec.id}' is already a catalog model; pick another id")
        catalog[spec.id] = spec
    return catalog


def find_model(catalog: Mapping[str, ModelSpec], model_id: str) -> ModelSpec:
    """The catalog entry ``model_id`` or a NotFoundError with a did-you-mean."""
    if model_id in catalog:
        return catalog[model_id]
    import difflib

    near = difflib.get_close_matches(model_id, list(catalog), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see 'soong models list'"
    raise NotFoundError(f"unknown model '{model_id}'{hint}")
