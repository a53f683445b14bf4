"""The ``webhook`` cost sink: one HTTP POST per cost event.

Settings:

* the URL is a secret (a Slack webhook URL is a credential): ``soong secrets set
  webhook_url``, or ``$SOONG_SECRET_WEBHOOK_URL``;
* ``$SOONG_WEBHOOK_FORMAT``: ``json`` (the event as JSON, the default) or
  ``slack`` (``{"text": "..."}`` for an incoming webhook);
* ``$SOONG_WEBHOOK_KINDS``: comma-separated kinds to post (default: all);
* ``$SOONG_WEBHOOK_TIMEOUT``: seconds per request (default 5).

A failure raises, and soong queues the event and retries it with the next
command; the ``Idempotency-Key`` header (the event id) lets a receiver drop a
repeated delivery.
"""

from __future__ import annotations

from soong.core.errors import SoongError
from soong.core.interfaces import CostSink
from soong.core.types import COST_EVENT_KINDS

FORMATS = ("json", "slack")


class WebhookError(SoongError):
    """The webhook is not configured or did not accept an event."""


class WebhookSink(CostSink):
    """Posts each cost event to the configured webhook URL, as JSON or as a Slack message."""

    name = "webhook"

    def __init__(self, context):
        super().__init__(context)
        env = context.env
        self.format = (env.get("SOONG_WEBHOOK_FORMAT") or "json").strip().lower()
        if self.format not in FORMATS:
            raise WebhookError(f"SOONG_WEBHOOK_FORMAT must be one of {', '.join(FORMATS)}, not {self.format!r}")
        kinds = env.get("SOONG_WEBHOOK_KINDS")
        self.kinds = {k.strip() for k in kinds.split(",") if k.strip()} if kinds else set(COST_EVENT_KINDS)
        self.timeout = float(env.get("SOONG_WEBHOOK_TIMEOUT") or 5)
        self._session = None

    def _url(self):
        url = self.context.secrets.get("webhook_url")  # registered for redaction when read
        if not url:
            raise WebhookError("the webhook URL is not set; run 'soong secrets set webhook_url' or set $SOONG_SECRET_WEBHOOK_URL")
        return url

    def payload(self, event):
        """The JSON body posted for ``event``."""
        if self.format == "slack":
            return {"text": describe(event)}
        return event.to_dict()

    def emit(self, event):
        """POST the event; raise :class:`WebhookError` unless the receiver answers 2xx."""
        if event.kind not in self.kinds:
            return
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # no proxy or .netrc surprises for a credential URL
        headers = {"User-Agent": "soong-webhook-sink/0.1", "Idempotency-Key": str(event.data.get("event_id", ""))}
        try:
            response = self._session.post(self._url(), json=self.payload(event), headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            # requests' messages include the URL's path (the secret part of a Slack URL): never pass them on
            raise WebhookError(f"could not reach the webhook ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"the webhook answered HTTP {response.status_code}")

    def close(self):
        """Close the HTTP session."""
        if self._session is not None:
            self._session.close()
            self._session = None


def describe(event):
    """One line for humans (the Slack message)."""
    where = ", ".join(x for x in (event.instance_type, event.region) if x)
    text = f"soong: instance {event.instance_id}" + (f" ({where})" if where else "")
    if event.kind == "launched":
        rate = f" at ${event.price_cents_per_hour / 100:.2f}/h" if event.price_cents_per_hour is not None else ""
        text += f" launched{rate}"
    elif event.kind == "terminated":
        by = event.data.get("by")
        text += f" terminated ({event.reason or 'unknown reason'}{', by ' + by if by else ''})"
    elif event.kind == "extended":
        text += f" lease extended to {event.data.get('lease_ends_at', '?')}"
    else:
        text += f" {event.kind}"
    if event.cost_usd is not None:
        text += f"; cost so far ${event.cost_usd:.2f}"
    return text
