"""``soong available``: instance types with GPU, VRAM, price and the regions with capacity now."""

from __future__ import annotations

from soong.core.command import Lister


class ListAvailable(Lister):
    """List instance types: GPU, memory per GPU, price per hour and regions with capacity."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--all", action="store_true", help="also list types with no capacity anywhere")
        parser.add_argument("--region", metavar="NAME", help="only types with capacity in this region")
        parser.add_argument("--min-vram", type=float, metavar="GB", help="only types with at least this much GPU memory in total")
        parser.add_argument("--provider", default="lambda", help="provider to ask (default: lambda)")
        return parser

    def take_action(self, parsed_args):
        types = self.context.provider(parsed_args.provider).list_instance_types()
        columns = ("Instance type", "GPU", "GPUs", "VRAM/GPU (GB)", "VRAM total (GB)", "$/hour", "Regions with capacity")
        structured = getattr(parsed_args, "formatter", "table") in ("json", "yaml")
        rows = []
        for itype in types:
            if parsed_args.region and not itype.has_capacity(parsed_args.region):
                continue
            if not (parsed_args.all or parsed_args.region) and not itype.has_capacity():
                continue
            if parsed_args.min_vram is not None and itype.total_vram_gib < parsed_args.min_vram:
                continue
            rows.append((
                itype.name, itype.gpu_model, itype.gpu_count, _number(itype.gpu_memory_gib),
                _number(itype.total_vram_gib), round(itype.price_per_hour, 2),
                _regions(itype, structured),
            ))
        return columns, rows


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 1)


def _regions(itype, structured: bool):
    names = [r.name for r in itype.regions_with_capacity]
    if structured:
        return names
    return " ".join(names) or "-"
