from __future__ import annotations

from django import template

from integrations.llm.redact import pretty

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """Return JSON indented for reading; the template still escapes it."""
    return pretty(value)


@register.filter
def held_handle(bound_field) -> str:
    """Return a handle under which a typed secret row value is held for the next post."""
    from integrations.held import held_handle as handle

    return handle(bound_field)


@register.filter
def ago(when) -> str:
    """ "just now" for the last minute (timesince says "0 minutes"), else "3 hours ago"."""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if not when:
        return ""
    if (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when)} ago"


@register.filter
def markdown(text) -> str:
    """Model output as sanitized Markdown (nh3); the page's default view of a reply."""
    from sandbox.render import markdown_html

    return markdown_html(text or "")


@register.filter
def money(value) -> str:
    """Dollars to the cent, with the digits a smaller amount needs (six places at most):
    $12.50, $0.0012, $0.00. None: an em dash."""
    from decimal import Decimal, InvalidOperation

    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return "—"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    text = f"{amount:,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{sign}${whole}.{cents.ljust(2, '0')[:6]}"
