"""``{% term "HW" %}``: a Kafka term with its meaning on hover and on keyboard focus."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard.panels.glossary import GLOSSARY, definition

register = template.Library()


@register.simple_tag
def term(name: str, text: str = "") -> SafeString:
    """The term (or ``text`` in its place, e.g. "leader epoch") as a focusable ``<abbr>``."""
    return format_html(
        '<abbr class="term" title="{}" tabindex="0">{}</abbr>', definition(name), text or name
    )


@register.inclusion_tag("dashboard/glossary.html")
def glossary() -> dict[str, object]:
    """Every term, for the room's glossary panel (phones have no hover)."""
    return {"terms": [(t, name, meaning) for t, (name, meaning) in GLOSSARY.items()]}
