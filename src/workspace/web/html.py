"""HTML from task data (the ``HyperText`` object), sanitized to a small set of formatting tags.

nh3 (the Python binding of the Rust sanitizer Ammonia) parses the fragment like a browser does and
keeps only the allow-list below: text formatting, lists, headings, quotes, code, tables and links.
Everything else is dropped: ``<script>``/``<style>`` with their content, event handlers, ``style``
attributes (the CSP would refuse them anyway), images, iframes, forms, comments. A link keeps its
``href`` only for http, https and mailto URLs (relative URLs are dropped too: task data must not
point into the app), and gets ``rel="noopener noreferrer nofollow"`` and ``target="_blank"``, so it
opens outside the labeling page.
"""

from __future__ import annotations

import nh3
from markupsafe import Markup

__all__ = ["sanitize_html"]

_TAGS = {"p", "br", "b", "i", "em", "strong", "u", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
         "blockquote", "code", "pre", "span", "div", "table", "thead", "tbody", "tr", "th", "td", "a"}

_cleaner = nh3.Cleaner(
    tags=_TAGS,
    # Dropped with their content; other tags are unwrapped and keep their text.
    clean_content_tags={"script", "style", "template", "noscript", "iframe", "object", "embed", "textarea",
                        "title", "select"},
    attributes={"a": {"href", "title"}, "th": {"colspan", "rowspan"}, "td": {"colspan", "rowspan"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def sanitize_html(markup: str | None) -> Markup:
    """``markup`` reduced to the allow-list, safe to put into a page as HTML."""
    return Markup(_cleaner.clean(markup or ""))  # noqa: S704 - nh3 output holds only allow-listed markup
