"""@mentions and the safe rendering of comment bodies (pure: no I/O).

Syntax a member types: ``@`` followed by a member's **handle** (the local part of their e-mail,
lower-cased: ``@alice`` for alice@example.com), or, when two members share a local part, by their
full e-mail (``@alice@example.com``), which always works. A handle shared by several members
mentions nobody (the autocomplete offers the e-mail form instead). ``@`` right after a letter, digit
or dot is not a mention, so e-mail addresses written in the text are not mentions.

Rendering: the body is plain text. It is split into plain text, web links (``http``/``https`` only)
and mentions; each piece is escaped, links become ``<a rel="nofollow noopener noreferrer">`` and
mentions of known members a highlighted ``<span>``. Nothing from the body is ever emitted unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["handle_of", "Member", "Directory", "mention_tokens", "render_body"]

_HANDLE_CHARS = re.compile(r"[^a-z0-9._+-]")
# A link, or an @mention (the optional "@domain" part takes full e-mails).
_TOKEN = re.compile(
    r"(?P<url>https?://[^\s<>\"'`]+)"
    r"|(?<![\w.@+-])@(?P<mention>[A-Za-z0-9][A-Za-z0-9._+-]*(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?)"
)
_URL_TRAILING = ".,;:!?)]}'\""


def handle_of(email: str) -> str:
    """The handle of a member: their e-mail's local part, lower-cased, restricted to [a-z0-9._+-]."""
    local = email.split("@", 1)[0].lower()
    return _HANDLE_CHARS.sub("", local).strip(".") or local


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    name: str

    @property
    def handle(self) -> str:
        return handle_of(self.email)


class Directory:
    """The tenant's active members, for resolving what was typed after ``@``."""

    def __init__(self, members: Iterable[Member]) -> None:
        self.members = list(members)
        self._by_email = {m.email.lower(): m for m in self.members}
        counts: dict[str, int] = {}
        for m in self.members:
            counts[m.handle] = counts.get(m.handle, 0) + 1
        self._by_handle = {m.handle: m for m in self.members if counts[m.handle] == 1}

    def resolve(self, token: str) -> Member | None:
        token = token.lower()
        return self._by_email.get(token) if "@" in token else self._by_handle.get(token)

    def token_for(self, member: Member) -> str:
        """What to type to mention ``member``: the handle when it is unambiguous, else the e-mail."""
        return member.handle if self._by_handle.get(member.handle) is member else member.email.lower()


def _trim_mention(token: str) -> str:
    return token.rstrip("._-+")


def mention_tokens(body: str) -> list[str]:
    """What follows each ``@`` that is written as a mention, in order, lower-cased, without repeats."""
    seen: list[str] = []
    for match in _TOKEN.finditer(body or ""):
        token = match.group("mention")
        if token:
            token = _trim_mention(token).lower()
            if token and token not in seen:
                seen.append(token)
    return seen


def _trim_url(url: str) -> tuple[str, str]:
    """A link without the sentence punctuation that follows it (a ")" stays when the link opened one)."""
    tail = ""
    while url and url[-1] in _URL_TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        tail = url[-1] + tail
        url = url[:-1]
    return url, tail


def render_body(body: str, highlighted: Iterable[str] = ()) -> Markup:
    """The body as safe HTML: escaped text, ``http(s)`` links auto-linked, mentions in ``highlighted``
    (lower-cased tokens) wrapped in ``<span class="mention">``. Line breaks are kept by CSS."""
    marked = {t.lower() for t in highlighted}
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(body or ""):
        out.append(str(escape(body[pos:match.start()])))
        if match.group("url"):
            url, tail = _trim_url(match.group("url"))
            if len(url) > len("https://"):
                out.append(f'<a href="{escape(url)}" rel="nofollow noopener noreferrer" target="_blank">'
                           f"{escape(url)}</a>")
            else:
                out.append(str(escape(url)))
            out.append(str(escape(tail)))
        else:
            raw = match.group("mention")
            token = _trim_mention(raw)
            if token.lower() in marked:
                out.append(f'<span class="mention">@{escape(token)}</span>')
            else:
                out.append(str(escape("@" + token)))
            out.append(str(escape(raw[len(token):])))
        pos = match.end()
    out.append(str(escape((body or "")[pos:])))
    return Markup("".join(out))
