"""Template helpers for the webhook pages: is anything sending the outbox?"""

from __future__ import annotations

from django import template

from credentials.webhooks.selectors import DELIVERY_WORKER_SILENCE, delivery_worker_seen_recently

register = template.Library()


@register.inclusion_tag("credentials/webhooks/_worker_warning.html")
def webhook_worker_warning():
    """Render a warning when no `deliver_webhooks` runner has made a pass in the last five minutes."""
    return {
        "silent": not delivery_worker_seen_recently(),
        "minutes": int(DELIVERY_WORKER_SILENCE.total_seconds() // 60),
    }
