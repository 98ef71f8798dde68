"""LL-HLS serving: blocking playlist reload, delta updates, blocking preload (RFC 8216bis 6.2.5).

The relay's LL-HLS muxer writes, atomically, into the stream's HLS folder: ``init.mp4``, parts
``p{msn}.{i}.m4s``, whole segments ``s{msn}.m4s``, the playlists ``ll.m3u8`` and
``ll_skip.m3u8`` (the delta update, EXT-X-SKIP), and last ``ll.json``, which names the newest
part. This process learns of each part by inotify on ``ll.json`` (web/watch.py), keeps the
playlist bytes (and their gzip) in memory until the next notice, and answers every request
waiting for that part at once: 500 viewers cost one read and one compression per part.

The muxer runs on demand: each LL request asks for it (``ll-want NAME`` to the relay's control
socket, web/control.py, at most once a second per stream); a request that finds no ``ll.json``
yet waits for the muxer to start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import stat
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from web.watch import Watcher

LL_STATE = "ll.json"
LL_PLAYLIST = "ll.m3u8"
LL_DELTA = "ll_skip.m3u8"
RELAY_SOCKET = "relay.sock"
"""The relay's datagram socket, in the folder of its status snapshot."""
LL_FILE_RE = r"(?:ll\.m3u8|init\.mp4|p[0-9]{1,10}\.[0-9]{1,5}\.m4s|s[0-9]{1,10}\.m4s)"
_PART = re.compile(r"p([0-9]{1,10})\.([0-9]{1,5})\.m4s")
_SEGMENT = re.compile(r"s([0-9]{1,10})\.m4s")
_NUMBER = re.compile(r"[0-9]{1,10}")

START_SECONDS = 5.0
"""How long a request waits for a muxer started on demand to write its first ``ll.json``."""
MAX_STATE_BYTES = 4096
MAX_PLAYLIST_BYTES = 1 << 20
MAX_MEMORY_FILES = 64
MAX_MEMORY_FILE_BYTES = 2 << 20
"""Parts and init sections served from memory: the newest 64, each up to 2 MiB (a larger one,
a segment or a Range request is sent from its file)."""
MAX_WAITING = 10_000
"""Requests blocked at once, all streams together; more get 503 at once."""
BLOCK_TARGET_DURATIONS = 3
"""A blocked request waits this many target durations for its part, then gets 503."""
MAX_ACCEPT_VALUES = 64
"""Distinct Accept-Encoding values whose gzip answer is kept (bounded: a header is input)."""
SWEEP_SECONDS = 0.25
"""Held requests look at their deadlines this often when no part comes: one timer per stream,
not one per request (``asyncio.timeout`` per held request was 10 % of the web process's CPU at
500 viewers, docs/benchmarks.md)."""

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"
NO_CACHE = "no-cache"
"""Parts, segments and init too: a muxer restarted after a discontinuity numbers from 0 again,
so a URI may come back with other bytes (players fetch each part once anyway)."""
log = logging.getLogger("web.ll")


class LlState(msgspec.Struct, frozen=True):
    """``ll.json``: the newest part. ``part`` is -1 while segment ``msn`` has none complete."""

    msn: int
    part: int
    part_target: float
    target_duration: int
    version: int

    def reached(self, msn: int, part: int) -> bool:
        """True once part ``part`` of segment ``msn`` (or anything later) is written."""
        return self.msn > msn or (self.msn == msn and self.part >= part)

    @property
    def advance_part_limit(self) -> int:
        """RFC 8216bis 6.2.5.2: 3 / part target below one second, 3 otherwise."""
        return int(3 / self.part_target) if self.part_target < 1 else 3


def decode_state(data: bytes) -> LlState:
    """Parse ``ll.json``; ValueError names what is wrong."""
    if len(data) > MAX_STATE_BYTES:
        raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
    try:
        state = msgspec.json.decode(data, type=LlState)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.DecodeError:
        raise ValueError("not JSON") from None
    if state.version != 1:
        raise ValueError(f"version {state.version}, this web process reads 1")
    if state.msn < 0 or state.part < -1 or not 0.05 <= state.part_target <= 10:
        raise ValueError("msn, part or part_target out of range")
    if not 1 <= state.target_duration <= 3600:
        raise ValueError("target_duration out of range")
    return state


@dataclass(frozen=True, slots=True)
class Directives:
    """The delivery directives of a playlist request (RFC 8216bis 6.2.5)."""

    msn: int | None
    part: int | None
    skip: bool

    @classmethod
    def parse(cls, query: str) -> Directives:
        """From a request's query string (decoded); 400 for a malformed or partial one.

        Split by hand, first value winning as in a MultiDict: every blocked viewer sends one
        per part, and three keys need no MultiDict. aiohttp bounds the request line (4 KiB).
        """
        if not query:
            return NO_DIRECTIVES
        msn: str | None = None
        part: str | None = None
        skip: str | None = None
        for item in query.split("&"):
            key, _, value = item.partition("=")
            if key == "_HLS_msn" and msn is None:
                msn = value
            elif key == "_HLS_part" and part is None:
                part = value
            elif key == "_HLS_skip" and skip is None:
                skip = value
        if part is not None and msn is None:
            raise web.HTTPBadRequest(text="_HLS_part without _HLS_msn\n")
        for name, number in (("_HLS_msn", msn), ("_HLS_part", part)):
            if number is not None and not _NUMBER.fullmatch(number):
                raise web.HTTPBadRequest(text=f"{name}: expected a number of up to 10 digits\n")
        # v2 also allows skipping EXT-X-DATERANGE, which asks for RECENTLY-REMOVED-DATERANGES
        # in the delta; the full playlist is a valid answer to it (the relay writes no ranges)
        return cls(int(msn) if msn is not None else None, int(part) if part is not None else None,
                   skip == "YES")


NO_DIRECTIVES = Directives(None, None, False)


@functools.cache
def playlist_headers(max_age: int | None, gzip: bool) -> CIMultiDict[str]:
    """A playlist answer's headers, built once (aiohttp copies them into each response)."""
    headers = CIMultiDict({
        "Content-Type": PLAYLIST_TYPE, "Vary": "Accept-Encoding",
        "Cache-Control": NO_CACHE if max_age is None else f"public, max-age={max_age}"})
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return headers


class LlStream:
    """One stream's LL-HLS folder as this process knows it: ``ll.json`` and cached playlists."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: LlState | None = None
        self.problem: str | None = None
        self._closed = -1
        """The last complete segment's number, known when ``ll.json`` changes."""
        self._changed = asyncio.Event()
        self._changed_at = time.monotonic()
        self._held = 0  # requests waiting in ``wait``
        self._sweep: asyncio.TimerHandle | None = None
        self._playlists: dict[tuple[bool, bool], bytes] = {}
        """(delta, gzip) -> body, for the current ``ll.json``."""
        self._files: dict[str, bytes] = {}
        """Parts and init read so far, oldest first; dropped when their file changes."""
        self._reload()

    def notice(self, name: str | None) -> None:
        """A Watcher callback: re-read on a change of ``ll.json`` (or of anything)."""
        if name is None:
            self._files.clear()
            self._reload()
        elif name == LL_STATE:
            self._reload()
        elif name in (LL_PLAYLIST, LL_DELTA):
            self._playlists.clear()
        else:  # a restarted muxer numbers from 0 again: a name may come back with other bytes
            self._files.pop(name, None)

    def _reload(self) -> None:
        self._playlists.clear()
        path = self.folder / LL_STATE
        try:
            with open(path, "rb") as f:
                self.state, problem = decode_state(f.read(MAX_STATE_BYTES + 1)), None
        except FileNotFoundError:
            self.state, problem = None, None  # not started, or stopped
        except OSError as exc:
            self.state, problem = None, f"cannot read it: {exc.strerror or type(exc).__name__}"
        except ValueError as exc:
            self.state, problem = None, str(exc)
        if problem is not None and problem != self.problem:
            log.error("LL-HLS state %s: %s", path, problem)
        self.problem = problem
        if self.state is not None:  # s{msn}.m4s is written before ll.json names its last part
            msn = self.state.msn
            self._closed = msn if os.path.exists(self.folder / f"s{msn}.m4s") else msn - 1
        self._wake()

    def _wake(self) -> None:
        """Every held request looks again: at what it waits for, and at its deadline."""
        self._changed.set()
        self._changed = asyncio.Event()
        self._changed_at = time.monotonic()

    def has_part(self, msn: int, part: int) -> bool:
        """True once that part is written, or its segment ended before it (it never comes)."""
        return self.state is not None and (self.state.reached(msn, part) or msn <= self._closed)

    def has_segment(self, msn: int) -> bool:
        return self.state is not None and msn <= self._closed

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()``, checked on each ``ll.json`` change; False once ``timeout`` has
        passed (seen within 2 x SWEEP_SECONDS)."""
        deadline = time.monotonic() + timeout
        self._held += 1
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep_held)
        try:
            while not ready():
                if time.monotonic() >= deadline:
                    return False
                await self._changed.wait()
            return True
        finally:
            self._held -= 1

    def _sweep_held(self) -> None:
        """While requests are held, wakes them to look at their deadlines when nothing else
        has for SWEEP_SECONDS (a stalled stream); parts arriving wake them anyway."""
        self._sweep = None
        if not self._held:
            return
        if time.monotonic() - self._changed_at >= SWEEP_SECONDS:
            self._wake()
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep_held)

    def playlist(self, delta: bool, gzip: bool) -> bytes | None:
        """The playlist (the delta if asked and written), from memory after the first read."""
        key = (delta, gzip)
        body = self._playlists.get(key)
        if body is not None:
            return body
        if gzip:
            plain = self.playlist(delta, False)
            if plain is None:
                return None
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip wrapper
            body = compressor.compress(plain) + compressor.flush()
        else:
            body = self._read(LL_DELTA) if delta else None
            if body is None:
                body = self._read(LL_PLAYLIST)
            if body is None:
                return None
        self._playlists[key] = body
        return body

    def file(self, name: str) -> bytes | None:
        """A part or init section, from memory after the first read; None if it is not a
        regular file or is too large to keep."""
        body = self._files.get(name)
        if body is not None:
            return body
        try:
            fd = os.open(self.folder / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            body = f.read(MAX_MEMORY_FILE_BYTES + 1)
        if len(body) > MAX_MEMORY_FILE_BYTES:
            return None
        self._files[name] = body
        if len(self._files) > MAX_MEMORY_FILES:
            del self._files[next(iter(self._files))]
        return body

    def _read(self, name: str) -> bytes | None:
        try:
            with open(self.folder / name, "rb") as f:
                body = f.read(MAX_PLAYLIST_BYTES + 1)
        except OSError:
            return None
        if len(body) > MAX_PLAYLIST_BYTES:
            log.error("LL-HLS playlist %s: larger than %d bytes", self.folder / name,
                      MAX_PLAYLIST_BYTES)
            return None
        return body


class LlServer:
    """The LL-HLS routes' state: one LlStream per stream asked for.

    Args:
        hls_dir: the folder of the streams' HLS folders.
        watcher: the process's inotify Watcher (running).
        want: tells the stream's relay that someone reads its LL-HLS (rate-limited by the
            caller); False if no relay has the stream.
        accepts_gzip: whether an Accept-Encoding header allows gzip.
    """

    def __init__(self, hls_dir: Path, watcher: Watcher, want: Callable[[str], bool],
                 accepts_gzip: Callable[[str], bool]) -> None:
        self.hls_dir = hls_dir
        self.watcher = watcher
        self.want = want
        self._accepts_gzip = accepts_gzip
        self._gzip_by_header: dict[str, bool] = {}
        """Accept-Encoding values seen -> gzip allowed: viewers send the same few values."""
        self.streams: dict[str, LlStream] = {}
        self.waiting = 0

    def accepts_gzip(self, header: str) -> bool:
        """Whether ``header`` allows gzip, parsed once per distinct value (up to
        MAX_ACCEPT_VALUES, then anew)."""
        known = self._gzip_by_header.get(header)
        if known is None:
            if len(self._gzip_by_header) >= MAX_ACCEPT_VALUES:
                self._gzip_by_header.clear()
            known = self._gzip_by_header[header] = self._accepts_gzip(header)
        return known

    def stream(self, name: str) -> LlStream:
        stream = self.streams.get(name)
        if stream is None:
            folder = self.hls_dir / name
            stream = self.streams[name] = LlStream(folder)
            self.watcher.subscribe(folder, stream.notice)
        return stream

    async def started(self, name: str) -> LlStream:
        """The stream once its muxer has written ``ll.json``: 404 if no relay has the stream
        or the muxer does not start within START_SECONDS."""
        if not self.want(name) and name not in self.streams:
            raise web.HTTPNotFound(text="no such stream\n")  # no watch made for a made-up name
        stream = self.stream(name)
        if not await self._wait(stream, lambda: stream.state is not None, START_SECONDS):
            raise web.HTTPNotFound(
                text="no LL-HLS for this stream: it is off, or its muxer did not start\n")
        return stream

    async def _wait(self, stream: LlStream, ready: Callable[[], bool], timeout: float) -> bool:
        if ready():
            return True
        if self.waiting >= MAX_WAITING:
            raise web.HTTPServiceUnavailable(text="too many blocked requests\n")
        self.waiting += 1
        try:
            return await stream.wait(ready, timeout)
        finally:
            self.waiting -= 1

    async def playlist(self, request: web.Request, name: str) -> web.Response:
        """``ll.m3u8``, blocking until ``_HLS_msn``/``_HLS_part`` if given (6.2.5.2)."""
        directives = Directives.parse(request.query_string)
        stream = await self.started(name)
        state = stream.state
        msn, part = directives.msn, directives.part
        if msn is not None and state is not None:
            # 400 past the segment after the open one (the last complete one + 2), or past
            # the Advance Part Limit
            ahead = 0 if part is None else (part - state.part if msn == state.msn
                                            else part + 1 if msn == state.msn + 1 else 0)
            if msn > state.msn + 1 or ahead > state.advance_part_limit:
                raise web.HTTPBadRequest(text="_HLS_msn/_HLS_part too far ahead of the live "
                                              "edge\n")
            ready: Callable[[], bool] = (
                (lambda: stream.has_part(msn, part)) if part is not None
                else (lambda: stream.has_segment(msn)))
            if not await self._wait(stream, ready,
                                    BLOCK_TARGET_DURATIONS * state.target_duration):
                raise web.HTTPServiceUnavailable(
                    text="the requested part was not written within 3 target durations\n",
                    headers={"Cache-Control": "no-store"})
        gzip = self.accepts_gzip(request.headers.get("Accept-Encoding", ""))
        body = stream.playlist(directives.skip, gzip)
        if body is None:
            raise web.HTTPServiceUnavailable(text="the LL-HLS playlist is not readable\n",
                                             headers={"Cache-Control": "no-store"})
        # a blocking response answers its URL for good (any later playlist has the part too),
        # so an edge may share it for a target duration; the plain playlist is always current
        max_age = state.target_duration if msn is not None and state is not None else None
        return web.Response(body=body, headers=playlist_headers(max_age, gzip))

    async def media(self, request: web.Request, name: str, file: str) -> web.StreamResponse:
        """``init.mp4``, a part or a segment; a part or segment not written yet (a preload
        hint's) is waited for, up to 3 target durations."""
        stream = await self.started(name)
        state = stream.state
        ready: Callable[[], bool] | None = None
        if (match := _PART.fullmatch(file)) is not None:
            msn, part = int(match[1]), int(match[2])
            ready = lambda: stream.has_part(msn, part)  # noqa: E731
        elif (match := _SEGMENT.fullmatch(file)) is not None:
            msn = int(match[1])
            ready = lambda: stream.has_segment(msn)  # noqa: E731
        if ready is not None and state is not None and not ready():
            if msn > state.msn + 1:
                raise web.HTTPNotFound()
            if not await self._wait(stream, ready,
                                    BLOCK_TARGET_DURATIONS * state.target_duration):
                raise web.HTTPServiceUnavailable(
                    text="the part was not written within 3 target durations\n",
                    headers={"Cache-Control": "no-store"})
        headers = {"Content-Type": MEDIA_TYPE, "Cache-Control": NO_CACHE}
        if not _SEGMENT.fullmatch(file):  # init or a part: small, and asked for by everyone
            body = stream.file(file) if "Range" not in request.headers else None
            if body is not None:
                return web.Response(body=body, headers=headers)
        path = stream.folder / file
        try:
            regular = stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            regular = False
        if not regular:  # hinted but never made (the segment ended first), or long gone
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler of ``/hls/{name}/{file}`` for LL-HLS files."""
        name, file = request.match_info["name"], request.match_info["file"]
        if file == LL_PLAYLIST:
            return await self.playlist(request, name)
        return await self.media(request, name, file)
