"""``soong plugins``: what plugins are installed and what they provide."""

from __future__ import annotations

from soong.core.command import Lister


def _detail(info) -> str:
    """The plugin's detail, plus the parts of it that were slow (import, registration hooks)."""
    from soong.core.plugins import SLOW_SECONDS

    slow = info.slow_parts(SLOW_SECONDS)
    note = f"slow: {', '.join(slow)}" if slow else ""
    return "; ".join(part for part in (info.detail, note) if part)


class ListPlugins(Lister):
    """List plugins with their version, distribution, hooks and status, and third-party commands."""

    def take_action(self, parsed_args):
        host = self.context.plugins
        host.collect_all()
        columns = ("Name", "Version", "Distribution", "Hooks", "Status", "Detail")
        rows = [
            (info.name, info.version, info.distribution, ", ".join(info.hooks), info.status, _detail(info))
            for info in host.plugin_infos()
        ]
        rows += self._command_rows()
        return columns, rows

    def _command_rows(self) -> list[tuple]:
        """Third-party commands (entry-point group ``soong.cli``): loaded, refused for a clash, or broken."""
        manager = getattr(self.app, "command_manager", None)
        if manager is None or not hasattr(manager, "third_party"):
            return []
        allowed = set(manager.allowed_overrides())
        rows = []
        for name, dist, version, entry_point, status in manager.third_party():
            detail = f"command 'soong {name}' ({entry_point.value})"
            if status == "refused":
                clash = next(c for c in manager.clashes[name] if c.entry_point is entry_point)
                if clash.allow_entry in allowed:
                    status, detail = "overriding", f"{detail} replaces the built-in one (allowed in the config)"
                else:
                    detail = (f"{detail} clashes with the built-in one, which runs; allow it with "
                              f"plugins.allowed_command_overrides: {clash.allow_entry}")
            try:
                entry_point.load()
            except Exception as exc:  # a broken third-party command is listed, never fatal
                status, detail = "failed", f"{detail}: import failed: {type(exc).__name__}: {exc}"
            rows.append((f"command:{name.replace(' ', '_')}", version, dist, "soong.cli", status, detail))
        return rows
