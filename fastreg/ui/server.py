"""`fastreg ui`: a read-only aiohttp server of HTML pages rendered on the server (they work with
JavaScript off, and with curl) over a small JSON API. Registry reads are synchronous (git, the
transfer session) and run in a thread pool; the event loop only parses requests and writes
responses.

Safety: every name shown is user data and is escaped by the templates (autoescape); a file is
served as an image, as plain text or as bytes, never as HTML; a Content-Security-Policy allows only
this server's own scripts, styles and images; a request path with '..', an empty part, NUL or an
absolute path is a 404; when bound to a loopback address, a request whose Host is not that
address is refused (a web page elsewhere cannot reach the server through a DNS name of its own).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from fastreg.errors import (
    FastregError,
    IntegrityError,
    MissingDataError,
    MissingRevisionError,
    PathError,
    UsageError,
    one_line,
)
from fastreg.text import count, human
from fastreg.ui import thumbs
from fastreg.ui.model import Registry, TooLarge, web_path, web_rev

REGISTRY = web.AppKey("registry", Registry)
POOL = web.AppKey("pool", ThreadPoolExecutor)
HOSTS = web.AppKey("hosts", set)  # allowed Host headers; empty: any
JINJA = web.AppKey("jinja", jinja2.Environment)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# -- URLs the pages link to ------------------------------------------------------------------------
def _q(rev: str | None, **more: Any) -> str:
    params = {k: v for k, v in (("rev", rev), *more.items()) if v not in (None, "", 1)}
    return f"?{urlencode(params)}" if params else ""


def browse_url(path: str, rev: str | None = None, page: int | None = None) -> str:
    return f"/browse/{quote(path)}{_q(rev, page=page)}"


def raw_url(path: str, rev: str | None = None) -> str:
    return f"/raw/{quote(path)}{_q(rev)}"


def thumb_url(path: str, rev: str | None = None) -> str:
    return f"/thumb/{quote(path)}{_q(rev)}"


def diff_url(a: str | None, b: str | None, path: str | None = None, page: int | None = None) -> str:
    params = {k: v for k, v in (("a", a), ("b", b), ("path", path), ("page", page)) if v not in (None, "", 1)}
    return "/diff" + (f"?{urlencode(params)}" if params else "")


def _when(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("fastreg.ui", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["human"] = human
    env.filters["when"] = _when
    env.filters["plural"] = count  # {{ n|plural("file") }}: "1 file", "2 files"
    env.globals.update(browse_url=browse_url, raw_url=raw_url, thumb_url=thumb_url, diff_url=diff_url)
    return env


# -- the application -------------------------------------------------------------------------------
def make_app(registry: Registry, hosts: set[str] | None = None, jobs: int = 8) -> web.Application:
    """The server's application (hosts: the Host headers it answers; None: any)."""
    app = web.Application(middlewares=[_guard])
    app[REGISTRY] = registry
    app[POOL] = ThreadPoolExecutor(jobs, thread_name_prefix="fastreg-ui")
    app[HOSTS] = hosts if hosts is not None else set()
    app[JINJA] = _env()
    app.add_routes([
        web.get("/", versions_page),
        web.get("/browse", folder_page),
        web.get(r"/browse/{path:[\s\S]*}", folder_page),
        web.get("/diff", diff_page),
        web.get(r"/raw/{path:[\s\S]+}", raw),
        web.get(r"/thumb/{path:[\s\S]+}", thumb),
        web.get("/api/versions", api_versions),
        web.get("/api/tree", api_tree),
        web.get(r"/api/tree/{path:[\s\S]*}", api_tree),
        web.get(r"/api/file/{path:[\s\S]+}", api_file),
        web.get("/api/diff", api_diff),
        web.static("/static", str(_static_dir()), show_index=False, follow_symlinks=False),
    ])
    app.on_cleanup.append(_close)
    return app


def _static_dir() -> Any:
    from importlib.resources import files

    return files("fastreg.ui") / "static"


async def _close(app: web.Application) -> None:
    app[POOL].shutdown(wait=False, cancel_futures=True)
    await asyncio.get_running_loop().run_in_executor(None, app[REGISTRY].close)


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(request.app[POOL], partial(fn, *args))


def _status(exc: FastregError) -> tuple[int, str]:
    if isinstance(exc, PathError | MissingRevisionError):
        return 404, "Not found"
    if isinstance(exc, TooLarge):
        return 413, "Too large to show"
    if isinstance(exc, thumbs.NoPreview):
        return 404, "No preview"
    if isinstance(exc, MissingDataError):
        return 502, "Data missing from the registry's remote"
    if isinstance(exc, IntegrityError):
        return 502, "Damaged data on the registry's remote"
    return 502, "Cannot read the registry"


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    hosts = request.app[HOSTS]
    if hosts and request.host not in hosts:
        return _headers(web.Response(status=421, text=f"this server answers for {sorted(hosts)[0]} only\n"))
    api = request.path.startswith("/api/")
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title = "Not found" if exc.status == 404 else exc.reason
        resp = _error(request, exc.status, title, "nothing here" if exc.status == 404 else exc.reason, api)
    except FastregError as exc:
        status, title = _status(exc)
        resp = _error(request, status, title, one_line(exc.message), api)
    except Exception as exc:  # a bug: one line on the server's stderr, no traceback to the browser
        print(f"fastreg ui: internal error on {request.path}: {type(exc).__name__}: {one_line(str(exc))}",
              file=sys.stderr)
        resp = _error(request, 500, "Internal error", f"{type(exc).__name__}: {one_line(str(exc))}", api)
    return _headers(resp)


def _headers(resp: web.StreamResponse) -> web.StreamResponse:
    for k, v in HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


def _error(request: web.Request, status: int, title: str, message: str, api: bool) -> web.Response:
    if api:
        return web.json_response({"error": message}, status=status)
    if request.path.startswith(("/thumb/", "/raw/")):
        return web.Response(status=status, text=message + "\n")
    return _page(request, "error.html", {"title": title, "message": message, "status": status}, status)


def _page(request: web.Request, template: str, ctx: dict[str, Any], status: int = 200) -> web.Response:
    reg = request.app[REGISTRY]
    body = request.app[JINJA].get_template(template).render(url=reg.share_url, **ctx)
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def _path(request: web.Request) -> str:
    return web_path(request.match_info.get("path", ""))


def _rev(request: web.Request, name: str = "rev") -> str | None:
    return web_rev(request.query.get(name))


def _page_no(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")))
    except ValueError:
        return 1


# -- pages -----------------------------------------------------------------------------------------
async def versions_page(request: web.Request) -> web.Response:
    doc = await _run(request, request.app[REGISTRY].versions, _page_no(request))
    return _page(request, "versions.html", {"title": "Versions", "doc": doc})


async def folder_page(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY]
    path, rev = _path(request), _rev(request)
    doc = await _run(request, reg.folder, rev, path, _page_no(request))
    crumbs = _crumbs(path)
    if doc["kind"] == "file":
        sibs = await _run(request, _siblings, reg, rev, path)
        return _page(request, "file.html", {"title": path, "doc": doc, "crumbs": crumbs, "rev": rev,
                                             "prev": sibs[0], "next": sibs[1], "pillow": thumbs.available(),
                                             "max_pixels": thumbs.MAX_PIXELS})
    images = [e for e in doc["entries"] if e["kind"] == "image"]
    others = [e for e in doc["entries"] if e["kind"] != "image"]
    return _page(request, "folder.html", {"title": path or "/", "doc": doc, "crumbs": crumbs, "rev": rev,
                                           "images": images, "others": others, "pillow": thumbs.available()})


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = path.split("/") if path else []
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _siblings(reg: Registry, rev: str | None, path: str) -> tuple[str | None, str | None]:
    """The files before and after path in its folder (for the file page's arrows)."""
    parent = path.rpartition("/")[0]
    try:
        doc = reg.folder(rev, parent, 1)
    except FastregError:
        return None, None
    files = [e["path"] for e in doc["entries"] if e["type"] == "file"]
    if path not in files:
        return None, None
    i = files.index(path)
    return (files[i - 1] if i else None), (files[i + 1] if i + 1 < len(files) else None)


async def diff_page(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY]
    a, b = _rev(request, "a"), _rev(request, "b")
    path = web_path(request.query.get("path", "")) or None
    refs = [name for name, _, _ in await _run(request, reg.refs)]
    if a is None:
        return _page(request, "diff.html", {"title": "Diff", "doc": None, "refs": refs, "a": a, "b": b,
                                             "path": path})
    doc = await _run(request, reg.diff_doc, a, b, path, _page_no(request))
    return _page(request, "diff.html", {"title": f"{a} → {b or 'default branch'}", "doc": doc, "refs": refs,
                                         "a": a, "b": b, "path": path})


async def raw(request: web.Request) -> web.Response:
    from fastreg.ui.model import content_type

    path, rev = _path(request), _rev(request)
    data, digest = await _run(request, request.app[REGISTRY].read, rev, path)
    ctype = content_type(path)
    headers = {"Content-Disposition": "inline" if ctype.startswith("image/") else "attachment"}
    if digest:
        headers["ETag"] = f'"{digest}"'
    return web.Response(body=data, content_type=ctype.split(";")[0],
                        charset="utf-8" if ctype.startswith("text/") else None, headers=headers)


async def thumb(request: web.Request) -> web.Response:
    path, rev = _path(request), _rev(request)
    jpeg = await _run(request, request.app[REGISTRY].thumbnail, rev, path)
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "max-age=300"})


# -- the JSON API ----------------------------------------------------------------------------------
async def api_versions(request: web.Request) -> web.Response:
    return web.json_response(await _run(request, request.app[REGISTRY].versions, _page_no(request)))


async def api_tree(request: web.Request) -> web.Response:
    return web.json_response(await _run(request, request.app[REGISTRY].folder, _rev(request), _path(request),
                                        _page_no(request)))


async def api_file(request: web.Request) -> web.Response:
    return web.json_response(await _run(request, request.app[REGISTRY].file, _rev(request), _path(request)))


async def api_diff(request: web.Request) -> web.Response:
    a = _rev(request, "a")
    if a is None:
        raise PathError("give a=REV (and b=REV; default: the default branch)")
    path = web_path(request.query.get("path", "")) or None
    return web.json_response(await _run(request, request.app[REGISTRY].diff_doc, a, _rev(request, "b"), path,
                                        _page_no(request)))


# -- serving ---------------------------------------------------------------------------------------
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _OneLine(logging.Handler):
    """aiohttp's server log (a malformed or over-long request: its parser's error with a traceback)
    as one line on stderr, whatever a client sends."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        what = record.getMessage() + (f": {exc}" if exc is not None else "")
        print(f"fastreg ui: {one_line(' '.join(what.split()))[:300]}", file=sys.stderr)


async def serve(registry: Registry, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve until cancelled (Ctrl-C); ready(url) once listening."""
    log = logging.getLogger("aiohttp.server")
    log.handlers[:] = [_OneLine()]
    log.propagate = False
    hosts: set[str] = set()
    app = make_app(registry, hosts)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            import errno
            import socket

            if isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise UsageError(f"--host {host}: not an address of this machine ({exc.strerror or exc}); give "
                                 "127.0.0.1, a name it resolves, or an address of one of its interfaces") from None
            raise PathError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "give another --port (0: any free one)") from None
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        if host in LOOPBACK:
            hosts.update({f"{shown}:{bound}", f"localhost:{bound}", f"127.0.0.1:{bound}"})
        ready(f"http://{shown}:{bound}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
