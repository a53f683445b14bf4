"""A soong plugin that registers the ``webhook`` cost sink.

soong loads this module through the ``soong`` entry point in ``setup.py`` and
calls every ``@hookimpl`` function it defines. Registration hooks get a
``register`` callable; this one registers the sink class (soong builds it with
its context when the first cost event is emitted).
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_cost_sinks(register):
    """Register :class:`~soong_webhook_sink.sink.WebhookSink` (imported only when needed)."""
    from soong_webhook_sink.sink import WebhookSink

    register(WebhookSink)
