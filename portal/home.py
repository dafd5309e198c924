"""The organisation home's panels: the apps built on portal add their own, so portal names none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from django.http import HttpRequest


@dataclass(frozen=True)
class HomePanel:
    """A part of the organisation home that another app contributes (registered from AppConfig.ready).

    `context(request)` returns the names its template reads (the request carries `organization`
    and `membership`); the page includes `template` in its `slot`: a notice above the summary
    cards, or a card before the members card. Lower `order` comes first.
    """

    name: str
    template: str
    context: Callable[[HttpRequest], dict[str, Any]]
    slot: Literal["notice", "card"] = "card"
    order: int = 100


_PANELS: dict[str, HomePanel] = {}


def home_panel_register(panel: HomePanel) -> None:
    """Register (or replace) a panel of the organisation home."""
    _PANELS[panel.name] = panel


def home_panels_context(request: HttpRequest) -> dict[str, Any]:
    """Return every panel's context, plus `home_notices` and `home_cards`: the templates, in order."""
    panels = sorted(_PANELS.values(), key=lambda panel: (panel.order, panel.name))
    context: dict[str, Any] = {}
    for panel in panels:
        context.update(panel.context(request))
    context["home_notices"] = [panel.template for panel in panels if panel.slot == "notice"]
    context["home_cards"] = [panel.template for panel in panels if panel.slot == "card"]
    return context
