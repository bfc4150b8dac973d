"""Model output as sanitized Markdown, for the optional "render Markdown" view.

The text view is the default and is plain escaped text. Here Markdown becomes HTML
and nh3 keeps only formatting tags: no scripts, no event handlers, no styles, and
links only to http(s) and mailto with rel="noopener noreferrer nofollow".
"""

from __future__ import annotations

import threading

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
    "del", "sup", "sub",
}  # fmt: skip


_local = threading.local()


def _converter() -> markdown.Markdown:
    """One converter per thread: building one costs more than converting a reply."""
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = markdown.Markdown(
            extensions=["fenced_code", "tables"], output_format="html"
        )
    return md


def markdown_html(text: str) -> SafeString:
    """Return sanitized HTML; the one place model output is trusted as markup, after nh3."""
    html = _converter().reset().convert(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}, "code": {"class"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitized by nh3 just above
