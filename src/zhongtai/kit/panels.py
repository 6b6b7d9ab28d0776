"""Panels: sections that one domain adds to another domain's page without either importing the other's
pages (the scan page shows the red packet a first open earned, a member sign-up box, …).

A page owns a slot name and the context type it passes; a module registers a provider for that slot at
application start (`zhongtai.domains.wire`). A provider returns HTML it rendered from its own templates,
or None to show nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from markupsafe import Markup

PanelProvider = Callable[[Any], Awaitable[str | None]]
_SLOTS: dict[str, dict[str, PanelProvider]] = {}


def register_panel(slot: str, name: str, provider: PanelProvider) -> None:
    """Show `provider`'s HTML in the page slot `slot` under `name` (registering a name again replaces it)."""
    _SLOTS.setdefault(slot, {})[name] = provider


def unregister_panel(slot: str, name: str) -> None:
    _SLOTS.get(slot, {}).pop(name, None)


def panel_names(slot: str) -> list[str]:
    return list(_SLOTS.get(slot, {}))


async def render_panels(slot: str, context: Any) -> list[Markup]:
    """The HTML of every provider of `slot` that answers, in registration order."""
    shown: list[Markup] = []
    for provider in list(_SLOTS.get(slot, {}).values()):
        html = await provider(context)
        if html:
            shown.append(Markup(html))  # noqa: S704 - providers are platform modules rendering their own templates
    return shown
