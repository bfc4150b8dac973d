from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """Return JSON indented for reading; the template still escapes it."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


@register.filter
def error_hint(kind: str) -> str:
    from integrations.llm.errors import HINTS

    return HINTS.get(kind, "")


@register.filter
def error_title(kind: str) -> str:
    from integrations.llm.errors import TITLES

    return TITLES.get(kind, "Error")
