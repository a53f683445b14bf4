"""``soong plugins``: what plugins are installed and what they provide."""

from __future__ import annotations

from soong.core.command import Lister


class ListPlugins(Lister):
    """List plugins with their version, distribution, hooks and status."""

    def take_action(self, parsed_args):
        host = self.context.plugins
        host.collect_all()
        columns = ("Name", "Version", "Distribution", "Hooks", "Status", "Detail")
        rows = [
            (info.name, info.version, info.distribution, ", ".join(info.hooks), info.status, info.detail)
            for info in host.plugin_infos()
        ]
        return columns, rows
