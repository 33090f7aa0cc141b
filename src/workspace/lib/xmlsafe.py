"""The project's one hardened XML parser (ARCHITECTURE.md rule 5: XML has one door).

Every piece of XML that reaches the application (label configs today, SAML and imports tomorrow)
goes through :func:`parse_xml`, so the defences live in one place:

* no DTDs at all: a ``<!DOCTYPE ...>`` is refused before anything in it is read, which rules out
  entity declarations, external entities (XXE), parameter entities and "billion laughs";
* entity declarations and external references are refused a second time by defusedxml's handlers,
  in case a future expat lets one slip past the DTD check;
* references to undeclared entities (``&xxe;``) are refused; the five predefined entities and
  character references (``&#233;``) still work because they cannot expand or fetch anything;
* caps on input size, nesting depth and element count bound the memory and time one document costs.

It is built on ``defusedxml.expatreader`` (a SAX reader) rather than ``xml.etree`` so that each
element keeps the line and column where it starts; error messages for users point there.
Positions are 1-based (line 1, column 1 is the first character), as editors show them.

This module imports nothing from ``workspace``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element as XmlElement  # generating XML only
from xml.etree.ElementTree import SubElement, indent, tostring
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler

from defusedxml.common import (
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.expatreader import DefusedExpatParser, create_parser

__all__ = [
    "XmlElement",
    "xml_element",
    "xml_child",
    "xml_document",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "Element",
    "XMLError",
    "parse_xml",
]

DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ELEMENTS = 10_000

_PREDEFINED_HINT = (
    "only the predefined entities &amp; &lt; &gt; &quot; &apos; and character references "
    "such as &#233; may be used"
)


class XMLError(ValueError):
    """A document was refused; ``line``/``column`` (1-based) say where, when that is known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} (line {self.line}, column {self.column})"


@dataclass(frozen=True)
class Element:
    """One parsed element: immutable, with the 1-based position of its ``<``.

    ``text`` is the character data directly inside the element (not inside its children),
    concatenated; comments and processing instructions are dropped.
    """

    tag: str
    attrs: dict[str, str] = field(default_factory=dict, hash=False)
    children: tuple[Element, ...] = ()
    text: str = ""
    line: int = 1
    column: int = 1

    def iter(self) -> Iterator[Element]:
        """Yield this element and all its descendants in document order."""
        yield self
        for child in self.children:
            yield from child.iter()


class _LimitError(Exception):
    """Raised from inside a SAX callback; carries the finished user-facing message."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class _Open:
    """An element whose end tag has not been seen yet."""

    tag: str
    attrs: dict[str, str]
    line: int
    column: int
    children: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def freeze(self) -> Element:
        return Element(self.tag, self.attrs, tuple(self.children), "".join(self.text), self.line, self.column)


class _TreeBuilder(ContentHandler):
    """Builds :class:`Element` trees and enforces the depth and element-count caps as it goes."""

    def __init__(self, reader: DefusedExpatParser, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self._reader = reader
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._stack: list[_Open] = []
        self._count = 0
        self.root: Element | None = None

    def startElement(self, name: str, attrs: Any) -> None:
        # Read the position now: once the exception unwinds, expat has moved past the start tag.
        line = self._reader.getLineNumber()
        column = self._reader.getColumnNumber() + 1
        self._count += 1
        if self._count > self._max_elements:
            raise _LimitError(f"the document has more than {self._max_elements} elements", line, column)
        if len(self._stack) >= self._max_depth:
            raise _LimitError(f"the document is nested deeper than {self._max_depth} levels", line, column)
        self._stack.append(_Open(name, dict(attrs.items()), line, column))

    def endElement(self, name: str) -> None:
        element = self._stack.pop().freeze()
        if self._stack:
            self._stack[-1].children.append(element)
        else:
            self.root = element

    @property
    def open_element(self) -> _Open | None:
        """The innermost element still waiting for its end tag."""
        return self._stack[-1] if self._stack else None

    def characters(self, content: str) -> None:
        if self._stack:
            self._stack[-1].text.append(content)


def _size_label(max_bytes: int) -> str:
    if max_bytes >= 1024 and max_bytes % 1024 == 0:
        return f"{max_bytes // 1024} KiB"
    return f"{max_bytes} bytes"


def _position_of(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting CRLF, CR and LF as one line break."""
    before = text[:index]
    breaks = list(re.finditer(r"\r\n|\r|\n", before))
    if not breaks:
        return 1, index + 1
    return len(breaks) + 1, index - breaks[-1].end() + 1


def _doctype_error(text: str, reader: DefusedExpatParser) -> XMLError:
    """Point at the ``<!DOCTYPE`` itself: expat reports a position somewhere inside it."""
    index = text.find("<!DOCTYPE")
    line, column = _position_of(text, index) if index >= 0 else _reader_position(reader)
    return XMLError(
        "DTDs (<!DOCTYPE ...>) are not allowed, and neither are the XML entities they declare; "
        "remove the DOCTYPE",
        line,
        column,
    )


def _reader_position(reader: DefusedExpatParser) -> tuple[int, int]:
    return reader.getLineNumber(), reader.getColumnNumber() + 1


def _index_of(text: str, line: int, column: int) -> int:
    """Inverse of :func:`_position_of`: the index of the 1-based ``line``/``column`` in ``text``."""
    index = 0
    for _ in range(line - 1):
        found = re.compile(r"\r\n|\r|\n").search(text, index)
        if found is None:
            break
        index = found.end()
    return index + column - 1


def _mismatched_tag_error(text: str, builder: _TreeBuilder, line: int, column: int) -> XMLError:
    """Say which end tag was found and which one was expected, pointing at the ``</``."""
    index = _index_of(text, line, column)
    if text[index - 2 : index] == "</":
        column -= 2
    found = re.match(r"[^\s>]*", text[index:])
    closing = found.group(0) if found else ""
    open_element = builder.open_element
    if open_element is None:
        return XMLError(f"not well-formed: mismatched tag </{closing}>", line, column)
    return XMLError(
        f"not well-formed: mismatched tag </{closing}>; expected </{open_element.tag}> to close "
        f"<{open_element.tag}> from line {open_element.line}, column {open_element.column}",
        line,
        column,
    )


def _syntax_error(error: SAXParseException, text: str, builder: _TreeBuilder) -> XMLError:
    message = error.getMessage()
    line, column = error.getLineNumber(), error.getColumnNumber() + 1
    if message == "undefined entity":
        return XMLError(f"XML entities are not allowed: {_PREDEFINED_HINT}", line, column)
    if message == "mismatched tag":
        return _mismatched_tag_error(text, builder, line, column)
    if message.startswith("not well-formed"):
        return XMLError(message, line, column)
    return XMLError(f"not well-formed: {message}", line, column)


def _check_size(text: str, max_bytes: int) -> None:
    # A str of n characters is at most 4n bytes and at least n: skip the encode when we can.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes):
        raise XMLError(f"the document is larger than {_size_label(max_bytes)}")


def parse_xml(
    text: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Element:
    """Parse ``text`` into an :class:`Element` tree, or raise :class:`XMLError`.

    ``max_bytes`` caps the UTF-8 size of the input, ``max_depth`` how deeply elements may nest
    (the root is depth 1) and ``max_elements`` how many elements the document may contain.
    Nothing outside ``text`` is ever read: no files, no network.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_xml expects str, got {type(text).__name__}")
    _check_size(text, max_bytes)
    if not text.strip():
        raise XMLError("the document is empty", 1, 1)
    reader = create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder = _TreeBuilder(reader, max_depth, max_elements)
    reader.setContentHandler(builder)
    try:
        reader.feed(text)
        reader.close()
    except DTDForbidden:
        raise _doctype_error(text, reader) from None
    except (EntitiesForbidden, ExternalReferenceForbidden):
        raise XMLError(f"XML entities are not allowed: {_PREDEFINED_HINT}", *_reader_position(reader)) from None
    except _LimitError as exc:
        raise XMLError(exc.message, exc.line, exc.column) from None
    except SAXParseException as exc:
        raise _syntax_error(exc, text, builder) from None
    if builder.root is None:  # pragma: no cover - expat reports "no element found" first
        raise XMLError("the document has no root element", 1, 1)
    return builder.root


# --- generating XML (exports): the one place that imports the standard library's XML modules --------


def xml_element(tag: str) -> XmlElement:
    return XmlElement(tag)


def xml_child(parent: XmlElement, tag: str) -> XmlElement:
    return SubElement(parent, tag)


def xml_document(root: XmlElement) -> bytes:
    """The element as an indented UTF-8 document with an XML declaration."""
    indent(root)
    return tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
