"""The one XML door (ARCHITECTURE.md rule 5): attacks are refused with a clear message and touch nothing.

Each attack test also proves that no file was opened and no connection was attempted while parsing,
by failing loudly if the parser reaches for ``open``, ``urlopen`` or a socket, and (for XXE over HTTP)
by running a real local server that must receive no request.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import http.server
import io
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from workspace.config import REPO_ROOT
from workspace.lib.xmlsafe import DEFAULT_MAX_BYTES, Element, XMLError, parse_xml

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

DTD_MESSAGE = "DTDs (<!DOCTYPE ...>) are not allowed"


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record (and block) every attempt to open a file, fetch a URL or open a socket."""
    attempts: list[str] = []

    def refuse(kind: str):
        def _refuse(*args, **kwargs):
            attempts.append(f"{kind}: {args[:2]!r}")
            raise AssertionError(f"the XML parser tried {kind}")

        return _refuse

    monkeypatch.setattr(builtins, "open", refuse("open"))
    monkeypatch.setattr(io, "open", refuse("io.open"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    yield attempts
    assert attempts == [], attempts


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A real local HTTP server that records the paths requested from it."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = b'<!ENTITY secret "from-the-network">'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


# -- what it parses --------------------------------------------------------------------------------


def test_parses_tags_attributes_text_and_positions() -> None:
    root = parse_xml('<View>\n  <Text name="t" value="$text"/>\n  <Header>Hi &amp; &#233;</Header>\n</View>')
    assert root.tag == "View" and (root.line, root.column) == (1, 1)
    text, header = root.children
    assert (text.tag, text.attrs, text.line, text.column) == ("Text", {"name": "t", "value": "$text"}, 2, 3)
    assert (header.text, header.line, header.column) == ("Hi & é", 3, 3)
    assert [e.tag for e in root.iter()] == ["View", "Text", "Header"]


def test_columns_count_characters_and_crlf_is_one_line_break() -> None:
    root = parse_xml('<a>\r\n<é x="ü"/><b/>\r<c/>\n  <d/></a>')
    assert [(e.tag, e.line, e.column) for e in root.iter()] == [
        ("a", 1, 1), ("é", 2, 1), ("b", 2, 11), ("c", 3, 1), ("d", 4, 3)
    ]


def test_comments_and_processing_instructions_are_dropped_cdata_is_text() -> None:
    root = parse_xml('<?xml version="1.0" encoding="UTF-8"?><a><!-- note --><?pi x?><![CDATA[<b>]]></a>')
    assert root.children == () and root.text == "<b>"


def test_element_is_immutable() -> None:
    root = parse_xml("<a/>")
    assert isinstance(root, Element)
    with pytest.raises(dataclasses.FrozenInstanceError):
        root.tag = "b"  # type: ignore[misc]


def test_refuses_bytes_input() -> None:
    with pytest.raises(TypeError, match="expects str"):
        parse_xml(b"<a/>")  # type: ignore[arg-type]


# -- entities and DTDs -----------------------------------------------------------------------------


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    return secret


def test_xxe_with_an_external_file_entity_is_refused_and_reads_nothing(secret_file: Path, no_io: list[str]) -> None:
    secret = secret_file  # created before no_io starts refusing file access
    document = f'<?xml version="1.0"?>\n<!DOCTYPE foo [\n  <!ENTITY xxe SYSTEM "file://{secret}">\n]>\n<foo>&xxe;</foo>'
    with pytest.raises(XMLError) as caught:
        parse_xml(document)
    assert caught.value.message.startswith(DTD_MESSAGE)
    assert (caught.value.line, caught.value.column) == (2, 1)
    assert str(caught.value).endswith("(line 2, column 1)")
    assert "SECRET" not in str(caught.value)


def test_xxe_over_http_makes_no_request(http_server: tuple[str, list[str]]) -> None:
    url, requests = http_server
    documents = [
        f'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "{url}/entity">]><foo>&xxe;</foo>',
        f'<!DOCTYPE foo SYSTEM "{url}/external.dtd"><foo>&secret;</foo>',
        f'<!DOCTYPE foo [<!ENTITY % remote SYSTEM "{url}/param.dtd"> %remote;]><foo/>',
    ]
    for document in documents:
        with pytest.raises(XMLError, match="DTDs"):
            parse_xml(document)
    time.sleep(0.2)  # give a (wrongly) started request the time to arrive
    assert requests == []


def test_billion_laughs_is_refused_quickly(no_io: list[str]) -> None:
    started = time.perf_counter()
    with pytest.raises(XMLError) as caught:
        parse_xml(BILLION_LAUGHS)
    assert time.perf_counter() - started < 1.0
    assert DTD_MESSAGE in caught.value.message and "entities" in caught.value.message
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_a_bare_doctype_is_refused(no_io: list[str]) -> None:
    with pytest.raises(XMLError) as caught:
        parse_xml('<?xml version="1.0"?>\n\n   <!DOCTYPE View>\n<View/>')
    assert str(caught.value) == (
        "DTDs (<!DOCTYPE ...>) are not allowed, and neither are the XML entities they declare; "
        "remove the DOCTYPE (line 3, column 4)"
    )


def test_an_undeclared_entity_reference_is_refused(no_io: list[str]) -> None:
    with pytest.raises(XMLError) as caught:
        parse_xml('<View>\n  <Header value="a &xxe; b"/>\n</View>')
    assert caught.value.message.startswith("XML entities are not allowed: only the predefined entities &amp;")
    assert caught.value.line == 2


# -- caps ------------------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "<a>" * depth + "</a>" * depth


def test_depth_cap_allows_the_limit_and_refuses_one_more() -> None:
    assert parse_xml(_nested(64)).tag == "a"
    with pytest.raises(XMLError) as caught:
        parse_xml(_nested(65))
    assert caught.value.message == "the document is nested deeper than 64 levels"
    assert (caught.value.line, caught.value.column) == (1, 64 * 3 + 1)  # at the 65th <a>


def test_depth_cap_is_configurable() -> None:
    with pytest.raises(XMLError, match="nested deeper than 3 levels"):
        parse_xml(_nested(4), max_depth=3)


def test_size_cap_counts_utf8_bytes() -> None:
    padding = DEFAULT_MAX_BYTES - len("<a></a>")
    assert parse_xml("<a>" + "x" * padding + "</a>").text == "x" * padding
    with pytest.raises(XMLError) as caught:
        parse_xml("<a>" + "x" * (padding + 1) + "</a>")
    assert str(caught.value) == "the document is larger than 256 KiB"
    assert caught.value.line is None
    # fewer characters than the cap, but more bytes: é is two bytes in UTF-8
    with pytest.raises(XMLError, match="larger than 256 KiB"):
        parse_xml("<a>" + "é" * (DEFAULT_MAX_BYTES // 2) + "</a>")


def test_size_cap_is_configurable() -> None:
    with pytest.raises(XMLError, match="larger than 100 bytes"):
        parse_xml("<a>" + "x" * 100 + "</a>", max_bytes=100)


def test_element_count_cap() -> None:
    document = "<a>" + "<b/>" * 10 + "</a>"
    assert len(parse_xml(document, max_elements=11).children) == 10
    with pytest.raises(XMLError) as caught:
        parse_xml(document, max_elements=10)
    assert caught.value.message == "the document has more than 10 elements"
    assert (caught.value.line, caught.value.column) == (1, 4 + 9 * 4)  # the 10th <b/>, the 11th element


# -- malformed documents ---------------------------------------------------------------------------


def test_mismatched_tag_names_both_tags_and_points_at_the_end_tag() -> None:
    with pytest.raises(XMLError) as caught:
        parse_xml("<View>\n  <Choices>\n </View>")
    assert caught.value.message == (
        "not well-formed: mismatched tag </View>; expected </Choices> to close <Choices> from line 2, column 3"
    )
    assert (caught.value.line, caught.value.column) == (3, 2)


@pytest.mark.parametrize(
    ("document", "message", "line", "column"),
    [
        ("<View>\n<Text/>", "not well-formed: no element found", 2, 8),
        ("<a/>\n<b/>", "not well-formed: junk after document element", 2, 1),
        ('<a x="1" x="2"/>', "not well-formed: duplicate attribute", 1, 10),
        ("<a x=1/>", "not well-formed (invalid token)", 1, 6),
    ],
)
def test_malformed_documents(document: str, message: str, line: int, column: int) -> None:
    with pytest.raises(XMLError) as caught:
        parse_xml(document)
    assert (caught.value.message, caught.value.line, caught.value.column) == (message, line, column)


def test_empty_document() -> None:
    with pytest.raises(XMLError, match="the document is empty"):
        parse_xml("  \n ")


# -- the door is the only door ---------------------------------------------------------------------


def test_no_other_module_parses_xml() -> None:
    """Only lib/xmlsafe.py may import an XML parser; everything else goes through parse_xml."""
    parsers = ("xml", "lxml", "defusedxml")
    offenders = []
    for path in (REPO_ROOT / "src" / "workspace").rglob("*.py"):
        if path.name == "xmlsafe.py" and path.parent.name == "lib":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {name}" for name in names if name.split(".")[0] in parsers]
    assert offenders == []


def test_xmlsafe_imports_nothing_from_workspace() -> None:
    source = (REPO_ROOT / "src" / "workspace" / "lib" / "xmlsafe.py").read_text(encoding="utf-8")
    modules = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    assert modules and not [m for m in modules if m and m.split(".")[0] == "workspace"]
