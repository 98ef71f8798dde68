"""HLS push: mirror each stream's HLS folder to an HTTP origin with PUT and DELETE (RFC 8216 6.2).

The relay names a push URL per stream in its snapshot (``hls_push``, e.g.
``http://user:pass@origin:8080/live/cam/``); ``PushManager`` starts one ``HlsPusher`` per such
stream and stops it when the URL goes away or changes, re-reading the snapshot only when the
relay replaces it. A pusher is told by inotify (web/watch.py) when the relay replaces the stream's
``index.m3u8`` (nothing polls, so an idle pusher costs nothing) and on each change makes the
origin match the folder:

1. every segment the playlist lists that the origin does not have yet is PUT, oldest first;
2. then the playlist itself is PUT, so the origin never lists a segment it cannot serve;
3. segments it pushed earlier whose local file the relay has since deleted (their availability
   period, 6.2.2, is over) are DELETEd.

Each pass is idempotent: after a failure ``web.supervise`` waits (exponential backoff with
jitter, 1 s up to 30 s) and then the pusher syncs to whatever the folder holds by then, so a
slow or dead origin never blocks local serving and never queues work without bound.
Credentials in the URL go into an Authorization header; only the redacted URL (no userinfo, no
query) is ever logged or shown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from relay.status_schema import Snapshot
from web.supervise import supervise
from web.watch import Watcher

log = logging.getLogger("web.push")

TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
PLAYLIST = "index.m3u8"
SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.ts")
"""Only plain segment names are pushed: a playlist line can never name a file elsewhere."""
MAX_PLAYLIST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 64 * 1024
"""The most of an origin's answer body that is read: the answer's status is what counts, and a
short body read to its end lets the connection be reused. A longer one is not read on: its
connection is closed, so an origin that answers with a gigabyte costs nothing here."""
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}


class PushError(aiohttp.ClientError):
    """One failed request to the origin, described without credentials (an expected error to
    ``supervise``, like the client errors it replaces)."""


def redact(url: str) -> str:
    """The URL without userinfo and query: safe for logs, the API and the page."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "(invalid URL)"
    if not parsed.is_absolute():
        return "(invalid URL)"
    return str(parsed.with_user(None).with_password(None).with_query(None).with_fragment(None))


def parse_push_url(url: str) -> tuple[URL, str | None, list[str]]:
    """Split a push URL into a base URL (ending in ``/``, no userinfo), the Authorization
    header its credentials make (HTTP Basic, RFC 7617), and the secrets to keep out of text.

    Raises:
        ValueError: not an absolute http(s) URL.
    """
    try:
        parsed = URL(url)
        host = parsed.host
    except (ValueError, TypeError):
        raise ValueError("hls_push: not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise ValueError(f"hls_push: expected an http(s) URL, got {redact(url)!r}")
    authorization = None
    secrets = [s for s in (parsed.raw_user, parsed.user, parsed.raw_password, parsed.password,
                           parsed.raw_query_string, parsed.query_string) if s]
    if parsed.user is not None:
        pair = f"{parsed.user}:{parsed.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        secrets.append(authorization)
    base = parsed.with_user(None).with_password(None).with_fragment(None)
    if not base.path.endswith("/"):
        base = base.with_path(base.path + "/", keep_query=True)
    return base, authorization, sorted(set(secrets), key=len, reverse=True)


@dataclass(slots=True)
class PushStats:
    """One stream's push, for /api/streams and /metrics (``url`` is redacted).

    Attributes:
        url: the origin URL, redacted.
        state: ``starting`` (no sync yet), ``ok`` (origin matches), ``retrying`` (last try failed).
        last_error: why the last try failed, None once a sync succeeds.
        segments_pushed, playlists_pushed, segments_deleted, bytes_pushed: since start.
        failures: failed sync attempts.
        last_latency: seconds from the playlist's local write to its PUT finishing, last sync.
    """

    url: str
    state: str = "starting"
    last_error: str | None = None
    segments_pushed: int = 0
    playlists_pushed: int = 0
    segments_deleted: int = 0
    bytes_pushed: int = 0
    failures: int = 0
    last_latency: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url, "state": self.state, "last_error": self.last_error,
            "segments_pushed": self.segments_pushed, "playlists_pushed": self.playlists_pushed,
            "segments_deleted": self.segments_deleted, "bytes_pushed": self.bytes_pushed,
            "failures": self.failures,
            "latency_ms": round(self.last_latency * 1000) if self.last_latency is not None
            else None,
        }


def _read_playlist(path: Path) -> tuple[tuple[int, int, int], float, bytes] | None:
    """(identity, mtime, text) of the playlist, from one open file so they belong together."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(MAX_PLAYLIST_BYTES + 1)
    if len(data) > MAX_PLAYLIST_BYTES:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size), st.st_mtime, data


def playlist_segments(text: bytes) -> list[str]:
    """The segment URIs a media playlist lists, in order (plain names only)."""
    out = []
    for raw in text.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and SEGMENT_RE.fullmatch(line):
            out.append(line)
    return out


async def _discard_body(response: aiohttp.ClientResponse) -> None:
    """Read and drop up to ``MAX_RESPONSE_BYTES`` of the body; close the connection if more."""
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0 and (chunk := await response.content.read(remaining)):
        remaining -= len(chunk)
    if not response.content.at_eof():
        response.close()


def _changed(names: tuple[str, ...]) -> tuple[asyncio.Event, Callable[[str | None], None]]:
    """An event and the Watcher callback that sets it on a change of one of ``names`` (or of
    anything, when the watcher cannot tell which file changed)."""
    event = asyncio.Event()

    def notice(name: str | None) -> None:
        if name is None or name in names:
            event.set()

    return event, notice


class HlsPusher:
    """Keeps one origin URL in step with one stream's HLS folder."""

    def __init__(self, session: aiohttp.ClientSession, watcher: Watcher, folder: Path, url: str,
                 stats: PushStats | None = None, *, name: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.session = session
        self.watcher = watcher
        self.folder = folder
        self.base, self.authorization, self.secrets = parse_push_url(url)
        self.stats = stats or PushStats(redact(url))
        self.name = name or folder.name
        self.clock = clock
        self.on_origin: set[str] = set()  # segments this pusher PUT and has not deleted
        self._synced: tuple[int, int, int] | None = None

    def _url(self, file: str) -> URL:
        return self.base.join(URL(file)).with_query(self.base.query)

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    async def _request(self, method: str, file: str, data: bytes | None = None) -> None:
        headers = {}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPES[Path(file).suffix]
        try:
            async with self.session.request(method, self._url(file), data=data,
                                            headers=headers, timeout=TIMEOUT,
                                            allow_redirects=False) as response:
                await _discard_body(response)
                if response.status == 404 and method == "DELETE":
                    return  # already gone: what DELETE wanted
                if not 200 <= response.status < 300:
                    raise PushError(f"{method} {file}: HTTP {response.status} {response.reason}")
        except PushError:
            raise
        except TimeoutError:
            raise PushError(f"{method} {file}: timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            # Describe without str(exc) verbatim: some aiohttp errors quote the URL.
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            if isinstance(exc, aiohttp.ClientConnectorError):
                reason = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}"
            raise PushError(self._scrub(f"{method} {file}: {reason}")) from None

    async def sync(self) -> bool:
        """Make the origin match the folder once; False if there was nothing new.

        Raises:
            PushError: a request failed (the next call starts over from the folder's state).
        """
        loop = asyncio.get_running_loop()
        read = await loop.run_in_executor(None, _read_playlist, self.folder / PLAYLIST)
        if read is None:
            return False
        key, mtime, playlist = read
        if key == self._synced:
            return False
        listed = playlist_segments(playlist)
        for uri in listed:
            if uri in self.on_origin:
                continue
            try:
                data = await loop.run_in_executor(None, (self.folder / uri).read_bytes)
            except FileNotFoundError:
                continue  # expired before it could be pushed: the origin must not list it
            await self._request("PUT", uri, data)
            self.on_origin.add(uri)
            self.stats.segments_pushed += 1
            self.stats.bytes_pushed += len(data)
        await self._request("PUT", PLAYLIST, playlist)
        self.stats.playlists_pushed += 1
        self.stats.bytes_pushed += len(playlist)
        self.stats.last_latency = max(0.0, self.clock() - mtime)
        self._synced = key
        current = set(listed)
        for uri in sorted(self.on_origin - current):
            if not (self.folder / uri).exists():  # the relay's availability period is over
                await self._request("DELETE", uri)
                self.on_origin.discard(uri)
                self.stats.segments_deleted += 1
        return True

    async def run(self) -> None:
        """Sync on every playlist change until cancelled, restarted by ``supervise`` on failure."""
        log.info("stream=%s hls push to %s", self.name, self.stats.url)
        await supervise(f"stream={self.name} hls push to {self.stats.url}", self._follow,
                        status=self.stats, scrub=self._scrub)

    async def _follow(self, started: Callable[[], None]) -> None:
        """Sync now and after every playlist notice; ``started()`` once the origin matches."""
        changed, notice = _changed((PLAYLIST,))
        unsubscribe = self.watcher.subscribe(self.folder, notice)  # before the first read
        try:
            while True:
                changed.clear()  # a change during the sync sets it again: synced next round
                await self.sync()
                if self._synced is not None:
                    started()
                await changed.wait()
        finally:
            unsubscribe()


class PushManager:
    """Runs one HlsPusher per stream whose snapshot entry names an ``hls_push`` URL.

    The snapshot is looked at again only when the watcher sees one of ``status_files`` replaced.
    """

    def __init__(self, snapshot: Callable[[], Snapshot | None], hls_dir: Path,
                 name_ok: Callable[[str], bool], watcher: Watcher,
                 status_files: Sequence[Path]) -> None:
        self.snapshot = snapshot
        self.hls_dir = hls_dir
        self.name_ok = name_ok
        self.watcher = watcher
        self.status_files = status_files
        self.stats: dict[str, PushStats] = {}
        self._tasks: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._session: aiohttp.ClientSession | None = None

    def wanted(self) -> dict[str, str]:
        """Stream name -> push URL, from the snapshot (invalid entries left out)."""
        snapshot = self.snapshot()
        if snapshot is None:
            return {}
        return {s.name: s.hls_push for s in snapshot.streams
                if s.hls_push is not None and self.name_ok(s.name)}

    def update(self) -> None:
        """Start pushers for new URLs, stop those whose URL went away or changed."""
        assert self._session is not None
        wanted = self.wanted()
        for name, (url, task) in list(self._tasks.items()):
            if wanted.get(name) != url:
                task.cancel()
                del self._tasks[name]
        for name in list(self.stats):
            if name not in wanted:
                del self.stats[name]
        for name, url in wanted.items():
            if name in self._tasks:
                continue
            try:
                pusher = HlsPusher(self._session, self.watcher, self.hls_dir / name, url,
                                   name=name)
            except ValueError as exc:
                if name not in self.stats:
                    log.error("stream=%s %s", name, exc)
                self.stats[name] = PushStats(redact(url), "retrying", str(exc))
                continue
            self.stats[name] = pusher.stats
            self._tasks[name] = (url, asyncio.create_task(pusher.run()))

    async def run(self) -> None:
        """Follow the snapshot until cancelled; pushers stop with it."""
        changed, notice = _changed(tuple(path.name for path in self.status_files))
        unsubscribes = [self.watcher.subscribe(folder, notice)
                        for folder in {path.parent for path in self.status_files}]
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            self._session = session
            try:
                while True:
                    changed.clear()
                    self.update()
                    await changed.wait()
            finally:
                for unsubscribe in unsubscribes:
                    unsubscribe()
                tasks = [task for _, task in self._tasks.values()]
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*tasks, return_exceptions=True)
                self._tasks.clear()
