"""``soong models ...``: the model catalog, memory estimates and GPU recommendations.

``list`` works offline (its "smallest GPU setup" column uses the static table in
:mod:`soong.core.recommend`); ``info`` and ``recommend`` use the provider's live
instance types and prices. All three offer only instance types whose host
architecture the configured image family and the serving engine support
(:mod:`soong.core.images`), and say which types were left out for it. ``add``
and ``remove`` edit ``custom_models`` in the config file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from soong.core.command import Lister, ShowOne
from soong.core.errors import NotFoundError, UsageError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", type=_positive_int, metavar="TOKENS",
                        help="context length to plan for (default: the model's default context)")
    parser.add_argument("--concurrency", type=_positive_int, default=1, metavar="N",
                        help="requests served at full context at once (default: 1)")


def _provider(command: Any, provider_name: str) -> Any:
    """The provider object, or one clear error saying why live prices are unavailable."""
    try:
        return command.context.provider(provider_name)
    except NotFoundError as exc:
        raise NotFoundError(f"live prices need a provider: {exc}", hint="'soong models list' and '--offline' work without one") from None


def _platform(command: Any, provider: Any = None, provider_name: str = "lambda") -> Any:
    """The image family and serving requirements types are judged by (no network; family unknown without a provider)."""
    from soong.core.images import platform_for

    if provider is None:
        try:
            provider = command.context.provider(provider_name)
        except NotFoundError:
            provider = None
    return platform_for(command.context, provider)


def _excluded(platform: Any, spec: Any, types: Any) -> list[str]:
    """``<type>: <why>`` for each GPU type left out because of its host architecture."""
    out = []
    for itype in types:
        problem = platform.type_problem(spec, itype) if itype.gpu_count > 0 else None
        if problem:
            out.append(problem)
    return out


def _fmt_gib(value: float) -> str:
    return f"{value:.1f}"


class ListModels(Lister):
    """List the models soong can serve, with estimated memory and the smallest GPU setup that fits (offline)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--context", type=_positive_int, metavar="TOKENS",
                            help="plan for this context (capped at each model's maximum; default: each model's default)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.recommend import smallest_setup
        from soong.core.vram import estimate

        catalog = self.context.models()
        platform = _platform(self)
        columns = ("ID", "Params (B)", "Precision", "Quantization", "Context", "Est. VRAM (GiB)",
                   "Smallest GPU setup", "Hugging Face path", "Source")
        rows = []
        for spec in sorted(catalog.values(), key=lambda s: (s.params_billion, s.id)):
            context = min(parsed_args.context, spec.max_context) if parsed_args.context else spec.default_context
            need = estimate(spec, context)
            best = (smallest_setup(spec, context=context, platform=platform)
                    if not platform.family_problem(spec.engine) else None)
            setup = f"{best.instance_type.gpu_count}x {best.instance_type.gpu_description} ({best.instance_type.name})" if best else "none"
            rows.append((spec.id, spec.params_billion, spec.precision, spec.quantization or "", context,
                         round(need.total_gib, 1), setup, spec.hf_path, "built-in" if spec.builtin else "custom"))
        return columns, rows


class ShowModel(ShowOne):
    """Show one model: its facts, the memory breakdown and the cheapest fitting instance type available now (live prices)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("model", metavar="ID", help="model id (see 'soong models list')")
        _add_fit_options(parser)
        parser.add_argument("--offline", action="store_true",
                            help="do not ask the provider; recommend from the static GPU table, without prices")
        parser.add_argument("--provider", default="lambda", help="provider to ask for live prices (default: lambda)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.catalog import find_model
        from soong.core.recommend import STATIC_SETUPS, check_context, recommend, smallest_setup
        from soong.core.vram import estimate

        spec = find_model(self.context.models(), parsed_args.model)
        context = check_context(spec, parsed_args.context)
        info: dict[str, Any] = {
            "id": spec.id, "hf_path": spec.hf_path, "params_billion": spec.params_billion,
            "precision": spec.precision, "quantization": spec.quantization or "", "layers": spec.layers,
            "attention_heads": spec.attention_heads, "kv_heads": spec.kv_heads, "head_dim": spec.head_dim,
            "max_context": spec.max_context, "default_context": spec.default_context, "engine": spec.engine,
            "good_for": spec.good_for, "not_good_for": spec.not_good_for, "source": spec.source,
            "origin": "built-in" if spec.builtin else "custom",
        }
        provider = None if parsed_args.offline else _provider(self, parsed_args.provider)
        platform = _platform(self, provider, parsed_args.provider)
        family_problem = platform.family_problem(spec.engine)
        types = list(STATIC_SETUPS) if parsed_args.offline else provider.list_instance_types()
        if family_problem:
            fit, price, regions = None, None, None
        elif parsed_args.offline:
            fit = smallest_setup(spec, context=context, concurrency=parsed_args.concurrency, platform=platform)
            price, regions = None, None
        else:
            ranked = recommend(spec, types, context=context, concurrency=parsed_args.concurrency, platform=platform)
            # the cheapest type with capacity now; the cheapest overall when none has capacity
            chosen = next((r for r in ranked if r.available), ranked[0] if ranked else None)
            fit = chosen.fit if chosen else None
            price = fit.instance_type.price_per_hour if fit else None
            regions = ", ".join(r.name for r in fit.instance_type.regions_with_capacity) if fit else None
        need = fit.estimate if fit and fit.estimate else estimate(spec, context, concurrency=parsed_args.concurrency)
        info.update({
            "context": context, "concurrency": parsed_args.concurrency, "tp_size": need.tp_size,
            "weights_gib": round(need.weights_gib, 1), "kv_cache_gib": round(need.kv_cache_gib, 1),
            "runtime_gib": round(need.runtime_gib, 1), "total_gib": round(need.total_gib, 1),
            "recommended": fit.instance_type.name if fit else (f"none: {family_problem}" if family_problem else "none fits"),
            "recommended_gpus": f"{fit.instance_type.gpu_count}x {fit.instance_type.gpu_description}" if fit else "",
            "architecture": fit.instance_type.architecture if fit else "",
            "image_family": platform.family.describe() if platform.family else "",
            "excluded_by_architecture": "; ".join(_excluded(platform, spec, types)),
        })
        if not parsed_args.offline:
            info["price_per_hour"] = price if price is not None else ""
            info["regions_with_capacity"] = regions or ""
        return tuple(info), tuple(info.values())


class RecommendModel(Lister):
    """Rank the provider's instance types that fit a model: cheapest first, then capacity available now."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("model", metavar="ID", help="model id (see 'soong models list')")
        _add_fit_options(parser)
        parser.add_argument("--max-price", type=_positive_float, metavar="USD",
                            help="leave out types costing more than USD per hour")
        parser.add_argument("--region", help="count (and with --available, require) capacity in this region")
        parser.add_argument("--available", action="store_true", help="only types with capacity now")
        parser.add_argument("--provider", default="lambda", help="provider to ask (default: lambda)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.catalog import find_model
        from soong.core.images import check_family
        from soong.core.recommend import check_context, recommend

        spec = find_model(self.context.models(), parsed_args.model)
        context = check_context(spec, parsed_args.context)
        max_cents = round(parsed_args.max_price * 100) if parsed_args.max_price is not None else None
        provider = _provider(self, parsed_args.provider)
        platform = _platform(self, provider)
        check_family(platform, spec.engine)
        types = provider.list_instance_types()
        ranked = recommend(spec, types, context=context, concurrency=parsed_args.concurrency,
                           max_price_cents=max_cents, region=parsed_args.region,
                           available_only=parsed_args.available, platform=platform)
        for line in _excluded(platform, spec, types):
            self.app.stderr.write(f"soong: left out {line}\n")
        if not ranked:
            limit = f" at or under ${parsed_args.max_price:g}/h" if max_cents is not None else ""
            raise NotFoundError(f"no instance type fits {spec.id} at {context} tokens x {parsed_args.concurrency}{limit}",
                                hint="try a shorter --context, a quantized variant or a higher --max-price")
        columns = ("Rank", "Instance type", "GPUs", "TP", "$/h", "VRAM (GiB)", "Needed (GiB)", "Headroom (GiB)",
                   "Available", "Regions", "Arch")
        rows = []
        for rec in ranked:
            row = rec.to_dict()
            rows.append((row["rank"], row["instance_type"], row["gpus"], row["tp_size"], row["price_per_hour"],
                         row["total_vram_gib"], row["needed_gib"], row["headroom_gib"], row["available"],
                         ", ".join(row["regions"]), rec.instance_type.architecture))
        return columns, rows


# -- add / remove ------------------------------------------------------------------------------------

#: ``models add`` flags and the ModelSpec field each fills, with its type and prompt.
ADD_FIELDS = (
    ("id", "id", str, "model id (lower-case, e.g. my-model-7b)"),
    ("hf_path", "hf-path", str, "Hugging Face path (org/name)"),
    ("params_billion", "params", float, "parameters, in billions"),
    ("precision", "precision", str, "stored weight precision (bf16, fp16, fp8, int8, int4, ...)"),
    ("quantization", "quantization", str, "the checkpoint's quantization method (awq, gptq, fp8; empty for none); SGLang detects it itself"),
    ("layers", "layers", int, "num_hidden_layers"),
    ("attention_heads", "heads", int, "num_attention_heads"),
    ("kv_heads", "kv-heads", int, "num_key_value_heads"),
    ("head_dim", "head-dim", int, "head_dim (hidden_size / num_attention_heads)"),
    ("max_context", "max-context", int, "max_position_embeddings"),
    ("default_context", "default-context", int, "context to launch with"),
    ("good_for", "good-for", str, "good for (optional)"),
    ("not_good_for", "not-good-for", str, "not good for (optional)"),
    ("source", "source", str, "where the facts come from (optional)"),
)
_OPTIONAL = {"quantization", "good_for", "not_good_for", "source", "default_context"}


def facts_from_hf_config(path: str) -> dict[str, Any]:
    """Architecture facts from a Hugging Face ``config.json`` (UsageError when unreadable)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path} is not a config.json mapping")
    raw = raw.get("text_config", raw) if "num_hidden_layers" not in raw else raw
    facts: dict[str, Any] = {}
    for field, key in (("layers", "num_hidden_layers"), ("attention_heads", "num_attention_heads"),
                       ("max_context", "max_position_embeddings")):
        if isinstance(raw.get(key), int):
            facts[field] = raw[key]
    heads = facts.get("attention_heads")
    kv = raw.get("num_key_value_heads", heads)
    if isinstance(kv, int):
        facts["kv_heads"] = kv
    if isinstance(raw.get("head_dim"), int):
        facts["head_dim"] = raw["head_dim"]
    elif isinstance(raw.get("hidden_size"), int) and heads:
        facts["head_dim"] = raw["hidden_size"] // heads
    quant = raw.get("quantization_config") or {}
    if isinstance(quant, dict) and quant.get("quant_method") in ("awq", "gptq", "fp8"):
        facts["quantization"] = quant["quant_method"]
        facts["precision"] = "fp8" if quant["quant_method"] == "fp8" else ("int4" if quant.get("bits", 4) == 4 else "int8")
    elif raw.get("torch_dtype") in ("bfloat16", "float16", "float32"):
        facts["precision"] = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[raw["torch_dtype"]]
    return facts


class AddModel(ShowOne):
    """Add a custom model to the catalog (flags, a config.json, or questions on a terminal)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        for field, flag, kind, help_text in ADD_FIELDS:
            parser.add_argument(f"--{flag}", dest=field, type=kind if kind is not str else None, help=help_text)
        parser.add_argument("--extra-arg", dest="extra_args", action="append", default=[], metavar="ARG",
                            help="extra SGLang argument (repeatable)")
        parser.add_argument("--hf-config", metavar="FILE", help="read layers, heads, head_dim, context and precision "
                                                                 "from a Hugging Face config.json")
        parser.add_argument("--replace", action="store_true", help="replace a custom model with the same id")
        return parser

    def _ask(self, values: dict[str, Any]) -> None:
        stdin = self.app.stdin
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            missing = [f"--{flag}" for field, flag, _k, _h in ADD_FIELDS if field not in values and field not in _OPTIONAL]
            if missing:
                raise UsageError(f"missing {', '.join(missing)} (no terminal to ask)")
            return
        for field, _flag, kind, help_text in ADD_FIELDS:
            if field in values:
                continue
            self.app.stderr.write(f"{help_text}: ")
            self.app.stderr.flush()
            answer = stdin.readline().strip()
            if not answer:
                continue
            try:
                values[field] = kind(answer)
            except ValueError:
                raise UsageError(f"{help_text}: {answer!r} is not a valid {kind.__name__}") from None

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.catalog import merged_catalog, spec_from_mapping, spec_to_mapping
        from soong.core.config import save_config

        values: dict[str, Any] = facts_from_hf_config(parsed_args.hf_config) if parsed_args.hf_config else {}
        for field, _flag, _kind, _help in ADD_FIELDS:
            value = getattr(parsed_args, field)
            if value is not None and value != "":
                values[field] = value
        if parsed_args.extra_args:
            values["extra_args"] = list(parsed_args.extra_args)
        self._ask(values)
        if "max_context" in values and "default_context" not in values:
            values["default_context"] = min(values["max_context"], 32768)
        config = self.context.config
        current = list(config.file_values.get("custom_models") or [])
        spec = spec_from_mapping(values, f"model '{values.get('id', '?')}'")
        registered = self.context.plugins.models()
        if spec.id in registered:
            raise UsageError(f"'{spec.id}' is a built-in model id; pick another id")
        kept = [entry for entry in current if entry.get("id") != spec.id]
        if len(kept) != len(current) and not parsed_args.replace:
            raise UsageError(f"a custom model '{spec.id}' already exists; add --replace to overwrite it")
        updated = kept + [spec_to_mapping(spec)]
        merged_catalog(registered, updated)  # validates the whole list before anything is written
        save_config(config.updated_file_values({"custom_models": updated}), config.path, schema=config.schema)
        shown = spec_to_mapping(spec)
        return tuple(shown), tuple(str(v) if isinstance(v, list) else v for v in shown.values())


class RemoveModel(ShowOne):
    """Remove a custom model from the catalog (built-in models cannot be removed)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("model", metavar="ID", help="id of a custom model")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        from soong.core.config import save_config

        model_id = parsed_args.model
        if model_id in self.context.plugins.models():
            raise UsageError(f"'{model_id}' is a built-in model and cannot be removed")
        config = self.context.config
        current = list(config.file_values.get("custom_models") or [])
        kept = [entry for entry in current if entry.get("id") != model_id]
        if len(kept) == len(current):
            raise NotFoundError(f"no custom model '{model_id}' in {config.path}")
        save_config(config.updated_file_values({"custom_models": kept or None}), config.path, schema=config.schema)
        print(f"removed custom model '{model_id}'", file=self.app.stderr or sys.stderr)
        return ("removed", "remaining_custom_models"), (model_id, len(kept))
