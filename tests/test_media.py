"""The media store on both backends: a local folder and S3 (a real moto server on 127.0.0.1).

Every store behaviour runs against both through the parametrized ``store`` fixture. moto doesn't
check presigned-URL signatures (STACK.md pitfall 7), so signature tamper and expiry checks run on the
local backend only; on S3 the presigned URL is fetched for real.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
import wave
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from PIL import Image

from workspace.config import S3Settings, Settings
from workspace.media import (
    ImageTooLarge,
    MediaError,
    MediaKeyError,
    MediaNotFound,
    ThumbnailError,
    media_store_from_settings,
)
from workspace.media.content import (
    OCTET_STREAM,
    is_inline_media,
    make_thumbnail,
    serving_headers,
    sniff,
    sniff_content_type,
)
from workspace.media.keys import object_key
from workspace.media.local import LocalMediaStore
from workspace.media.s3 import MIN_PART_SIZE, S3MediaStore

SECRET = "media-test-secret-" + "s" * 40
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ------------------------------------------------------------------------------- moto server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    """A real ``moto_server`` process on 127.0.0.1, started once for the session."""
    exe = Path(sys.executable).with_name("moto_server")
    assert exe.exists(), f"{exe} not found: install moto[server] into the virtualenv"
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode} before answering")
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    response.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not answer within 30 s")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _settings(tmp_path: Path, s3: S3Settings | None = None) -> Settings:
    return Settings(data_dir=tmp_path, database_url="sqlite://", secret_key=SECRET, s3=s3)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        media = media_store_from_settings(_settings(tmp_path))
        assert isinstance(media, LocalMediaStore)
        return media
    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = S3Settings(
        endpoint=endpoint, access_key="testing", secret_key="testing",
        bucket=f"media-{uuid.uuid4().hex[:12]}", secure=False,
    )
    media = media_store_from_settings(_settings(tmp_path, s3))
    assert isinstance(media, S3MediaStore)
    return media


def raw_names(store) -> list[str]:
    """Everything the backend holds, under its real names (hidden/temp files and parts included)."""
    if isinstance(store, S3MediaStore):
        if not store.client.bucket_exists(store.bucket):
            return []
        names = [o.object_name for o in store.client.list_objects(store.bucket, recursive=True)]
        uploads = store.client._list_multipart_uploads(store.bucket).uploads
        return sorted(names + [f"(multipart upload) {u.object_name}" for u in uploads])
    root = store.root
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def visible_names(store) -> list[str]:
    return [n for n in raw_names(store) if not n.rsplit("/", 1)[-1].startswith(".")]


# ----------------------------------------------------------------------------------- sample files


def png_bytes(size=(8, 6), color=(200, 30, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 120, 200)).save(buf, fmt)
    return buf.getvalue()


def wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 800)
    return buf.getvalue()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb's shape)."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def fetch(url: str):
    assert urlsplit(url).hostname == "127.0.0.1", url
    with NO_PROXY.open(url, timeout=10) as response:
        return response.read(), response.headers


# ----------------------------------------------------------------------------------- roundtrip


def test_put_open_stat_delete_roundtrip(store):
    data = b"hello media" * 100
    stored = store.put(1, "docs/hello.txt", data, "text/plain")
    assert (stored.tenant_id, stored.key, stored.size, stored.content_type) == (1, "docs/hello.txt", 1100, "text/plain")

    assert store.exists(1, "docs/hello.txt")
    info = store.stat(1, "docs/hello.txt")
    assert (info.size, info.content_type) == (1100, "text/plain")
    assert info.etag and info.last_modified is not None and info.last_modified.tzinfo is not None

    with store.open(1, "docs/hello.txt") as reader:
        assert reader.size == 1100
        assert reader.content_type == "text/plain"
        assert reader.read(5) == b"hello"
        assert b"".join(reader.iter_chunks(64)) == data[5:]
    assert store.read_bytes(1, "docs/hello.txt") == data
    assert list(store.list_keys(1)) == ["docs/hello.txt"]

    store.delete(1, "docs/hello.txt")
    assert not store.exists(1, "docs/hello.txt")
    with pytest.raises(MediaNotFound):
        store.open(1, "docs/hello.txt")
    with pytest.raises(MediaNotFound):
        store.stat(1, "docs/hello.txt")
    store.delete(1, "docs/hello.txt")  # deleting a missing object is fine
    assert visible_names(store) == []


def test_put_overwrites(store):
    store.put(1, "a.bin", b"first version")
    store.put(1, "a.bin", b"second")
    assert store.read_bytes(1, "a.bin") == b"second"
    assert store.stat(1, "a.bin").size == 6


def test_put_streams_and_files(store, tmp_path):
    payload = os.urandom(300_000)
    stored = store.put(1, "s/unknown-size.bin", io.BytesIO(payload), "application/octet-stream")
    assert stored.size == len(payload)
    assert store.read_bytes(1, "s/unknown-size.bin") == payload

    stored = store.put(1, "s/known-size.bin", io.BytesIO(payload), OCTET_STREAM, size=len(payload))
    assert stored.size == len(payload)
    assert store.read_bytes(1, "s/known-size.bin") == payload

    source = tmp_path / "upload.png"
    source.write_bytes(png_bytes())
    stored = store.put_file(1, "s/from-file.png", source)  # content type sniffed from the bytes
    assert (stored.size, stored.content_type) == (source.stat().st_size, "image/png")
    assert store.read_bytes(1, "s/from-file.png") == source.read_bytes()


def test_put_short_stream_fails_and_stores_nothing(store):
    with pytest.raises(MediaError, match="bytes"):
        store.put(1, "short.bin", io.BytesIO(b"only ten b"), OCTET_STREAM, size=100)
    assert not store.exists(1, "short.bin")
    assert visible_names(store) == []


def test_put_sniffs_content_type_instead_of_trusting_client(store):
    assert store.put(1, "up/pic", png_bytes()).content_type == "image/png"
    assert store.stat(1, "up/pic").content_type == "image/png"
    assert store.put(1, "up/sound", io.BytesIO(wav_bytes())).content_type == "audio/wav"  # non-seekable path
    assert store.read_bytes(1, "up/sound") == wav_bytes()
    # An HTML page that claims to be a PNG: the service passes content_type=None, the bytes decide.
    assert store.put(1, "up/evil.png", HTML).content_type == OCTET_STREAM
    assert store.stat(1, "up/evil.png").content_type == OCTET_STREAM


def test_delete_prefix(store):
    for key in ["exports/a.json", "exports/b.json", "exports/deep/c.json", "exportsX.json", "other/d.json"]:
        store.put(1, key, b"{}", "application/json")
    store.put(2, "exports/a.json", b"{}", "application/json")

    assert store.delete_prefix(1, "exports/") == 3
    assert sorted(store.list_keys(1)) == ["exportsX.json", "other/d.json"]
    assert store.exists(2, "exports/a.json"), "another tenant's object with the same key is untouched"

    assert store.delete_prefix(1, "exports") == 1  # plain string prefix, as in S3
    assert store.delete_prefix(1, "nothing/") == 0
    assert store.delete_prefix(1, "") == 1  # everything of tenant 1
    assert list(store.list_keys(1)) == []
    assert list(store.list_keys(2)) == ["exports/a.json"]


def test_tenant_prefix_is_added_by_the_store(store):
    store.put(1, "photos/cat.png", png_bytes(), "image/png")
    store.put(2, "photos/dog.png", png_bytes(color=(0, 0, 255)), "image/png")

    assert visible_names(store) == ["1/photos/cat.png", "2/photos/dog.png"]
    assert object_key(1, "photos/cat.png") == "1/photos/cat.png"

    # Tenant 2 asks for tenant 1's key: its own namespace has no such object.
    with pytest.raises(MediaNotFound):
        store.open(2, "photos/cat.png")
    assert not store.exists(2, "photos/cat.png")
    store.delete(2, "photos/cat.png")
    assert store.exists(1, "photos/cat.png")
    # And it can't climb out of its prefix.
    for key in ["../1/photos/cat.png", "1/../../1/photos/cat.png"]:
        with pytest.raises(MediaKeyError):
            store.open(2, key)
    with pytest.raises(MediaKeyError):
        store.open("..", "1/photos/cat.png")


BAD_KEYS = [
    pytest.param("../secret", id="dotdot"),
    pytest.param("a/../../b", id="inner-dotdot"),
    pytest.param("a/./b", id="dot"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\..\\x", id="windows-dotdot"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("x" * 513, id="too-long"),
    pytest.param("a/" + "y" * 201, id="segment-too-long"),
    pytest.param("", id="empty"),
    pytest.param("a//b", id="double-slash"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param(".hidden", id="hidden"),
    pytest.param("a/.x.meta", id="reserved-dotfile"),
    pytest.param("sp ace", id="space"),
    pytest.param("q?x=1", id="query"),
    pytest.param("pct%2e", id="percent"),
    pytest.param("nl\nx", id="newline"),
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_rejected_everywhere(store, key):
    calls = [
        lambda: store.put(1, key, b"x"),
        lambda: store.open(1, key),
        lambda: store.stat(1, key),
        lambda: store.exists(1, key),
        lambda: store.delete(1, key),
        lambda: store.url_for(1, key, content_type="image/png"),
        lambda: store.open_writer(1, key).__enter__(),
    ]
    for call in calls:
        with pytest.raises(MediaKeyError, match="invalid media key|resolves outside"):
            call()
    assert raw_names(store) == []


@pytest.mark.parametrize("prefix", ["../", "/", "/abs", "a//", "a\\", "..", "x\x00"])
def test_invalid_prefixes_rejected(store, prefix):
    with pytest.raises(MediaKeyError):
        store.delete_prefix(1, prefix)
    with pytest.raises(MediaKeyError):
        list(store.list_keys(1, prefix))


@pytest.mark.parametrize("tenant", [0, -1, True, None, 1.5, "", "..", "1/2", "a b", "x" * 64])
def test_invalid_tenant_ids_rejected(store, tenant):
    with pytest.raises(MediaKeyError, match="tenant id"):
        store.put(tenant, "k.bin", b"x")
    with pytest.raises(MediaKeyError, match="tenant id"):
        store.delete_prefix(tenant, "")


def test_valid_key_characters(store):
    key = "Proj_1/2024-01-02/img(1)+v=2@x,y~z.PNG"
    store.put(1, key, b"ok")
    assert store.read_bytes(1, key) == b"ok"
    assert list(store.list_keys(1)) == [key]


# ------------------------------------------------------------------------------- open_writer


def test_open_writer_object_invisible_until_closed(store):
    with store.open_writer(1, "exports/e.jsonl", "application/x-ndjson") as writer:
        for i in range(1000):
            writer.write(b'{"row": %d}\n' % i)
        assert not store.exists(1, "exports/e.jsonl")
        assert list(store.list_keys(1)) == []
        assert writer.bytes_written > 0
    assert writer.result is not None and writer.result.size == writer.bytes_written
    assert store.exists(1, "exports/e.jsonl")
    data = store.read_bytes(1, "exports/e.jsonl")
    assert data.count(b"\n") == 1000 and data.endswith(b'{"row": 999}\n')
    assert store.stat(1, "exports/e.jsonl").content_type == "application/x-ndjson"
    assert visible_names(store) == ["1/exports/e.jsonl"]


def test_open_writer_exception_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError, match="export failed"), store.open_writer(1, "exports/broken.csv", "text/csv") as w:
        w.write(b"a,b\n" * 10_000)
        raise RuntimeError("export failed")
    assert not store.exists(1, "exports/broken.csv")
    assert raw_names(store) == [], "no object, temp file or pending upload may remain"


def test_open_writer_failure_keeps_the_previous_object(store):
    store.put(1, "exports/latest.csv", b"old,export\n", "text/csv")
    with pytest.raises(ValueError, match="boom"), store.open_writer(1, "exports/latest.csv", "text/csv") as writer:
        writer.write(b"new,partial\n")
        raise ValueError("boom")
    assert store.read_bytes(1, "exports/latest.csv") == b"old,export\n"
    if isinstance(store, LocalMediaStore):
        # Only the object and its metadata sidecar: no temp file.
        assert raw_names(store) == ["1/exports/.latest.csv.meta", "1/exports/latest.csv"]
    else:
        assert raw_names(store) == ["1/exports/latest.csv"]


def test_open_writer_text_wrapper(store):
    import csv

    with store.open_writer(1, "exports/t.csv", "text/csv") as writer:
        text = io.TextIOWrapper(writer, encoding="utf-8", newline="")
        out = csv.writer(text)
        out.writerow(["id", "label"])
        out.writerow([1, "Katze ü"])
        text.close()  # closing ends writing; the object appears when the block exits
        assert not store.exists(1, "exports/t.csv")
    assert store.read_bytes(1, "exports/t.csv") == "id,label\r\n1,Katze ü\r\n".encode()


@pytest.mark.parametrize("fail", [False, True], ids=["commit", "abort"])
def test_open_writer_large_multipart(store, fail):
    """Several S3 parts (5 MiB each): invisible while parts upload; an abort leaves no parts."""
    if isinstance(store, S3MediaStore):
        store.part_size = MIN_PART_SIZE
    block = os.urandom(64 * 1024)
    total_blocks = (11 * 1024 * 1024) // len(block)

    def write_all():
        with store.open_writer(1, "exports/big.bin") as writer:
            for i in range(total_blocks):
                writer.write(block)
                if i == total_blocks // 2 + 30:  # past the first 5 MiB part
                    if isinstance(store, S3MediaStore):
                        # The first part is being uploaded (a multipart upload exists)...
                        deadline = time.monotonic() + 10
                        while not any(n.startswith("(multipart upload) 1/exports/big.bin") for n in raw_names(store)):
                            assert time.monotonic() < deadline, "no multipart upload started"
                            time.sleep(0.02)
                    # ...but no object is visible yet.
                    assert not store.exists(1, "exports/big.bin")
                    assert list(store.list_keys(1)) == []
                    if fail:
                        raise RuntimeError("worker died")
        return writer

    if fail:
        with pytest.raises(RuntimeError):
            write_all()
        assert raw_names(store) == []
    else:
        writer = write_all()
        assert writer.result.size == total_blocks * len(block)
        info = store.stat(1, "exports/big.bin")
        assert info.size == total_blocks * len(block)
        with store.open(1, "exports/big.bin") as reader:
            first = reader.read(len(block))
            rest = sum(len(c) for c in reader.iter_chunks())
        assert first == block and rest == info.size - len(block)


# ---------------------------------------------------------------------------------------- URLs


def test_url_serves_the_bytes(store):
    data = png_bytes()
    store.put(7, "img/photo.png", data)
    url = store.url_for(7, "img/photo.png")
    if isinstance(store, S3MediaStore):
        body, headers = fetch(url)
        assert body == data
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"] == "inline"
        assert "X-Amz-Expires=300" in url
        assert urlsplit(url).path.endswith("/7/img/photo.png")
    else:
        parts = urlsplit(url)
        assert parts.path == "/media/7/img/photo.png"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert set(query) == {"exp", "disp", "sig"} and query["disp"] == "inline"
        assert abs(int(query["exp"]) - (time.time() + 300)) < 5
        tenant, key = unquote(parts.path).split("/", 3)[2:]
        assert store.verify_signed(tenant, key, query["exp"], query["sig"], disposition="inline")
        served = store.resolve_signed(tenant, key, query)
        assert served is not None
        assert served.path.read_bytes() == data
        assert served.headers["Content-Type"] == "image/png"
        assert served.headers["Content-Disposition"] == "inline"
        assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_url_non_media_is_an_octet_stream_attachment(store):
    store.put(7, "up/page.html", HTML, "text/html")
    store.put(7, "up/pic.png", png_bytes())
    for key, name, want_disp in [
        ("up/page.html", None, "attachment"),
        ("up/pic.png", "Bild ü.png", 'attachment; filename="Bild _.png"; filename*=UTF-8\'\'Bild%20%C3%BC.png'),
    ]:
        url = store.url_for(7, key, download_name=name)
        if isinstance(store, S3MediaStore):
            body, headers = fetch(url)
            assert body == store.read_bytes(7, key)
            content_type, disposition = headers["Content-Type"], headers["Content-Disposition"]
        else:
            parts = urlsplit(url)
            served = store.resolve_signed(7, key, {k: v[0] for k, v in parse_qs(parts.query).items()})
            assert served is not None
            content_type, disposition = served.content_type, served.content_disposition
        assert disposition == want_disp
        assert content_type == (OCTET_STREAM if key.endswith(".html") else "image/png")


def test_url_for_missing_object_and_bad_expiry(store):
    with pytest.raises(MediaNotFound):
        store.url_for(1, "nope.png")
    store.put(1, "yes.png", png_bytes())
    for expires in [timedelta(0), timedelta(seconds=-5), timedelta(days=2)]:
        with pytest.raises(MediaError, match="expiry"):
            store.url_for(1, "yes.png", expires=expires)


def test_local_signed_url_expiry_and_tampering(tmp_path):
    store = LocalMediaStore(tmp_path / "media", secret_key=SECRET)
    store.put(3, "a/file.txt", b"secret notes", "text/plain")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    url = store.url_for(3, "a/file.txt", expires=timedelta(minutes=5), now=now)
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    exp, sig, disp = q["exp"], q["sig"], q["disp"]
    assert disp == "attachment"

    def ok(tenant="3", key="a/file.txt", exp=exp, sig=sig, at=now, disposition=disp, name=None):
        return store.verify_signed(tenant, key, exp, sig, at, disposition=disposition, download_name=name)

    assert ok()
    assert ok(at=now + timedelta(minutes=5))  # still valid at the expiry second
    assert not ok(at=now + timedelta(minutes=5, seconds=1)), "expired"
    assert not ok(tenant="4"), "another tenant's path"
    assert not ok(key="a/other.txt"), "another key"
    assert not ok(exp=str(int(exp) + 3600)), "extended expiry"
    assert not ok(disposition="inline"), "disposition changed"
    assert not ok(name="evil.html"), "download name added"
    assert not ok(sig=sig[:-1] + ("A" if sig[-1] != "A" else "B")), "tampered signature"
    assert not ok(sig=""), "empty signature"
    assert not ok(sig="é" * 43), "non-ascii signature"
    assert not ok(exp="1e10"), "non-integer expiry"
    assert not ok(key="../3/a/file.txt"), "invalid key"
    assert store.resolve_signed("3", "a/file.txt", q, now + timedelta(hours=1)) is None
    assert store.resolve_signed("3", "a/file.txt", {**q, "sig": "x"}, now) is None
    assert store.resolve_signed("3", "a/file.txt", {"exp": exp}, now) is None

    other_secret = LocalMediaStore(tmp_path / "media", secret_key="another-secret-" + "z" * 40)
    assert not other_secret.verify_signed("3", "a/file.txt", exp, sig, now, disposition=disp)


def test_local_path_refuses_symlink_escape(tmp_path):
    store = LocalMediaStore(tmp_path / "media", secret_key=SECRET)
    store.put(2, "private/data.txt", b"tenant two only")
    (tmp_path / "media" / "1").mkdir()
    os.symlink(tmp_path / "media" / "2" / "private", tmp_path / "media" / "1" / "link")
    with pytest.raises(MediaKeyError, match="outside"):
        store.local_path(1, "link/data.txt")
    with pytest.raises(MediaKeyError):
        store.open(1, "link/data.txt")
    assert store.local_path(2, "private/data.txt") == (tmp_path / "media" / "2" / "private" / "data.txt").resolve()


# ------------------------------------------------------------------------------ content sniffing


@pytest.mark.parametrize(
    "fmt, expected",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp"),
     ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_sniff_images_made_with_pillow(fmt, expected):
    data = image_bytes(fmt)
    assert sniff(data[:512]) == expected
    assert sniff_content_type(data) == expected
    assert is_inline_media(expected)


def test_sniff_audio():
    assert sniff(wav_bytes()) == "audio/wav"
    assert is_inline_media("audio/x-wav") and is_inline_media("audio/wav; codecs=1")
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 20) == "audio/mpeg"
    assert sniff(b"\xff\xfb\x90\x64" + b"\x00" * 20) == "audio/mpeg"  # MPEG-1 layer III frame
    assert sniff(b"\xff\xf1\x50\x80\x02\x1f\xfc") == "audio/aac"  # ADTS
    assert sniff(b"OggS\x00\x02" + b"\x00" * 20) == "audio/ogg"
    assert sniff(b"fLaC\x00\x00\x00\x22") == "audio/flac"
    assert sniff(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00") == "audio/mp4"
    assert sniff(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm") == "audio/webm"
    assert sniff(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska") is None
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") is None


def test_html_pretending_to_be_png_is_not_media():
    assert sniff(HTML) is None
    assert sniff_content_type(io.BytesIO(HTML)) == OCTET_STREAM
    for data in [b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", b"%PDF-1.7", b"", b"GIF8", b"BMxx"]:
        assert sniff(data) is None
    assert not is_inline_media("text/html")
    assert not is_inline_media("image/svg+xml")
    assert not is_inline_media(None)
    # Whatever type was recorded, only allowlisted media is ever inline.
    headers = serving_headers("text/html", disposition="inline")
    assert (headers.content_type, headers.disposition) == (OCTET_STREAM, "attachment")
    headers = serving_headers("image/png")
    assert (headers.content_type, headers.content_disposition) == ("image/png", "inline")
    headers = serving_headers("image/png", '../../evil"\r\nX: y.png')
    assert "\r" not in headers.content_disposition and "/" not in headers.content_disposition
    assert headers.content_disposition.startswith('attachment; filename="')


# ---------------------------------------------------------------------------------- thumbnails


def test_thumbnail_follows_exif_orientation():
    # Stored 400×200: left half red, right half blue. Orientation 6 = "rotate 90° clockwise to view",
    # so the upright image is 200×400 with red on top.
    image = Image.new("RGB", (400, 200), (255, 0, 0))
    image.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes(), quality=95)

    thumb = make_thumbnail(io.BytesIO(buf.getvalue()), (256, 256))
    assert sniff(thumb) == "image/jpeg"
    with Image.open(io.BytesIO(thumb)) as out:
        assert out.size == (128, 256)
        assert out.getexif().get(0x0112) is None, "metadata is stripped"
        red_top, blue_bottom = out.convert("RGB").getpixel((64, 20)), out.convert("RGB").getpixel((64, 236))
    assert red_top[0] > 200 and red_top[2] < 60
    assert blue_bottom[2] > 200 and blue_bottom[0] < 60


def test_thumbnail_keeps_transparency_as_png_and_small_images_small():
    thumb = make_thumbnail(png_bytes((40, 20), (0, 255, 0, 128), mode="RGBA"))
    assert sniff(thumb) == "image/png"
    with Image.open(io.BytesIO(thumb)) as out:
        assert out.size == (40, 20) and out.mode == "RGBA"
    assert sniff(make_thumbnail(png_bytes((300, 100)), (64, 64), output_format="PNG")) == "image/png"


def test_decompression_bomb_is_refused():
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        make_thumbnail(png_declaring(100_000, 100_000))
    # Below Pillow's own limit but above ours.
    with pytest.raises(ImageTooLarge, match=r"10000x5000 = 50000000 pixels.*decompression bomb"):
        make_thumbnail(png_declaring(10_000, 5_000))
    with pytest.raises(ImageTooLarge, match="more than the 100 allowed"):
        make_thumbnail(png_bytes((20, 20)), max_pixels=100)


def test_thumbnail_of_non_image_is_a_clear_error():
    with pytest.raises(ThumbnailError, match="not an image"):
        make_thumbnail(HTML)
    with pytest.raises(ThumbnailError):
        make_thumbnail(png_bytes((50, 50))[:60])  # truncated


# ------------------------------------------------------------------------------------- factory


def test_factory_picks_the_backend(tmp_path):
    local = media_store_from_settings(_settings(tmp_path))
    assert isinstance(local, LocalMediaStore) and local.root == tmp_path / "media"
    s3 = S3Settings(endpoint="https://s3.example.test", access_key="a", secret_key="b", bucket="bkt", secure=False)
    remote = media_store_from_settings(_settings(tmp_path, s3))
    assert isinstance(remote, S3MediaStore) and remote.bucket == "bkt"
    assert remote.client._base_url.is_https  # the endpoint's scheme wins


def test_local_key_that_is_also_a_folder_is_a_clear_error(tmp_path):
    """S3 allows both "a" and "a/b"; a folder can't: the local store refuses cleanly."""
    store = LocalMediaStore(tmp_path / "media", secret_key=SECRET)
    store.put(1, "a/b.txt", b"x")
    with pytest.raises(MediaError, match="folder"):
        store.put(1, "a", b"y")
    store.put(1, "c", b"z")
    with pytest.raises(MediaError, match="not a folder"):
        store.put(1, "c/d.txt", b"w")
    assert raw_names(store) == ["1/.c.meta", "1/a/.b.txt.meta", "1/a/b.txt", "1/c"]
    assert not store.exists(1, "a")


def test_media_package_imports_no_web_code():
    """Only workspace.media imports minio (lint-imports); media itself must not know HTTP frameworks."""
    import ast

    import workspace.media

    forbidden = ("litestar", "workspace.web", "workspace.app", "workspace.tenancy", "workspace.workflow")
    package_dir = Path(workspace.media.__file__).parent
    found = []
    for path in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert found == []


@pytest.mark.parametrize("size", [1000, 7 * 1024 * 1024], ids=["single-part", "multipart"])
def test_s3_writer_reports_backend_failure(moto_endpoint, size):
    """An upload the server refuses surfaces as MediaError in the writing thread, with nothing stored."""
    s3 = S3Settings(endpoint=moto_endpoint, access_key="testing", secret_key="testing",
                    bucket=f"gone-{uuid.uuid4().hex[:12]}", secure=False)
    store = S3MediaStore.from_settings(s3, part_size=MIN_PART_SIZE)
    store.ensure_bucket()
    store.client.remove_bucket(store.bucket)  # the store still believes the bucket exists
    block = b"z" * (64 * 1024)
    with pytest.raises(MediaError, match="upload of '1/exports/x.bin' failed"), store.open_writer(1, "exports/x.bin") as w:
        for _ in range(size // len(block) + 1):
            w.write(block)
    assert not store.client.bucket_exists(store.bucket)


def test_s3_presigned_urls_use_the_public_endpoint_when_set(moto_endpoint, tmp_path):
    """Servers talk to the storage at one address, browsers reach it at another (a proxy, a CDN name)."""
    from workspace.app.factory import content_security_policy

    port = moto_endpoint.rsplit(":", 1)[1]
    s3 = S3Settings(endpoint=moto_endpoint, access_key="testing", secret_key="testing",
                    bucket=f"media-{uuid.uuid4().hex[:12]}", secure=False, public_endpoint=f"http://localhost:{port}")
    settings = _settings(tmp_path, s3)
    media = media_store_from_settings(settings)
    dot = png_bytes()
    media.put(3, "img/dot.png", dot)
    url = media.url_for(3, "img/dot.png")
    assert urlsplit(url).netloc == f"localhost:{port}" and "X-Amz-Signature=" in url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        assert response.read() == dot
    csp = content_security_policy(settings)
    assert f"img-src 'self' data: http://localhost:{port};" in csp and moto_endpoint not in csp
