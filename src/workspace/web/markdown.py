"""Markdown for user-written text (project instructions), rendered safely.

markdown-it-py in CommonMark mode with raw HTML disabled: any HTML in the source is shown as text,
and link/image URLs go through its validator, which refuses javascript:, vbscript:, file: and data:
(except images).
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["render_markdown"]

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str | None) -> Markup:
    return Markup(_md.render(text or ""))  # noqa: S704 - raw HTML is disabled, so the output is safe
