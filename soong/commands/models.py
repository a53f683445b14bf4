"""``soong models ...``: the model catalog."""

from __future__ import annotations

from soong.core.command import Lister


class ListModels(Lister):
    """List the models soong can serve."""

    def take_action(self, parsed_args):
        catalog = self.context.models()
        columns = ("ID", "Params (B)", "Precision", "Context", "Hugging Face path", "Source")
        rows = [
            (spec.id, spec.params_billion, spec.precision, spec.default_context, spec.hf_path,
             "built-in" if spec.builtin else "custom")
            for spec in sorted(catalog.values(), key=lambda s: (s.params_billion, s.id))
        ]
        return columns, rows
