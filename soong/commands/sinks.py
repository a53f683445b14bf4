"""``soong sinks status|retry``: the cost sinks and the events waiting for them."""

from __future__ import annotations

from soong.core.command import Command, Lister


class SinksStatus(Lister):
    """List cost sinks with their plugin and how many events wait for delivery."""

    def take_action(self, parsed_args):
        from soong.core.costs import emitter_for

        emitter = emitter_for(self.context)
        plugins = self.context.plugins
        rows = []
        for status in emitter.status():
            owner = plugins.owner("cost_sinks", status.name) if status.name in emitter.sink_classes else "(not installed)"
            rows.append((status.name, owner or "", status.queued, status.dropped, status.oldest_queued_at or "",
                         status.last_error or ""))
        return ("Sink", "Plugin", "Queued", "Dropped", "Oldest queued", "Last error"), rows


class SinksRetry(Command):
    """Deliver queued cost events now."""

    def take_action(self, parsed_args):
        from soong.core.costs import emitter_for

        outcome = emitter_for(self.context).retry_pending()
        if not outcome:
            self.app.stdout.write("no queued cost events\n")
            return 0
        failed = 0
        for name, (delivered, remaining, error) in sorted(outcome.items()):
            line = f"{name}: {delivered} delivered, {remaining} still queued"
            if error:
                line += f" ({error})"
                failed += 1
            self.app.stdout.write(line + "\n")
        return 1 if failed else 0
