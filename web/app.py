"""The HTTP side of Relay (aiohttp): HLS files, the status API, the page (RFC 8216 section 4, 6.2).

It runs as its own process beside the trio relay and shares nothing with it but files: the HLS
folder the relay writes (atomically) and a status snapshot the relay rewrites about once a second,
typed and versioned by relay/status_schema.py (the one relay module imported here: it imports
neither trio nor aiohttp). Never import trio or relay's trio code here.

- ``/hls/{name}/{file}``: ``index.m3u8`` (no-cache, gzip when accepted) and ``*.ts`` segments
  (immutable: a segment URI is never reused), with CORS. Names are matched by strict regexes
  and the file must be a regular file inside the HLS folder, so no path escapes it.
- ``/hls/{name}/ll.m3u8``, ``init.mp4`` and its parts and segments: LL-HLS with blocking
  reload (web/ll.py), learned of by inotify (web/watch.py).
- ``/api/streams``: the snapshot's streams (every schema field), plus what only this process
  knows (HLS viewers, requests and bytes served, the HLS push's state); ``/healthz``: 200 while
  the snapshot is fresh.
- ``/api/streams/{name}/thumbnail.jpg``: the JPEG the relay's thumbnail driver keeps current.
- ``/metrics``: Prometheus text format (web/metrics.py).
- ``/``: the page; ``/static/hls.min.js`` from ``web/node_modules`` (``make web``; a wheel built
  after it carries the file, the Docker image copies it there). Without it: a 404 that says so,
  and the page says so too (Safari still plays natively).

With a token (web/auth.py) /api/ and /metrics need ``Authorization: Bearer``. HLS push to an
origin (web/push.py) runs in this process too, driven by the snapshot's ``hls_push`` URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_response import ContentCoding
from prometheus_client import CollectorRegistry

from relay.status_schema import (
    MAX_SNAPSHOT_BYTES,
    Snapshot,
    SnapshotError,
    StreamSnapshot,
    decode_snapshot,
)
from web.auth import bearer_middleware
from web.control import RelayRequests
from web.ll import LL_FILE_RE, RELAY_SOCKET, LlServer
from web.metrics import CONTENT_TYPE, ServingStats, SnapshotCollector, make_registry, render
from web.push import PushManager
from web.watch import Watcher

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
HLS_JS = WEB_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"
HLS_JS_MISSING = ("hls.js is not installed, so the page cannot play HLS in this browser: run "
                  "`make web` (npm ci in web/) before starting the relay or building its package\n")
"""The 404 body: what to do, never a path of this machine."""

FRESH_SECONDS = 10.0
CLIENT_MAX_SIZE = 4096
HANDLER_ARGS = {"max_line_size": 4096, "max_field_size": 4096, "max_headers": 64}
"""Request line and header limits (aiohttp's RequestHandler arguments, set on the app)."""

NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
FILE_RE = r"(?:index\.m3u8|[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.ts)"
STATIC_RE = r"[a-z0-9][a-z0-9_-]{0,63}\.(?:js|css)"
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]+(?:\s*,\s*[A-Za-z0-9-]+)*")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
PLAYLIST_CACHE = "no-cache"
SEGMENT_CACHE = "public, max-age=86400, immutable"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range",
}
PAGE_CSP = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
"""Script sources are left open on purpose: browser test tools (Playwright) evaluate strings."""

HLS_DIR_KEY = web.AppKey("hls_dir", Path)
STATUS_KEY: web.AppKey[Statuses] = web.AppKey("status")
HLS_JS_KEY = web.AppKey("hls_js", Path)
THUMBNAILS_KEY: web.AppKey[Path | None] = web.AppKey("thumbnails")
SERVING_KEY = web.AppKey("serving", ServingStats)
PUSH_KEY = web.AppKey("push", PushManager)
METRICS_KEY: web.AppKey[CollectorRegistry] = web.AppKey("metrics")
WATCHER_KEY = web.AppKey("watcher", Watcher)
REQUESTS_KEY = web.AppKey("requests", RelayRequests)
THUMBNAIL_FRESH = 2.0
"""A thumbnail younger than this (seconds) is served as it is; an older one is asked for anew."""
THUMBNAIL_WAIT = 5.0
"""How long a thumbnail request waits for the relay (a keyframe may be one GOP away)."""
LL_KEY = web.AppKey("ll", LlServer)
_NAME = re.compile(NAME_RE)
log = logging.getLogger("web")


class StatusFile:
    """The relay's snapshot, decoded (and checked) only when the file changes.

    A snapshot this process cannot use (too large, not JSON, another schema version, a field of
    the wrong type) reads as none: /api/streams and /healthz answer 503, ``relay_status_up`` is
    0. ``problem`` says why in one line, logged once each time it changes.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.problem: str | None = None
        self._key: tuple[int, int, int] | None = None
        self._snapshot: Snapshot | None = None

    def read(self) -> Snapshot | None:
        """The latest usable snapshot, or None."""
        try:
            st = os.stat(self.path)
        except OSError:  # none yet: stale, not unusable
            self._key, self._snapshot, self.problem = None, None, None
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._key:
            self._key = key
            self._snapshot, problem = self._load()
            if problem != self.problem and problem is not None:
                log.error("status snapshot %s: %s", self.path, problem)
            self.problem = problem
        return self._snapshot

    def _load(self) -> tuple[Snapshot | None, str | None]:
        try:
            with open(self.path, "rb") as f:
                return decode_snapshot(f.read(MAX_SNAPSHOT_BYTES + 1)), None
        except OSError as exc:
            return None, f"cannot read it: {exc.strerror or type(exc).__name__}"
        except SnapshotError as exc:
            return None, str(exc)

    def fresh(self) -> bool:
        snapshot = self.read()
        if snapshot is None:
            return False
        return abs(self.clock() - snapshot.updated) <= FRESH_SECONDS  # same machine: no skew


class Statuses:
    """The snapshots of every media process (one per worker of ``relay run --workers N``) read
    as one: streams in config order, relay-wide disk errors summed, ``updated`` the oldest.

    A worker without a usable snapshot (starting, restarting, unreadable) leaves its streams out
    and makes the whole stale: /healthz answers 503 until every worker reports. The merge is
    made again only when a file changed (``StatusFile.read`` returns the same object until then).
    """

    def __init__(self, paths: Sequence[Path], clock: Callable[[], float] = time.time) -> None:
        self.files = [StatusFile(path, clock) for path in paths]
        self._parts: list[Snapshot | None] = []
        self._merged: Snapshot | None = None

    @property
    def problem(self) -> str | None:
        """Why a snapshot is unusable (the first such), naming its file when there are several."""
        for file in self.files:
            if file.problem is not None:
                return file.problem if len(self.files) == 1 else f"{file.path}: {file.problem}"
        return None

    def read(self) -> Snapshot | None:
        """The merged snapshot, or None while no worker has a usable one."""
        parts = [file.read() for file in self.files]
        if len(parts) == 1:
            return parts[0]
        if len(parts) != len(self._parts) or any(
                new is not old for new, old in zip(parts, self._parts)):
            self._parts = parts
            self._merged = _merge([p for p in parts if p is not None])
        return self._merged

    def fresh(self) -> bool:
        return all(file.fresh() for file in self.files)


def _merge(parts: list[Snapshot]) -> Snapshot | None:
    if not parts:
        return None
    streams = sorted((s for part in parts for s in part.streams), key=lambda s: s.position)
    return Snapshot(updated=min(p.updated for p in parts), streams=tuple(streams),
                    disk_errors=sum(p.disk_errors for p in parts),
                    disk_error=next((p.disk_error for p in parts if p.disk_error), None))


def _accepts_gzip(header: str) -> bool:
    """True if an Accept-Encoding header allows gzip (RFC 9110 section 12.5.3)."""
    star = False
    for item in header.lower().split(","):
        coding, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding.strip() in ("gzip", "x-gzip"):
            return q > 0
        if coding.strip() == "*":
            star = q > 0
    return star


def _hls_file(request: web.Request) -> Path:
    """The file a /hls/ request names, if it is a regular file inside the HLS folder."""
    root: Path = request.app[HLS_DIR_KEY]
    path = root / request.match_info["name"] / request.match_info["file"]
    try:
        st = os.lstat(path)
        inside = path.resolve(strict=True).is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        raise web.HTTPNotFound() from None
    if not stat.S_ISREG(st.st_mode) or not inside:
        raise web.HTTPNotFound()
    return path


async def hls(request: web.Request) -> web.StreamResponse:
    path = _hls_file(request)
    if path.suffix == ".m3u8":
        try:
            body = path.read_bytes()  # small, and replaced atomically by the relay
        except OSError:
            raise web.HTTPNotFound() from None
        response = web.Response(body=body, content_type=PLAYLIST_TYPE, charset=None)
        response.headers["Cache-Control"] = PLAYLIST_CACHE
        response.headers["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            response.enable_compression(ContentCoding.gzip)
        return response
    return web.FileResponse(
        path, headers={"Content-Type": SEGMENT_TYPE, "Cache-Control": SEGMENT_CACHE}
    )


async def hls_preflight(request: web.Request) -> web.Response:
    headers = {
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Max-Age": "86400",
    }
    wanted = request.headers.get("Access-Control-Request-Headers", "").strip()
    if wanted and _HEADER_LIST.fullmatch(wanted):
        headers["Access-Control-Allow-Headers"] = wanted
    return web.Response(status=204, headers=headers)


def _public_stream(app: web.Application, stream: StreamSnapshot) -> dict[str, Any]:
    """A snapshot stream as /api/streams shows it: every schema field, the push URL replaced
    by its redacted state, and the figures only this process knows."""
    push = app[PUSH_KEY].stats.get(stream.name)
    # made when asked for (the relay decodes a keyframe then), so offered for any video stream
    thumbnail = (app[THUMBNAILS_KEY] is not None
                 and any(track.kind == "video" for track in stream.tracks))
    return {
        **msgspec.to_builtins(stream),
        "hls_push": push.as_json() if push is not None else None,
        **app[SERVING_KEY].figures(stream.name),
        "thumbnail": f"/api/streams/{stream.name}/thumbnail.jpg" if thumbnail else None,
    }


async def streams(request: web.Request) -> web.Response:
    snapshot = request.app[STATUS_KEY].read()
    if snapshot is None:
        return web.json_response([], status=503, headers={"Cache-Control": "no-store"})
    body = [_public_stream(request.app, stream) for stream in snapshot.streams]
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _thumbnail_file(app: web.Application, name: str) -> Path | None:
    folder = app[THUMBNAILS_KEY]
    if folder is None or not _NAME.fullmatch(name):
        return None
    path = folder / f"{name}.jpg"
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            return path
    except OSError:
        pass
    return None


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The stream's JPEG, asked of the relay now unless it is younger than THUMBNAIL_FRESH.

    The relay decodes thumbnails only for this request (``thumb NAME`` on its control socket);
    the answer is the file it renews, awaited by inotify for up to THUMBNAIL_WAIT seconds (the
    older picture, or a 404, after that).
    """
    app = request.app
    name = request.match_info["name"]
    folder = app[THUMBNAILS_KEY]
    if folder is not None and _NAME.fullmatch(name):
        wanted = folder / f"{name}.jpg"

        def fresh() -> bool:
            try:
                return os.stat(wanted).st_mtime >= time.time() - THUMBNAIL_FRESH
            except OSError:
                return False

        if not fresh() and app[REQUESTS_KEY].request("thumb", name):
            await app[WATCHER_KEY].wait_for(wanted, fresh, THUMBNAIL_WAIT)
    path = _thumbnail_file(app, name)
    if path is None:
        raise web.HTTPNotFound(text="no thumbnail (yet) for this stream\n")
    try:
        data = path.read_bytes()  # small, replaced atomically by the relay
    except OSError:
        raise web.HTTPNotFound() from None
    return web.Response(body=data, content_type="image/jpeg",
                        headers={"Cache-Control": "no-cache"})


async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[METRICS_KEY])
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def count_served(request: web.Request, response: web.StreamResponse) -> None:
    """Count HLS bodies as they are sent (on_response_prepare: the length is known by now)."""
    if (request.method != "GET" or response.status not in (200, 206)
            or not request.path.startswith("/hls/")):
        return
    name = request.match_info.get("name")
    file = request.match_info.get("file")
    if name is None or file is None:
        return
    client = f"{request.remote} {request.headers.get('User-Agent', '')[:256]}"
    request.app[SERVING_KEY].served(name, file.endswith(".m3u8"), response.content_length or 0,
                                    client)


async def run_push(app: web.Application) -> AsyncIterator[None]:
    """Run the HLS push manager beside the server (cleanup context)."""
    task = asyncio.create_task(app[PUSH_KEY].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_watcher(app: web.Application) -> AsyncIterator[None]:
    """Run the process's inotify Watcher beside the server (cleanup context)."""
    task = asyncio.create_task(app[WATCHER_KEY].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    app[WATCHER_KEY].close()


def _relay_socket(statuses: Statuses, name: str) -> Path | None:
    """The ``relay.sock`` beside the snapshot that lists stream ``name``."""
    for file in statuses.files:
        snapshot = file.read()
        if snapshot is not None and any(stream.name == name for stream in snapshot.streams):
            return file.path.parent / RELAY_SOCKET
    return None


async def _close_requests(app: web.Application) -> None:
    app[REQUESTS_KEY].close()


async def healthz(request: web.Request) -> web.Response:
    status = request.app[STATUS_KEY]
    if status.fresh():
        return web.Response(text="ok", headers={"Cache-Control": "no-store"})
    text = ("stale: the relay has not updated its status for 10 s" if status.problem is None
            else f"unusable status snapshot: {status.problem}")
    return web.Response(status=503, text=text, headers={"Cache-Control": "no-store"})


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_CSP},
    )


async def hls_js(request: web.Request) -> web.StreamResponse:
    path: Path = request.app[HLS_JS_KEY]
    if not path.is_file():
        raise web.HTTPNotFound(text=HLS_JS_MISSING, headers={"Cache-Control": "no-store"})
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


async def static(request: web.Request) -> web.StreamResponse:
    path = STATIC_DIR / request.match_info["file"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


@web.middleware
async def common_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS on /hls/ (errors included) and nosniff everywhere."""
    try:
        response = await handler(request)
    except web.HTTPException as error:
        response = error
        if request.path.startswith("/hls/"):
            response.headers.update(CORS_HEADERS)
        response.headers["X-Content-Type-Options"] = "nosniff"
        raise
    if request.path.startswith("/hls/"):
        response.headers.update(CORS_HEADERS)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def make_app(
    hls_dir: Path,
    status_file: Path | Sequence[Path],
    *,
    thumbnails_dir: Path | None = None,
    token: str | None = None,
    protect_hls: bool = False,
    push: bool = True,
    hls_js_path: Path = HLS_JS,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the web application.

    Args:
        hls_dir: the folder holding one sub-folder of HLS files per stream.
        status_file: the relay's JSON snapshot, or one per media process (merged).
        thumbnails_dir: where the relay writes ``NAME.jpg`` thumbnails (None: none served).
        token: the bearer token /api/ and /metrics require (None: open).
        protect_hls: with a token, require it on /hls/ too.
        push: run the HLS push to the origins the snapshot names.
        hls_js_path: hls.min.js to serve at /static/hls.min.js.
        clock: Unix time, to judge the snapshot's freshness.

    Returns:
        The aiohttp application (request limits included).
    """
    middlewares: list[Middleware] = [common_headers]
    if token is not None:
        middlewares.append(bearer_middleware(token, protect_hls))
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=middlewares,
                          handler_args=HANDLER_ARGS)
    app[HLS_DIR_KEY] = hls_dir
    status = app[STATUS_KEY] = Statuses(
        [status_file] if isinstance(status_file, Path) else status_file, clock)
    app[HLS_JS_KEY] = hls_js_path
    app[THUMBNAILS_KEY] = thumbnails_dir
    serving = app[SERVING_KEY] = ServingStats()
    watcher = app[WATCHER_KEY] = Watcher()
    manager = app[PUSH_KEY] = PushManager(status.read, hls_dir,
                                          lambda name: _NAME.fullmatch(name) is not None,
                                          watcher, [file.path for file in status.files])
    app[METRICS_KEY] = make_registry(
        SnapshotCollector(status.read, serving, manager.stats.get, clock))
    ll = app[LL_KEY] = LlServer(hls_dir, watcher,
                                lambda name: app[REQUESTS_KEY].request("ll-want", name),
                                _accepts_gzip)
    app.cleanup_ctx.append(run_watcher)
    app[REQUESTS_KEY] = RelayRequests(lambda name: _relay_socket(status, name))
    app.on_cleanup.append(_close_requests)
    app.on_response_prepare.append(count_served)
    if push:
        app.cleanup_ctx.append(run_push)
    hls_path = f"/hls/{{name:{NAME_RE}}}/{{file:{FILE_RE}}}"
    app.router.add_get(hls_path, hls)
    app.router.add_route("OPTIONS", hls_path, hls_preflight)
    ll_path = f"/hls/{{name:{NAME_RE}}}/{{file:{LL_FILE_RE}}}"
    app.router.add_get(ll_path, ll.handle)
    app.router.add_route("OPTIONS", ll_path, hls_preflight)
    app.router.add_get("/api/streams", streams)
    app.router.add_get(f"/api/streams/{{name:{NAME_RE}}}/thumbnail.jpg", thumbnail)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", page)
    app.router.add_get("/static/hls.min.js", hls_js)
    app.router.add_get(f"/static/{{file:{STATIC_RE}}}", static)
    return app
