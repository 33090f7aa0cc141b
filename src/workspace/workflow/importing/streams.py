"""Byte-level reading of an upload: UTF-8 checking, positions, bounded lines, and the fingerprint.

:class:`Utf8Reader` wraps the uploaded stream and hands out only bytes it has checked to be UTF-8
(without NUL bytes), a chunk at a time, so the parsers above it never see invalid text and memory
stays at one chunk. It knows the line and column of every byte it handed out, which is how a JSON
syntax error found by the streaming parser is turned into a position a person can go to.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, NoReturn

from workspace.workflow.importing.records import Location, TaskImportError, size

__all__ = ["CHUNK", "Utf8Reader", "content_fingerprint", "line_length", "lines", "read_head", "strip_bom"]

CHUNK = 64 * 1024
_CONTINUATION = bytes(range(0x80, 0xC0))
_RESAVE = "re-save it as UTF-8 (in Excel: Save As → 'CSV UTF-8'; in an editor: encoding UTF-8)"


def chars(data: bytes) -> int:
    """How many characters the UTF-8 bytes hold (a character cut at the end counts once)."""
    return len(data.translate(None, _CONTINUATION))


def read_head(source: BinaryIO, n: int = CHUNK) -> bytes:
    """Up to ``n`` bytes from the start of ``source``, reading until it has them or the stream ends."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = source.read(n - got)
        if isinstance(part, str):
            raise TypeError("the upload must be a binary stream (open the file with 'rb')")
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def strip_bom(head: bytes) -> tuple[bytes, int]:
    """The head without a UTF-8 byte order mark, and its length; UTF-16/32 files are refused."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise TaskImportError(f"the file is UTF-32 text, not UTF-8; {_RESAVE}")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise TaskImportError(f"the file is UTF-16 text, not UTF-8; {_RESAVE}")
    if head.startswith(codecs.BOM_UTF8):
        return head[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
    return head, 0


class Utf8Reader(io.RawIOBase):
    """A raw stream over ``source`` that yields only checked UTF-8, tracking line and column.

    ``head`` is what was already read from ``source`` (without its BOM of ``bom`` bytes).
    ``offset``/``line``/``column`` describe the next byte to hand out; ``last*`` the last chunk
    handed out. ``on_read`` (if set) is called after every chunk, to enforce size limits.
    """

    def __init__(self, source: BinaryIO, head: bytes = b"", *, bom: int = 0, chunk_size: int = CHUNK) -> None:
        super().__init__()
        self._source = source
        self._pending = head
        self._chunk_size = chunk_size
        self._ready = b""
        self._carry = b""
        self._eof = False
        self.bom = bom
        # position of the next byte to check (for encoding errors, which are found ahead of use)
        self._checked = 0
        self._checked_line = 1
        # position of the next byte to hand out
        self.offset = 0
        self.line = 1
        self.column = 1
        self.last = b""
        self.last_offset = 0
        self.last_line = 1
        self.last_column = 1
        self.on_read: Callable[[], None] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._ready:
            if self._eof:
                return 0
            self._fill()
        n = min(len(buffer), len(self._ready))
        piece = self._ready[:n]
        self._ready = self._ready[n:]
        buffer[:n] = piece
        self.last, self.last_offset, self.last_line, self.last_column = piece, self.offset, self.line, self.column
        self.offset += n
        newlines = piece.count(b"\n")
        if newlines:
            self.line += newlines
            self.column = 1 + chars(piece[piece.rindex(b"\n") + 1 :])
        else:
            self.column += chars(piece)
        if self.on_read is not None:
            self.on_read()
        return n

    def _fill(self) -> None:
        data = self._pending or self._source.read(self._chunk_size)
        self._pending = b""
        if not data:
            self._eof = True
            if self._carry:
                self._refuse(0, self._carry, "the file is not UTF-8 text: it ends in the middle of a character")
            return
        data = self._carry + data
        nul = data.find(b"\x00")
        if nul >= 0:
            self._refuse(
                nul, data, "the file is not UTF-8 text: it has a NUL byte (0x00{at}), so it is binary or UTF-16"
            )
        try:
            _, consumed = codecs.utf_8_decode(data, "strict", False)
        except UnicodeDecodeError as error:
            bad = data[error.start : error.start + 1].hex().upper()
            self._refuse(error.start, data, f"the file is not UTF-8 text: the byte 0x{bad}{{at}} is not valid UTF-8")
        self._ready, self._carry = data[:consumed], data[consumed:]
        self._checked += consumed
        self._checked_line += self._ready.count(b"\n")

    def _refuse(self, at: int, data: bytes, detail: str) -> NoReturn:
        line = self._checked_line + data[:at].count(b"\n")
        byte = self.bom + self._checked + at
        detail = detail.replace("{at}", f" at byte offset {byte}")
        raise TaskImportError(f"{detail}; {_RESAVE}", Location(line=line))

    def position(self, at: int) -> tuple[int, int, int]:
        """Line, column and file byte offset of byte ``at`` of the last chunk handed out."""
        before = self.last[:at]
        newlines = before.count(b"\n")
        if newlines:
            column = 1 + chars(before[before.rindex(b"\n") + 1 :])
        else:
            column = self.last_column + chars(before)
        return self.last_line + newlines, column, self.bom + self.last_offset + at


def line_length(line: bytes) -> int:
    """The length of a line without its line end (LF or CRLF)."""
    if line.endswith(b"\n"):
        return len(line) - (2 if line.endswith(b"\r\n") else 1)
    return len(line)


def lines(reader: Utf8Reader, max_line_bytes: int) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` pairs (1-based, with their line ends), refusing overlong lines."""
    buffered = io.BufferedReader(reader, CHUNK)
    number = 0
    while True:
        line = buffered.readline(max_line_bytes + 2)
        if not line:
            return
        number += 1
        if len(line) > max_line_bytes and line_length(line) > max_line_bytes:
            raise TaskImportError(
                f"the line is longer than the limit of {size(max_line_bytes)} per line",
                Location(line=number),
            )
        yield number, line


def content_fingerprint(path_or_stream: str | os.PathLike[str] | BinaryIO) -> str:
    """SHA-256 (hex) of the file's bytes, read in chunks, to notice the same file imported twice.

    A stream is hashed from its current position; a seekable one is put back there afterwards, so
    it can be fingerprinted and then imported.
    """
    if isinstance(path_or_stream, str | os.PathLike):
        with open(path_or_stream, "rb") as stream:
            return _sha256(stream)
    stream = path_or_stream
    start = stream.tell() if stream.seekable() else None
    try:
        return _sha256(stream)
    finally:
        if start is not None:
            stream.seek(start)


def _sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        if isinstance(chunk, str):
            raise TypeError("the upload must be a binary stream (open the file with 'rb')")
        digest.update(chunk)
    return digest.hexdigest()
