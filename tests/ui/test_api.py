"""`fastreg ui`'s JSON API and pages through aiohttp's test client, on a real registry (local
remote) and with the real command in a process of its own."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fastreg import userdirs
from fastreg.objects.digest import digest_bytes
from fastreg.ui import model
from fastreg.ui.model import Registry
from fastreg.ui.server import HOSTS, make_app
from tests.ui.conftest import HOSTILE, Demo


async def _client(registry: Registry, hosts: set[str] | None = None) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(make_app(registry, hosts)))
    await client.start_server()
    return client


@pytest.fixture
async def client(demo: Demo) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    from fastreg.repo.project import Project

    c = await _client(Registry(str(demo.root), Project(demo.root)))
    try:
        yield c
    finally:
        await c.close()


async def _json(client: TestClient, url: str, status: int = 200) -> dict:  # type: ignore[type-arg]
    r = await client.get(url)
    assert r.status == status, await r.text()
    assert r.content_type == "application/json"
    return await r.json()  # type: ignore[no-any-return]


async def settled_versions(client: TestClient, url: str = "/api/versions") -> dict:  # type: ignore[type-arg]
    """The versions document once no commit's changes are still being computed (a page waits
    STATS_WAIT for them; a busy machine may need a second look)."""
    for _ in range(300):
        doc = await _json(client, url)
        if not any(c.get("pending") for c in doc["commits"]):
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError("changes still pending after 30 s")


async def test_versions_show_every_ref_and_what_each_commit_changed(client: TestClient, demo: Demo) -> None:
    doc = await settled_versions(client)
    assert {(r["name"], r["kind"]) for r in doc["refs"]} == {("main", "branch"), ("huge", "branch"),
                                                               ("v1", "tag"), ("v2", "tag")}
    by_tag = {r["name"]: c for c in doc["commits"] for r in c["refs"]}
    v1, v2 = by_tag["v1"], by_tag["v2"]
    assert v1["files"] == len(demo.v1_images) and v1["changes"]["added"]["files"] == len(demo.v1_images)
    assert v1["bytes"] == v1["changes"]["added"]["bytes"] == sum(demo.v1_sizes.values())
    assert v2["parents"] == [v1["commit"]]
    assert v2["files"] == len(demo.v1_images) + len(demo.added) + 1 - 1  # + notes.txt - the deleted one
    ch = v2["changes"]
    assert (ch["added"]["files"], ch["deleted"]["files"], ch["modified"]["files"]) == (len(demo.added) + 1, 1, 1)
    assert doc["workspace"] == {"paths": 1, "changed": []}
    assert doc["head"] == v2["commit"]


async def test_the_workspace_status_shows_what_is_not_added_yet(client: TestClient, demo: Demo) -> None:
    extra = demo.root / "pets" / "cats" / "unadded.png"
    extra.write_bytes(b"not added yet")
    try:
        doc = await _json(client, "/api/versions")
    finally:
        extra.unlink()
    assert doc["workspace"]["changed"] == [{"path": "pets", "state": "changed", "added": 1, "modified": 0,
                                            "deleted": 0}]


async def test_a_folder_lists_its_entries_with_sizes_and_counts_and_pages(
        client: TestClient, demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    root = await _json(client, "/api/tree?rev=v1")
    assert [(e["name"], e["type"], e["tracked"]) for e in root["entries"]] == [
        ("pets", "dir", True), (".gitattributes", "file", False), ("README.md", "file", False)]  # as `list` has them
    assert root["entries"][0]["files"] == len(demo.v1_images)
    cats = await _json(client, "/api/tree/pets/cats?rev=v1")
    want = sorted(p for p in demo.v1_images if p.startswith("pets/cats/"))
    assert [e["path"] for e in cats["entries"]] == want
    assert [e["size"] for e in cats["entries"]] == [demo.v1_sizes[p] for p in want]
    assert all(e["kind"] == "image" for e in cats["entries"])
    pets = await _json(client, "/api/tree/pets?rev=v2")
    assert [e["name"] for e in pets["entries"]] == ["cats", "dogs", "notes.txt"]  # folders first
    monkeypatch.setattr(model, "PAGE", 3)
    page = await _json(client, "/api/tree/pets/cats?rev=v1&page=3")
    assert (page["page"], page["pages"], page["total"]) == (3, 3, 8)
    assert [e["path"] for e in page["entries"]] == want[6:]


async def test_a_file_has_its_digest_dimensions_and_the_commands_that_reach_it(client: TestClient,
                                                                               demo: Demo) -> None:
    path = "pets/cats/cats.00.png"
    doc = await _json(client, f"/api/file/{path}?rev=v2")
    data = (demo.root / path).read_bytes()  # the workspace is at v2
    assert (doc["size"], doc["digest"]) == (len(data), digest_bytes(data).hex())
    assert doc["image"] == {"format": "PNG", "width": 64, "height": 64, "mode": "RGB"}
    assert doc["commands"]["get"] == f"fastreg get {demo.root} {path} --rev v2"
    assert doc["commands"]["import"] == f"fastreg import {demo.root} {path} --rev v2"
    old = await _json(client, f"/api/file/{path}?rev=v1")
    assert old["image"]["width"] == 48 and old["digest"] != doc["digest"]
    text = await _json(client, "/api/file/pets/notes.txt?rev=v2")
    assert text["preview"]["lines"][:2] == ["line 0: <b>not bold</b>", "line 1: <b>not bold</b>"]
    assert len(text["preview"]["lines"]) == model.PREVIEW_LINES and text["preview"]["more"] is True
    r = await client.get("/raw/pets/notes.txt?rev=v2")
    assert r.content_type == "text/plain" and await r.read() == (demo.root / "pets/notes.txt").read_bytes()


async def test_a_copied_command_works(client: TestClient, demo: Demo, tmp_path: Path) -> None:
    import shlex

    doc = await _json(client, "/api/tree/pets/dogs?rev=v1")
    cmd = [*shlex.split(doc["commands"]["get"]), "-o", str(tmp_path / "dogs")]
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "fastreg", *cmd[1:]], check=True,
                            capture_output=True)
    assert sorted(p.name for p in (tmp_path / "dogs").iterdir()) == sorted(
        p.rpartition("/")[2] for p in demo.v1_images if p.startswith("pets/dogs/"))


async def test_raw_bytes_are_the_files_and_never_served_as_html(client: TestClient, demo: Demo) -> None:
    hostile = f"pets/dogs/{HOSTILE}"
    r = await client.get(f"/raw/{hostile.replace(' ', '%20')}?rev=v2")
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert await r.read() == (demo.root / hostile).read_bytes()
    assert "script-src 'self'" in r.headers["Content-Security-Policy"] and r.headers["X-Content-Type-Options"] \
        == "nosniff"
    git_file = await client.get("/raw/README.md?rev=v1")
    assert git_file.content_type == "text/plain" and await git_file.read() == b"# demo registry\n"


async def test_thumbnails_are_small_jpegs_kept_by_content_digest(client: TestClient, demo: Demo) -> None:
    from PIL import Image

    r = await client.get("/thumb/pets/cats/cats.00.png?rev=v2")
    assert r.status == 200 and r.content_type == "image/jpeg"
    jpeg = await r.read()
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG" and img.size == (64, 64)
    digest = digest_bytes((demo.root / "pets/cats/cats.00.png").read_bytes()).hex()
    kept = userdirs.thumbs() / digest[:2] / f"{digest}.jpg"
    assert kept.read_bytes() == jpeg
    kept.write_bytes(b"\xff\xd8 the kept one")  # the next request is served from there
    assert await (await client.get("/thumb/pets/cats/cats.00.png?rev=v2")).read() == b"\xff\xd8 the kept one"
    kept.unlink()


async def test_a_huge_image_is_refused_a_thumbnail_but_shows_its_dimensions(client: TestClient) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = await client.get("/thumb/pets/huge/100mp.png?rev=huge")
    assert r.status == 404 and "10000x10000 pixels" in await r.text()
    doc = await _json(client, "/api/file/pets/huge/100mp.png?rev=huge")
    assert (doc["image"]["width"], doc["image"]["height"]) == (10000, 10000)
    page = await (await client.get("/browse/pets/huge/100mp.png?rev=huge")).text()
    assert "too large to show here" in page and 'class="full"' not in page
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) << 10
    assert grown < 80 << 20  # decoding it would take 100 MB


async def test_the_diff_between_two_versions_is_what_fastreg_diff_says(client: TestClient, demo: Demo) -> None:
    doc = await _json(client, "/api/diff?a=v1&b=v2")
    kinds: dict[str, list[str]] = {}
    for c in doc["changes"]:
        kinds.setdefault(c["kind"], []).append(c["path"])
    assert sorted(kinds["added"]) == sorted([*demo.added, "pets/notes.txt"])
    assert kinds["deleted"] == [demo.deleted] and kinds["modified"] == [demo.modified]
    cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "fastreg", "diff", "--repo",
                                                   str(demo.root), "v1", "v2"], capture_output=True, text=True,
                                  check=True)
    assert doc["summary_text"] == cli.stdout.splitlines()[-1]
    only_dogs = await _json(client, "/api/diff?a=v1&b=v2&path=pets/dogs")
    assert sorted(c["path"] for c in only_dogs["changes"]) == sorted([f"pets/dogs/{HOSTILE}", demo.deleted])
    page = await (await client.get("/diff?a=v1&b=v2")).text()
    assert page.count('class="change added"') == len(demo.added) + 1
    assert doc["summary_text"] in page


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


async def test_names_are_escaped_everywhere(client: TestClient) -> None:
    for url in ("/browse/pets/dogs?rev=v2", "/diff?a=v1&b=v2", f"/browse/pets/dogs/{quote(HOSTILE)}?rev=v2"):
        page = await (await client.get(url)).text()
        assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in page
        parsed = _Elements()
        parsed.feed(page)
        assert not [(t, a) for t, a in parsed.found if any(k.startswith("on") for k in a) or a.get("src") == "x"]
        assert [a["src"] for t, a in parsed.found if t == "script"] == ["/static/ui.js"]


async def _raw_get(client: TestClient, target: str, host: str | None = None) -> int:  # type: ignore[type-arg]
    """A request line sent as given (a client library would normalize '..' first)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{client.port}'}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    status = (await reader.readline()).split()[1]
    writer.close()
    return int(status)


@pytest.mark.parametrize("target", [
    "/browse/../../etc/passwd", "/browse/pets/../../../etc/passwd", "/raw/%2e%2e/%2e%2e/etc/passwd",
    "/raw/pets/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/browse//etc/passwd", "/raw//etc/passwd",
    "/browse/pets/%00", "/api/file/pets/cats/%00cats.00.png", "/browse/pets/./cats", "/api/tree/pets?rev=--output=x",
    "/browse/pets/not-there?rev=v1", "/browse/?rev=no-such-rev",
])
async def test_paths_outside_the_registry_are_not_found(client: TestClient, target: str) -> None:
    assert await _raw_get(client, target) == 404


async def test_a_request_for_another_host_name_is_refused(demo: Demo) -> None:
    c = await _client(Registry(str(demo.root)), hosts=set())
    try:
        c.server.app[HOSTS].add(f"127.0.0.1:{c.port}")  # as serve() fills it once the port is known
        assert await _raw_get(c, "/api/versions") == 200
        assert await _raw_get(c, "/api/versions", host="evil.example") == 421
    finally:
        await c.close()


async def test_a_registry_that_cannot_be_read_gets_a_page_that_says_so(demo: Demo, tmp_path: Path) -> None:
    c = await _client(Registry(str(tmp_path / "no-such-registry")))
    try:
        r = await c.get("/")
        page = await r.text()
        assert r.status == 502 and "Cannot read the registry" in page and "Traceback" not in page
        assert "cloning the registry" in page
        assert (await _json(c, "/api/versions", 502))["error"].startswith("cloning the registry")
    finally:
        await c.close()
    moved = demo.remote.with_name("remote-away")
    shutil.move(demo.remote, moved)
    try:
        c = await _client(Registry(str(demo.root)))
        try:
            r = await c.get("/thumb/pets/cats/new.1.jpg?rev=v2")
            assert r.status == 502 and "Traceback" not in await r.text()
            r = await c.get("/browse/pets/cats/new.2.jpg?rev=v2")
            page = await r.text()
            assert r.status == 502 and "Traceback" not in page and "Data missing from the registry" in page
        finally:
            await c.close()
    finally:
        shutil.move(moved, demo.remote)


def test_the_command_serves_until_interrupted_and_warns_off_loopback(demo: Demo) -> None:
    import urllib.request

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for host, warns in (("127.0.0.1", False), ("127.0.0.2", True)):
        p = subprocess.Popen([sys.executable, "-m", "fastreg", "ui", "--port", "0", "--host", host], cwd=demo.root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert p.stdout is not None
            line = p.stdout.readline()
            m = re.search(r"(http://[\d.]+:\d+/)", line)
            assert m, line
            with urllib.request.urlopen(m.group(1) + "api/versions", timeout=30) as r:
                assert {c["subject"] for c in json.load(r)["commits"]} >= {"pets v1", "pets v2"}
            for _ in range(2):  # an over-long request line: a 400 and one line on stderr, no traceback
                with socket.create_connection((host, int(m.group(1).rsplit(":", 1)[1].strip("/"))), 10) as s:
                    s.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert s.recv(12).startswith(b"HTTP/1.0 400")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            p.kill()
        assert p.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err
        assert ("no authentication" in err) is warns
        bad = [line for line in err.splitlines() if "Got more than" in line]
        assert len(bad) == 2 and all(line.startswith("fastreg ui: ") for line in bad), err
        assert len(err.splitlines()) == 2 + warns, err


def test_a_bad_target_is_one_error_line(demo: Demo, tmp_path: Path) -> None:
    for args, cwd in ((["ui", str(tmp_path / "nothing-here")], tmp_path), (["ui"], tmp_path),
                      (["ui", "--rev", "no-such-tag"], demo.root), (["ui", "--port", "70000"], demo.root),
                      (["ui", "--host", "nosuchhost.invalid"], demo.root)):
        p = subprocess.run([sys.executable, "-m", "fastreg", *args], cwd=cwd, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
        if "--host" in args:
            assert p.returncode == 2 and "--host nosuchhost.invalid" in lines[0] and "--port" not in lines[0]


async def test_readers_of_many_commits_are_closed_beyond_a_few(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "READERS_KEPT", 2)
    registry = Registry(str(demo.root))
    c = await _client(registry)
    try:
        for rev in ("v1", "v2", "huge", "v1"):
            assert (await c.get(f"/api/tree/pets?rev={rev}")).status == 200
        versions = await _json(c, "/api/versions")  # a reader for every commit in the history
        assert len(versions["commits"]) == 3
        assert len(registry._readers) == 2
    finally:
        await c.close()


async def test_the_versions_come_a_page_at_a_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "COMMITS", 2)
    first = await _json(client, "/api/versions")
    assert [c["subject"] for c in first["commits"]] == ["a 100-megapixel image", "pets v2"] and first["more"]
    second = await _json(client, "/api/versions?page=2")
    assert [c["subject"] for c in second["commits"]] == ["pets v1"] and not second["more"]
    assert second["workspace"] is None and second["refs"] == first["refs"]
    page = await (await client.get("/?page=2")).text()
    assert 'rel="prev" href="/"' in page and "pets v1" in page and "pets v2" not in page


def test_bytes_that_are_no_image_get_no_preview_and_a_plain_reason() -> None:
    from fastreg.ui import thumbs

    with pytest.raises(thumbs.NoPreview) as err:
        thumbs.make(os.urandom(2000), None)
    assert err.value.message == "not an image Pillow reads"


def test_a_name_with_a_newline_has_its_page_raw_bytes_file_api_and_thumbnail(
        tmp_path: Path, project: Path, run) -> None:
    from tests.ui.conftest import png

    name = "two\nlines.png"
    (project / "imgs").mkdir()
    (project / "imgs" / name).write_bytes(png(5))
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "imgs")
    run("push")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "one image"], cwd=project, check=True)

    asyncio.run(_newline_pages(project, name))


async def _newline_pages(project: Path, name: str) -> None:
    from fastreg.repo.project import Project
    from tests.ui.conftest import png

    c = await _client(Registry(str(project), Project(project)))
    try:
        path = quote(f"imgs/{name}")
        assert name in [e["name"] for e in (await _json(c, "/api/tree/imgs"))["entries"]]
        assert (await _json(c, f"/api/file/{path}"))["path"] == f"imgs/{name}"
        for url in (f"/browse/{path}", f"/raw/{path}", f"/thumb/{path}"):
            r = await c.get(url)
            assert r.status == 200, url
        assert (await (await c.get(f"/raw/{path}")).read()) == png(5)
        page = await (await c.get("/")).text()
        assert "1 tracked path," in page
    finally:
        await c.close()
