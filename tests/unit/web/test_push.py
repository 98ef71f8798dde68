"""HLS push against a real HTTP origin (a small aiohttp server that stores PUTs, honours DELETE)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from msgspec.structs import replace

from relay.status_schema import Snapshot, StreamSnapshot, encode_snapshot
from web.app import make_app
from web.push import (
    MAX_RESPONSE_BYTES,
    HlsPusher,
    PushError,
    PushStats,
    playlist_segments,
    redact,
)
from web.watch import Watcher

USER, PASSWORD = "pusher", "pa55-w0rd!"


class Origin:
    """Stores what is PUT under /live/, answers DELETE; can be told to fail."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.auth: set[str] = set()
        self.fail = 0  # answer this many requests with 503

    async def handle(self, request: web.Request) -> web.Response:
        self.log.append((request.method, request.path))
        self.auth.add(request.headers.get("Authorization", ""))
        if self.fail:
            self.fail -= 1
            return web.Response(status=503)
        if request.method == "PUT":
            self.files[request.path] = await request.read()
            return web.Response(status=201)
        if request.method == "DELETE":
            return web.Response(status=204 if self.files.pop(request.path, None) else 404)
        if request.path in self.files:
            return web.Response(body=self.files[request.path])
        return web.Response(status=404)


@asynccontextmanager
async def origin_server() -> AsyncIterator[tuple[Origin, str]]:
    origin = Origin()
    app = web.Application(client_max_size=1 << 24)
    app.router.add_route("*", "/{tail:.*}", origin.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield origin, f"http://{USER}:{PASSWORD}@127.0.0.1:{server.port}/live/cam/"
    finally:
        await server.close()


@asynccontextmanager
async def watching() -> AsyncIterator[Watcher]:
    """A running inotify Watcher, as the web app's cleanup context runs it."""
    watcher = Watcher()
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        watcher.close()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def playlist(first: int, count: int, end: bool = False) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
             f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for i in range(first, first + count):
        lines += ["#EXTINF:2.000,", f"seg{i:05d}.ts"]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def add_segment(folder: Path, n: int) -> None:
    write_atomic(folder / f"seg{n:05d}.ts", bytes([n % 256]) * 1000)


def test_playlist_segments_only_plain_names() -> None:
    text = b"#EXTM3U\nseg1.ts\n../../etc/passwd\n/abs.ts\nhttp://x/y.ts\nsub/seg.ts\n a.ts \n"
    assert playlist_segments(text) == ["seg1.ts", "a.ts"]
    assert playlist_segments(b"\xff\xfe\x00garbage") == []


def test_redact() -> None:
    assert redact("http://u:p@host:8080/live/cam/?sig=abc") == "http://host:8080/live/cam/"
    assert redact("https://host/x/") == "https://host/x/"
    assert redact("not a url") == "(invalid URL)"
    with pytest.raises(ValueError) as info:
        HlsPusher(None, None, Path("."), "ftp://u:secret@host/x/")  # type: ignore[arg-type]
    assert "secret" not in str(info.value)


def test_sync_order_deletes_and_credentials(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with origin_server() as (origin, url), aiohttp.ClientSession() as session, \
                watching() as watcher:
            pusher = HlsPusher(session, watcher, folder, url)
            assert pusher.stats.url.endswith("/live/cam/") and PASSWORD not in pusher.stats.url
            assert await pusher.sync() is False  # no playlist yet
            for n in range(3):
                add_segment(folder, n)
            write_atomic(folder / "index.m3u8", playlist(0, 3))
            assert await pusher.sync() is True
            assert origin.log == [("PUT", "/live/cam/seg00000.ts"),
                                  ("PUT", "/live/cam/seg00001.ts"),
                                  ("PUT", "/live/cam/seg00002.ts"),
                                  ("PUT", "/live/cam/index.m3u8")]
            assert origin.files["/live/cam/index.m3u8"] == playlist(0, 3)
            assert origin.files["/live/cam/seg00001.ts"] == bytes([1]) * 1000
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            assert origin.auth == {expected}
            assert await pusher.sync() is False  # unchanged: nothing sent
            assert len(origin.log) == 4
            # the window moves: seg 0 leaves the playlist but is still on disk (6.2.2)
            add_segment(folder, 3)
            write_atomic(folder / "index.m3u8", playlist(1, 3))
            await pusher.sync()
            assert origin.log[4:] == [("PUT", "/live/cam/seg00003.ts"),
                                      ("PUT", "/live/cam/index.m3u8")]
            # the relay deletes seg 0 once its availability is over: so does the origin
            (folder / "seg00000.ts").unlink()
            add_segment(folder, 4)
            write_atomic(folder / "index.m3u8", playlist(2, 3))
            await pusher.sync()
            assert origin.log[6:] == [("PUT", "/live/cam/seg00004.ts"),
                                      ("PUT", "/live/cam/index.m3u8"),
                                      ("DELETE", "/live/cam/seg00000.ts")]
            assert "/live/cam/seg00000.ts" not in origin.files
            assert pusher.stats.segments_pushed == 5 and pusher.stats.segments_deleted == 1
            assert pusher.stats.last_latency is not None and pusher.stats.last_latency < 5
            # a listed segment already deleted locally is skipped, never listed missing
            (folder / "seg00005.ts").unlink(missing_ok=True)
            write_atomic(folder / "index.m3u8", playlist(3, 3) + b"../../secret.ts\n")
            await pusher.sync()
            assert ("PUT", "/live/cam/seg00005.ts") not in origin.log
            assert not any("secret" in path for _, path in origin.log)

    asyncio.run(main())
    assert PASSWORD not in caplog.text


def test_failures_retry_with_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    add_segment(folder, 0)
    write_atomic(folder / "index.m3u8", playlist(0, 1))
    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with origin_server() as (origin, url), aiohttp.ClientSession() as session, \
                watching() as watcher:
            origin.fail = 3
            stats = PushStats(redact(url))
            pusher = HlsPusher(session, watcher, folder, url, stats)
            with pytest.raises(PushError, match="HTTP 503"):
                await pusher.sync()
            task = asyncio.create_task(pusher.run())
            try:
                deadline = time.monotonic() + 15
                while stats.state != "ok":
                    assert time.monotonic() < deadline, stats
                    await asyncio.sleep(0.02)
                assert stats.failures >= 2 and stats.last_error is None
                assert origin.files["/live/cam/index.m3u8"] == playlist(0, 1)
                # a new playlist is picked up on its inotify notice
                add_segment(folder, 1)
                write_atomic(folder / "index.m3u8", playlist(0, 2))
                written = time.monotonic()
                while origin.files.get("/live/cam/index.m3u8") != playlist(0, 2):
                    assert time.monotonic() < written + 2
                    await asyncio.sleep(0.005)
                assert time.monotonic() - written < 0.5
            finally:
                task.cancel()

    asyncio.run(main())
    assert "HTTP 503" in caplog.text and "works again" in caplog.text
    assert PASSWORD not in caplog.text and USER not in caplog.text


class TimerCountingLoop(asyncio.SelectorEventLoop):
    """The standard event loop, counting the timers scheduled on it (every ``asyncio.sleep``,
    ``wait_for`` and timeout is one): a task that polls shows up here even while nothing
    changes."""

    timers = 0

    def call_at(self, when, callback, *args, context=None):  # type: ignore[no-untyped-def]
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


def test_an_idle_pusher_schedules_nothing_and_a_new_playlist_is_pushed(tmp_path: Path) -> None:
    """Once the origin matches, a pusher waits for the watcher's notice: no timer at all in a
    second of idling (the 100 ms stat poll this replaced made ten), and the next playlist the
    relay renames into place is pushed all the same."""
    folder = tmp_path / "cam"
    folder.mkdir()
    add_segment(folder, 0)
    write_atomic(folder / "index.m3u8", playlist(0, 1))
    idle_timers: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, TimerCountingLoop)
        async with origin_server() as (origin, url), aiohttp.ClientSession() as session, \
                watching() as watcher:
            stats = PushStats(redact(url))
            task = asyncio.create_task(
                HlsPusher(session, watcher, folder, url, stats).run())
            try:
                while stats.state != "ok":
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # connection keep-alive timers set after the sync
                before = loop.timers
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, 1.0)
                idle_timers.append(loop.timers - before)
                add_segment(folder, 1)
                write_atomic(folder / "index.m3u8", playlist(0, 2))
                while origin.files.get("/live/cam/index.m3u8") != playlist(0, 2):
                    await asyncio.sleep(0.01)
                assert origin.files["/live/cam/seg00001.ts"] == bytes([1]) * 1000
                assert stats.playlists_pushed == 2
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    with asyncio.Runner(loop_factory=TimerCountingLoop) as runner:
        runner.run(asyncio.wait_for(main(), 30))
    assert idle_timers == [0]


def test_an_origin_answering_a_gigabyte_is_not_read(tmp_path: Path) -> None:
    """An origin that answers every PUT with a 1 GiB body: the pusher reads at most
    MAX_RESPONSE_BYTES of it and hangs up, so the push still succeeds and memory stays flat.
    The origin counts what it got out before the client closed (socket buffers included)."""
    folder = tmp_path / "cam"
    folder.mkdir()
    add_segment(folder, 0)
    write_atomic(folder / "index.m3u8", playlist(0, 1))
    body, chunk, give_up = 1 << 30, bytes(1 << 16), 64 << 20
    sent: list[int] = []  # per answer: bytes written before the client went away

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201)
        response.content_length = body
        await response.prepare(request)
        total = 0
        try:  # ends when the client hangs up (ConnectionError, or aiohttp cancels the handler)
            while total < body:
                if total >= give_up:  # a client that reads on would take all of it
                    assert request.transport is not None
                    request.transport.close()
                    break
                await response.write(chunk)
                total += len(chunk)
        finally:
            sent.append(total)
        return response

    async def main() -> None:
        app = web.Application(client_max_size=1 << 24)
        app.router.add_put("/{tail:.*}", answer)
        server = TestServer(app)
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session, watching() as watcher:
                pusher = HlsPusher(session, watcher, folder,
                                   f"http://127.0.0.1:{server.port}/live/cam/")
                assert await pusher.sync() is True
                assert (pusher.stats.segments_pushed, pusher.stats.playlists_pushed) == (1, 1)
                while len(sent) < 2:  # the origin notices the hang-up on its next write
                    await asyncio.sleep(0.01)
        finally:
            await server.close()

    asyncio.run(main())
    assert MAX_RESPONSE_BYTES <= 1 << 16
    assert len(sent) == 2 and max(sent) < 32 << 20, sent  # not 1 GiB, nor the 64 MiB give-up


def test_unreachable_origin_is_described_without_credentials(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    folder = tmp_path / "cam"
    folder.mkdir()
    add_segment(folder, 0)
    write_atomic(folder / "index.m3u8", playlist(0, 1))

    async def main() -> None:
        async with aiohttp.ClientSession() as session, watching() as watcher:
            pusher = HlsPusher(session, watcher, folder,
                               f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/x/?key={PASSWORD}")
            with pytest.raises(PushError) as info:
                await pusher.sync()
            assert "cannot connect to 127.0.0.1" in str(info.value)
            assert PASSWORD not in str(info.value) and USER not in str(info.value)

    asyncio.run(main())


def test_web_app_pushes_what_the_snapshot_names(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    (hls / "cam").mkdir(parents=True)
    add_segment(hls / "cam", 0)
    write_atomic(hls / "cam" / "index.m3u8", playlist(0, 1))
    status = tmp_path / "status.json"

    async def main() -> None:
        async with origin_server() as (origin, url):
            stream = StreamSnapshot(name="cam", state="playing", source="rtsp://192.0.2.1/s",
                                    hls_push=url)
            evil = replace(stream, name="../evil")
            status.write_bytes(encode_snapshot(Snapshot(updated=time.time(),
                                                        streams=(stream, evil))))
            app = make_app(hls, status)
            async with TestClient(TestServer(app)) as client:
                deadline = time.monotonic() + 10
                while "/live/cam/index.m3u8" not in origin.files:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                r = await client.get("/api/streams")
                text = await r.text()
                assert PASSWORD not in text and USER not in text
                push = json.loads(text)[0]["hls_push"]
                assert push["url"] == redact(url) and push["segments_pushed"] == 1
                assert push["state"] == "ok" and push["latency_ms"] is not None
                metrics = await (await client.get("/metrics")).text()
                assert PASSWORD not in metrics
                assert 'relay_hls_push_segments_total{origin="http://127.0.0.1' in metrics
                # the push goes away with its URL
                status.write_bytes(encode_snapshot(Snapshot(
                    updated=time.time(), streams=(replace(stream, hls_push=None),))))
                while (await (await client.get("/api/streams")).json())[0]["hls_push"]:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert not any("evil" in path for _, path in origin.log)

    asyncio.run(main())
