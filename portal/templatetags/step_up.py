"""Template tag that hands a form's entries kept across step-up to portal.js, which fills them in."""

from __future__ import annotations

from django import template
from django.utils.html import json_script

from portal.drafts import draft_take

register = template.Library()


@register.simple_tag(takes_context=True)
def step_up_draft(context) -> str:
    """Render the kept entries as a JSON script element (`#step-up-draft`), once; nothing otherwise."""
    request = context.get("request")
    draft = draft_take(request) if request is not None else None
    return json_script(draft, "step-up-draft") if draft else ""
