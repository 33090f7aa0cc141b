"""Media imports (files, zip archives, URL lists) and serving media through short-lived URLs.

Local media backend by default (the ``client``/``runtime`` fixtures run on SQLite and PostgreSQL);
the upload → store → labeling page → download path also runs against a real moto S3 server.
"""

from __future__ import annotations

import html
import io
import re
import struct
import threading
import time
import urllib.request
import uuid
import wave
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import csrf_token, login, make_tenant, post_form
from PIL import Image
from sqlalchemy import func, select
from test_media import moto_endpoint  # noqa: F401 - the session-scoped moto server fixture

from workspace.lib.outbound import OutboundPolicy
from workspace.workflow.models import ImportBatch, Task

IMAGE = """<View><Image name="image" value="$image"/>
<Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices></View>"""
AUDIO = """<View><Audio name="audio" value="$audio"/>
<Choices name="label" toName="audio"><Choice value="speech"/><Choice value="noise"/></Choices></View>"""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def png_bytes(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


def wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<100h", *range(100)))
    return buf.getvalue()


HTML = b"<!doctype html><html><script>alert(document.cookie)</script></html>"


def _project(client, runtime, slug="acme", config=IMAGE):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, slug)
    login(client, world.owner)
    r = post_form(client, f"/t/{slug}/projects", {"title": "Media", "label_config": config})
    assert r.status_code == 303, r.text[:300]
    return world, int(r.headers["location"].rsplit("/", 1)[1])


def _upload(client, slug, pid, files, **extra):  # type: ignore[no-untyped-def]
    return client.post(f"/t/{slug}/projects/{pid}/import/media", data={"_csrf_token": csrf_token(client), **extra},
                       files=[("media", (name, content, "image/png")) for name, content in files])


def _tasks(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return [t.data for t in db.scalars(select(Task).order_by(Task.id))]


def _batches(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(func.count()).select_from(ImportBatch))


def _objects(runtime, world):  # type: ignore[no-untyped-def]
    return list(runtime.media.list_keys(world.tenant_id))


def _error(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r'data-testid="(?:media|urls)-error">(.*?)</p>', response.text, re.DOTALL)
    return html.unescape(match.group(1)) if match else response.text[:500]


def _media_src(client, slug, pid, task_id=None) -> str:  # type: ignore[no-untyped-def]
    url = f"/t/{slug}/projects/{pid}/label" + (f"?task={task_id}" if task_id else "")
    page = client.get(url)
    assert page.status_code == 200
    match = re.search(r'<(?:img|audio)[^>]* src="([^"]+)"', page.text)
    assert match, page.text[page.text.find("lbl-canvas"):][:500]
    return html.unescape(match.group(1))


# ------------------------------------------------------------------------------------ 1. files


def test_uploaded_images_become_tasks_served_by_signed_urls(client, runtime):
    world, pid = _project(client, runtime)
    png, jpeg = png_bytes(), jpeg_bytes()
    r = _upload(client, "acme", pid, [("cat photo.png", png), ("../../dog.JPG", jpeg)])
    assert r.status_code == 303, _error(r)
    data = _tasks(runtime, world)
    assert len(data) == 2
    keys = sorted(d["image"] for d in data)
    assert all(k.startswith("/media/uploads/") for k in keys), keys
    assert {k.rsplit("/", 1)[1] for k in keys} == {"cat_photo.png", "dog.JPG"}
    with runtime.unit_of_work(world.tenant_id) as db:
        (batch,) = db.scalars(select(ImportBatch)).all()
        ids = [t.id for t in db.scalars(select(Task).order_by(Task.id))]
    assert batch.format == "media" and batch.task_count == 2
    assert all(k.startswith(f"/media/uploads/{batch.id}/") for k in keys)
    info = runtime.media.stat(world.tenant_id, data[1]["image"].removeprefix("/media/"))
    assert info.content_type == "image/jpeg"  # sniffed, though uploaded as image/png named .JPG

    for task_id, expected, ctype in zip(ids, (png, jpeg), ("image/png", "image/jpeg"), strict=True):
        src = _media_src(client, "acme", pid, task_id)
        assert src.startswith(f"/media/{world.tenant_id}/uploads/") and "sig=" in src and "exp=" in src
        anonymous = client.get(src, cookies={})
        assert anonymous.status_code == 200
        assert anonymous.content == expected
        assert anonymous.headers["content-type"] == ctype
        assert anonymous.headers["x-content-type-options"] == "nosniff"
        assert anonymous.headers["cache-control"].startswith("private")
        assert anonymous.headers["content-disposition"].startswith("inline")


def test_uploaded_wav_becomes_an_audio_task(client, runtime):
    world, pid = _project(client, runtime, config=AUDIO)
    wav = wav_bytes()
    r = _upload(client, "acme", pid, [("clip.wav", wav)])
    assert r.status_code == 303, _error(r)
    (data,) = _tasks(runtime, world)
    src = _media_src(client, "acme", pid)
    got = client.get(src)
    assert got.status_code == 200 and got.content == wav and got.headers["content-type"] == "audio/wav"
    assert data["audio"].endswith("/clip.wav")
    # An image into an audio project is refused, naming the file.
    r = _upload(client, "acme", pid, [("pic.png", png_bytes())])
    assert r.status_code == 400 and "'pic.png' is image/png" in _error(r)


def test_html_named_png_is_refused_and_nothing_is_stored(client, runtime):
    world, pid = _project(client, runtime)
    r = _upload(client, "acme", pid, [("ok.png", png_bytes()), ("x.png", HTML)])
    assert r.status_code == 400
    assert "'x.png' is not an image or audio file" in _error(r)
    assert _tasks(runtime, world) == [] and _batches(runtime, world) == 0
    assert _objects(runtime, world) == []


def test_reupload_needs_confirmation(client, runtime):
    world, pid = _project(client, runtime)
    files = [("a.png", png_bytes())]
    assert _upload(client, "acme", pid, files).status_code == 303
    again = _upload(client, "acme", pid, files)
    assert again.status_code == 409 and "already imported" in _error(again)
    assert len(_objects(runtime, world)) == 1
    assert _upload(client, "acme", pid, files, confirm="1").status_code == 303
    assert len(_tasks(runtime, world)) == 2 and len(_objects(runtime, world)) == 2


def test_project_without_single_media_tag_refuses_media(client, runtime):
    ner = """<View><Labels name="l" toName="text"><Label value="PER"/></Labels><Text name="text" value="$text"/></View>"""
    world, pid = _project(client, runtime, config=ner)
    r = _upload(client, "acme", pid, [("a.png", png_bytes())])
    assert r.status_code == 400 and "exactly one Image or Audio tag" in _error(r)
    assert _objects(runtime, world) == []


# ---------------------------------------------------------------------------------- 3. serving


def test_signed_urls_expire_and_cannot_be_tampered_or_retargeted(client, runtime, make_client):
    world, pid = _project(client, runtime)
    assert _upload(client, "acme", pid, [("a.png", png_bytes())]).status_code == 303
    src = _media_src(client, "acme", pid)
    parts = urlsplit(src)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert client.get(src).status_code == 200

    tampered = dict(query, sig=query["sig"][:-2] + ("AA" if not query["sig"].endswith("AA") else "BB"))
    assert client.get(f"{parts.path}?{urlencode(tampered)}").status_code == 403
    later = dict(query, exp=str(int(query["exp"]) + 3600))
    assert client.get(f"{parts.path}?{urlencode(later)}").status_code == 403
    assert client.get(parts.path).status_code == 404  # unsigned
    attachment = dict(query, disp="attachment")
    assert client.get(f"{parts.path}?{urlencode(attachment)}").status_code == 403
    # An expired (but correctly signed) URL.
    key = parts.path.split("/", 3)[3]
    from datetime import timedelta

    old = runtime.media.url_for(world.tenant_id, key, expires=timedelta(seconds=1), now=time.time() - 3600)
    assert client.get(old).status_code == 403

    # Another tenant's object, through a URL re-targeted at it, is refused.
    other = make_client()
    b, pid_b = _project(other, runtime, slug="bravo")
    assert _upload(other, "bravo", pid_b, [("b.png", png_bytes((1, 2, 3)))]).status_code == 303
    (b_data,) = _tasks(runtime, b)
    b_key = b_data["image"].removeprefix("/media/")
    retargeted = f"/media/{b.tenant_id}/{b_key}?{parts.query}"
    assert client.get(retargeted).status_code in (403, 404)
    same_key_other_tenant = f"/media/{b.tenant_id}/{key}?{parts.query}"
    assert client.get(same_key_other_tenant).status_code in (403, 404)
    # A task value naming the other tenant's key resolves inside the current tenant only.
    from workspace.workflow.media_import import media_url

    assert media_url(runtime, world.tenant_id, b_data["image"]) is None
    assert media_url(runtime, world.tenant_id, f"/media/{b.tenant_id}/{b_key}") is None
    assert media_url(runtime, world.tenant_id, "/media/../etc/passwd") is None


def test_non_media_objects_are_served_as_attachments(client, runtime):
    world, _pid = _project(client, runtime)
    runtime.media.put(world.tenant_id, "exports/x.html", HTML)
    url = runtime.media.url_for(world.tenant_id, "exports/x.html")
    r = client.get(url)
    assert r.status_code == 200 and r.content == HTML
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------------------------------- 2. zip


def _zip(entries, *, compression=zipfile.ZIP_DEFLATED) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                z.writestr(entry, b"target.png")
            else:
                name, content = entry
                z.writestr(name, content)
    return buf.getvalue()


def _flag_encrypted(archive: bytes, name: str) -> bytes:
    """Set the 'encrypted' bit of ``name`` in its local header and its central directory entry."""
    raw = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        offset = z.getinfo(name).header_offset
    raw[offset + 6] |= 0x1
    cd = raw.find(b"PK\x01\x02")
    while raw[cd + 46:cd + 46 + len(name)] != name.encode():
        cd = raw.find(b"PK\x01\x02", cd + 4)
    raw[cd + 8] |= 0x1
    return bytes(raw)


def _upload_zip(client, pid, content, name="media.zip"):  # type: ignore[no-untyped-def]
    return client.post(f"/t/acme/projects/{pid}/import/media", data={"_csrf_token": csrf_token(client)},
                       files={"media": (name, content, "application/zip")})


def test_zip_import_skips_non_media(client, runtime):
    world, pid = _project(client, runtime)
    png, jpeg = png_bytes(), jpeg_bytes()
    archive = _zip([("cats/a.png", png), ("dogs/a.png", png_bytes((0, 0, 255))), ("b.jpg", jpeg),
                    ("readme.txt", b"hello"), ("__MACOSX/._a.png", b"junk"), ("notes/x.png", HTML), ("empty/", b"")])
    r = _upload_zip(client, pid, archive)
    assert r.status_code == 303, _error(r)
    data = _tasks(runtime, world)
    assert len(data) == 3
    names = sorted(d["image"].rsplit("/", 1)[1] for d in data)
    assert names == ["a-2.png", "a.png", "b.jpg"]
    page = client.get(f"/t/acme/projects/{pid}/import")
    assert "skipped 3 entries" in page.text
    src = _media_src(client, "acme", pid)
    assert client.get(src).content == png


@pytest.mark.parametrize("case", ["slip", "absolute", "symlink", "encrypted", "bomb", "too-many", "not-zip"])
def test_dangerous_zips_are_refused_and_leave_nothing(client, runtime, case):
    world, pid = _project(client, runtime)
    png = png_bytes()
    if case == "slip":
        archive, status, expected = _zip([("ok.png", png), ("../../evil.png", png)]), 400, "zip-slip"
    elif case == "absolute":
        archive, status, expected = _zip([("ok.png", png), ("/etc/evil.png", png)]), 400, "zip-slip"
    elif case == "symlink":
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (0o120777 << 16)
        archive, status, expected = _zip([("ok.png", png), link]), 400, "symbolic link"
    elif case == "encrypted":
        archive, status, expected = _flag_encrypted(_zip([("ok.png", png), ("secret.png", png)]), "secret.png"), \
            400, "encrypted"
    elif case == "bomb":
        archive, status, expected = _zip([("ok.png", png), ("bomb.png", png + b"\0" * (11 * 1024 * 1024))]), 413, \
            "zip bomb"
    elif case == "too-many":
        archive = _zip([(f"f{i}.png", b"") for i in range(10_001)], compression=zipfile.ZIP_STORED)
        status, expected = 413, "10,001 entries"
    else:
        archive, status, expected = b"PK\x03\x04 this is not really a zip", 400, "not a readable zip"
    r = _upload_zip(client, pid, archive)
    assert r.status_code == status, (case, _error(r))
    assert expected in _error(r), (case, _error(r))
    assert _tasks(runtime, world) == [] and _batches(runtime, world) == 0
    assert _objects(runtime, world) == []


def test_zip_with_lying_size_headers_is_refused_and_leaves_nothing(runtime):
    """A header that understates an entry's size is not trusted: CPython's zipfile stops at the declared
    size and fails the CRC; the import is refused and the entry stored before it is removed."""
    from workspace.tenancy.context import TenantContext
    from workspace.tenancy.errors import ServiceError
    from workspace.workflow import services as svc
    from workspace.workflow.media_import import MediaLimits, import_media_zip

    world = make_tenant(runtime, "acme")
    ctx = TenantContext(world.tenant_id, "acme", "acme", world.owner.user_id, world.owner.email, "",
                        world.owner.membership_id, "owner")
    big = png_bytes() + bytes(range(256)) * 4096  # ~1 MiB, incompressible-ish
    archive = _zip([("small.png", png_bytes()), ("big.png", big)])
    limits = MediaLimits()
    # Rewrite both headers of big.png to claim 1 KiB (the local header and the central directory).
    raw = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        info = z.getinfo("big.png")
    fake = struct.pack("<I", 1024)
    raw[info.header_offset + 22:info.header_offset + 26] = fake
    cd = raw.find(b"PK\x01\x02")
    while raw[cd + 46:cd + 46 + 7] != b"big.png":
        cd = raw.find(b"PK\x01\x02", cd + 4)
    raw[cd + 24:cd + 28] = fake
    with pytest.raises(ServiceError) as refused, runtime.unit_of_work(world.tenant_id) as db:
        project = svc.create_project(db, ctx, "Media", label_config=IMAGE)
        db.flush()
        import_media_zip(db, ctx, runtime.media, project.id, io.BytesIO(bytes(raw)), "lying.zip", limits=limits)
    assert refused.value.status == 400 and "Bad CRC-32" in refused.value.message
    assert list(runtime.media.list_keys(world.tenant_id)) == []


# ----------------------------------------------------------------------------------- 4. URL list


class _Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, tuple[bytes, str]]] = {}

    def do_GET(self) -> None:
        found = self.files.get(self.path.split("?", 1)[0])
        if found is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, ctype = found
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def media_server():  # type: ignore[no-untyped-def]
    png = png_bytes((9, 9, 9))
    _Handler.files = {"/a.png": (png, "image/png"), "/page.png": (HTML, "image/png")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", png
    finally:
        server.shutdown()
        server.server_close()


def _upload_urls(client, pid, text):  # type: ignore[no-untyped-def]
    return client.post(f"/t/acme/projects/{pid}/import/urls", data={"_csrf_token": csrf_token(client), "urls": text},
                       files={"url_file": ("", b"", "text/plain")})


def test_url_list_import_through_the_guarded_client(app, client, runtime, media_server):
    base, png = media_server
    world, pid = _project(client, runtime)
    # Production default: loopback is blocked, with the line and the reason.
    r = _upload_urls(client, pid, f"# my list\n\n{base}/a.png\n")
    assert r.status_code == 400
    assert "Line 3" in _error(r) and "127.0.0.1" in _error(r) and "public addresses" in _error(r)
    assert _tasks(runtime, world) == [] and _objects(runtime, world) == []

    app.state["outbound_policy"] = OutboundPolicy(allow_loopback=True)
    r = _upload_urls(client, pid, f"{base}/a.png\n")
    assert r.status_code == 303, _error(r)
    (data,) = _tasks(runtime, world)
    assert data["image"].endswith("/a.png")
    assert client.get(_media_src(client, "acme", pid)).content == png

    for text, expected in ((f"{base}/a.png?v=2\n{base}/missing.png\n", "Line 2"),
                           (f"{base}/page.png\n", "not an image or audio file"),
                           ("ftp://example.com/a.png\n", "not an http:// or https:// URL")):
        r = _upload_urls(client, pid, text)
        assert r.status_code == 400, text
        assert expected in _error(r), (text, _error(r))
    assert len(_tasks(runtime, world)) == 1 and len(_objects(runtime, world)) == 1


def test_url_list_as_a_file(app, client, runtime, media_server):
    base, _png = media_server
    world, pid = _project(client, runtime)
    app.state["outbound_policy"] = OutboundPolicy(allow_loopback=True)
    r = client.post(f"/t/acme/projects/{pid}/import/urls", data={"_csrf_token": csrf_token(client)},
                    files={"url_file": ("urls.txt", f"{base}/a.png\n".encode(), "text/plain")})
    assert r.status_code == 303, _error(r)
    assert len(_tasks(runtime, world)) == 1


# -------------------------------------------------------------------------------------- S3 path


@pytest.fixture
def s3_settings(settings, moto_endpoint):  # type: ignore[no-untyped-def]  # noqa: F811
    from workspace.config import S3Settings

    return replace(settings, s3=S3Settings(endpoint=moto_endpoint, access_key="testing", secret_key="testing",
                                           bucket=f"media-{uuid.uuid4().hex[:12]}", secure=False))


def test_upload_store_serve_on_s3(s3_settings):
    from litestar.testing import TestClient

    from workspace.app import create_app
    from workspace.media.s3 import S3MediaStore
    from workspace.runtime import build_runtime

    rt = build_runtime(s3_settings, watch_policy=False)
    try:
        assert isinstance(rt.media, S3MediaStore)
        app = create_app(s3_settings, runtime=rt)
        with TestClient(app, base_url="http://testserver.local") as client:
            client.follow_redirects = False
            world, pid = _project(client, rt)
            png, wav_like_bad = png_bytes(), HTML
            r = _upload(client, "acme", pid, [("s3.png", png)])
            assert r.status_code == 303, _error(r)
            src = _media_src(client, "acme", pid)
            assert src.startswith("http://127.0.0.1:") and "X-Amz-Signature" in src
            with NO_PROXY.open(src, timeout=10) as response:
                assert response.read() == png
                assert response.headers["Content-Type"] == "image/png"
            r = _upload(client, "acme", pid, [("b.png", png_bytes((1, 1, 1))), ("x.png", wav_like_bad)])
            assert r.status_code == 400
            assert len(list(rt.media.list_keys(world.tenant_id))) == 1
            assert len(_tasks(rt, world)) == 1
            assert client.get(f"/media/{world.tenant_id}/uploads/1/s3.png?exp=1&sig=x").status_code == 404
    finally:
        rt.close()


def test_data_manager_shows_pillow_thumbnails_of_image_tasks(client, runtime):
    world, pid = _project(client, runtime)
    big = io.BytesIO()
    Image.new("RGB", (1200, 800), (20, 120, 200)).save(big, "PNG")
    assert _upload(client, "acme", pid, [("big.png", big.getvalue())]).status_code == 303
    page = client.get(f"/t/acme/projects/{pid}/data")
    assert page.status_code == 200
    src = re.search(r'class="dm-thumb" src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    thumb = client.get(src)
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) <= 160 and image.size == (160, 107)
    # Made once, kept in the media store next to the original; the next page view reuses it.
    assert any(k.startswith("thumbs/uploads/") for k in runtime.media.list_keys(world.tenant_id, "thumbs/"))
    again = client.get(f"/t/acme/projects/{pid}/data")
    assert 'class="dm-thumb"' in again.text
