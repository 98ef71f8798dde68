"""The web process: real HTTP against aiohttp's test server (plain asyncio, run per test)."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import tomllib
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from relay.status_schema import Snapshot, StreamSnapshot, TrackSnapshot, encode_snapshot
from web.app import HLS_JS, STATIC_DIR, WEB_DIR, _accepts_gzip, make_app

NOW = 1_700_000_000.0
PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:11\n" + "".join(
    f"#EXTINF:10.000,\nseg{i:05d}.ts\n" for i in range(6))

Run = Callable[[TestClient], Awaitable[None]]


CAM1 = StreamSnapshot(
    name="cam1", state="playing", source="rtsp://192.0.2.10:554/stream1",
    tracks=(TrackSnapshot(index=0, kind="video", codec="h264", width=640, height=360, fps=25.0,
                          bitrate=1200000),),
    hls="/hls/cam1/index.m3u8")


def write_status(path: Path, updated: float, streams: list[StreamSnapshot] | None = None
                 ) -> None:
    """Write a snapshot as the relay does."""
    snapshot = Snapshot(updated=updated, streams=tuple(streams if streams is not None else [CAM1]))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(encode_snapshot(snapshot))
    os.replace(tmp, path)


def serve(folders: tuple[Path, Path], body: Run, clock: Callable[[], float] = lambda: NOW,
          hls_js: Path = HLS_JS) -> None:
    async def main() -> None:
        app = make_app(folders[0], folders[1], hls_js_path=hls_js, clock=clock)
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())


async def raw(client: TestClient, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client-side URL normalisation); status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_playlist_headers_and_gzip(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        r = await client.get("/hls/cam1/index.m3u8", headers={"Accept-Encoding": "gzip"},
                             auto_decompress=False)
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert gzip.decompress(await r.read()).decode() == PLAYLIST
        plain = await client.get("/hls/cam1/index.m3u8",
                                 headers={"Accept-Encoding": "identity"}, auto_decompress=False)
        assert "Content-Encoding" not in plain.headers
        assert await plain.text() == PLAYLIST
        refused = await client.get("/hls/cam1/index.m3u8",
                                   headers={"Accept-Encoding": "deflate, gzip;q=0"},
                                   auto_decompress=False)
        assert "Content-Encoding" not in refused.headers

    serve(folders, body)


def test_accepts_gzip() -> None:
    assert _accepts_gzip("gzip, deflate, br")
    assert _accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert _accepts_gzip("*")
    assert not _accepts_gzip("gzip;q=0")
    assert not _accepts_gzip("")
    assert not _accepts_gzip("identity")
    assert not _accepts_gzip("*;q=0, deflate")


def test_segment_headers_and_range(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        r = await client.get("/hls/cam1/seg00000.ts")
        assert r.status == 200
        assert r.headers["Content-Type"] == "video/mp2t"
        assert "immutable" in r.headers["Cache-Control"]
        assert "max-age=86400" in r.headers["Cache-Control"]
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert len(await r.read()) == 1880
        part = await client.get("/hls/cam1/seg00000.ts", headers={"Range": "bytes=0-187"})
        assert part.status == 206 and len(await part.read()) == 188

    serve(folders, body)


def test_cors_preflight(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        r = await client.options("/hls/cam1/index.m3u8", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range"})
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in r.headers["Access-Control-Allow-Methods"]
        assert r.headers["Access-Control-Allow-Headers"] == "range"
        bad = await client.options("/hls/cam1/index.m3u8", headers={
            "Access-Control-Request-Headers": "x-a; y=<script>"})
        assert "Access-Control-Allow-Headers" not in bad.headers
        missing = await client.get("/hls/cam1/seg09999.ts")
        assert missing.status == 404
        assert missing.headers["Access-Control-Allow-Origin"] == "*"

    serve(folders, body)


@pytest.mark.parametrize("path", [
    "/hls/cam1/../../secret.ts",
    "/hls/../secret.ts",
    "/hls/cam1/%2e%2e/%2e%2e/secret.ts",
    "/hls/%2e%2e/index.m3u8",
    "/hls/cam1/..%2f..%2fsecret.ts",
    "/hls/cam1/%2F%2Fetc%2Fpasswd",
    "/hls//etc/passwd",
    "/hls/cam1//etc/passwd",
    "/hls/cam1/seg00000.ts%00.m3u8",
    "/hls/cam1/index.m3u8/",
    "/hls/cam1/other.txt",
    "/hls/cam1",
    "/hls/.cam1/index.m3u8",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/index.html",
    "/nothing",
])
def test_traversal_and_unknown_paths_are_404(folders: tuple[Path, Path], path: str) -> None:
    async def body(client: TestClient) -> None:
        status, data = await raw(
            client, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert status in (400, 404), (path, status)
        assert b"secret" not in data and b"import" not in data
        r = await client.get(URL(path, encoded=True))
        assert r.status in (400, 404), (path, r.status)

    serve(folders, body)


def test_absolute_uri_request_target(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        status, data = await raw(client, b"GET http://x/hls/cam1/../../secret.ts HTTP/1.1\r\n"
                                         b"Host: x\r\nConnection: close\r\n\r\n")
        assert status in (400, 404) and b"secret" not in data

    serve(folders, body)


def test_symlinks_are_not_followed(folders: tuple[Path, Path], tmp_path: Path) -> None:
    hls = folders[0]
    (hls / "cam1" / "seg00001.ts").symlink_to(tmp_path / "secret.ts")
    (hls / "link").symlink_to(tmp_path)  # a stream folder pointing outside
    (tmp_path / "inner").mkdir()
    (hls / "cam1" / "seg00002.ts").symlink_to(hls / "cam1" / "seg00000.ts")

    async def body(client: TestClient) -> None:
        for path in ("/hls/cam1/seg00001.ts", "/hls/link/secret.ts", "/hls/link/index.m3u8",
                     "/hls/cam1/seg00002.ts"):
            r = await client.get(path)
            assert r.status == 404, path

    serve(folders, body)


def test_api_streams_and_healthz_freshness(folders: tuple[Path, Path]) -> None:
    now = [NOW]

    async def body(client: TestClient) -> None:
        r = await client.get("/api/streams")
        assert r.status == 503 and await r.json() == []
        r = await client.get("/healthz")
        assert r.status == 503
        write_status(folders[1], NOW - 1)
        r = await client.get("/api/streams")
        assert r.status == 200
        streams = await r.json()
        assert streams[0]["name"] == "cam1" and streams[0]["hls"] == "/hls/cam1/index.m3u8"
        r = await client.get("/healthz")
        assert r.status == 200 and await r.text() == "ok"
        now[0] = NOW + 10.5
        assert (await client.get("/healthz")).status == 503
        write_status(folders[1], NOW + 10, [])
        assert (await client.get("/healthz")).status == 200
        assert await (await client.get("/api/streams")).json() == []
        folders[1].write_text("{not json")
        assert (await client.get("/healthz")).status == 503
        assert (await client.get("/api/streams")).status == 503

    serve(folders, body, clock=lambda: now[0])


def test_page_and_static(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        r = await client.get("/")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        text = await r.text()
        assert 'id="player"' in text and "/static/hls.min.js" in text
        assert "muted" in text and "playsinline" in text
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        for name in ("app.js", "style.css"):
            assert (await client.get(f"/static/{name}")).status == 200
        js = await client.get("/static/hls.min.js")
        if HLS_JS.is_file():
            assert js.status == 200 and "javascript" in js.headers["Content-Type"]
        else:
            assert js.status == 404

    serve(folders, body)


def test_missing_hls_js_says_run_make_web(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """A clear 404 (not a 500), not cached, not runnable, and no path of this machine in it."""
    async def body(client: TestClient) -> None:
        r = await client.get("/static/hls.min.js")
        assert r.status == 404
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-store"
        text = await r.text()
        assert "hls.js is not installed" in text and "make web" in text
        assert re.search(r"(?<![\w.])/\w", text) is None  # no absolute path

    serve(folders, body, hls_js=tmp_path / "nowhere" / "hls.min.js")


def test_the_package_carries_every_served_file() -> None:
    """``pip install`` of a checkout (after ``make web``) installs web/ without node_modules
    unless package-data names it: the page, its assets and hls.js must all be there."""
    pyproject = tomllib.loads((WEB_DIR.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["web"]
    served = [path.relative_to(WEB_DIR) for path in STATIC_DIR.iterdir()]
    for relative in served + [HLS_JS.relative_to(WEB_DIR)]:
        assert any(fnmatch(str(relative), pattern) for pattern in patterns), relative


def test_request_limits(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        status, _ = await raw(client, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                              + b"a" * 5000 + b"\r\nConnection: close\r\n\r\n")
        assert status in (400, 431)
        status, _ = await raw(client, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
        assert status in (400, 414)
        r = await client.post("/api/streams", data=b"x" * 100_000)
        assert r.status in (405, 413)

    serve(folders, body)


def test_python_m_web_serves(folders: tuple[Path, Path]) -> None:
    """The real command line: start, answer, stop on SIGTERM with exit code 0."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_status(folders[1], __import__("time").time())
    proc = subprocess.Popen(
        [sys.executable, "-m", "web", "--http", f"127.0.0.1:{port}", "--hls-dir",
         str(folders[0]), "--status", str(folders[1])],
        cwd=Path(__file__).resolve().parents[3], stderr=subprocess.PIPE)

    async def check() -> None:
        async with ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                        assert r.status == 200
                        return
                except OSError:
                    await asyncio.sleep(0.05)
            raise AssertionError("web did not start")

    try:
        asyncio.run(check())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert b"Failed" not in err and b"GET /healthz" not in err  # handler args taken, no access log


def test_python_m_web_exits_with_its_parent(folders: tuple[Path, Path]) -> None:
    """A relay killed hard must not leave its web process behind."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    parent = subprocess.run(
        ["/bin/sh", "-c", '"$0" -m web --http 127.0.0.1:$1 --hls-dir "$2" --status "$3" '
         '--parent-pid $$ '
         "</dev/null >/dev/null 2>&1 & echo $!",  # the parent is gone before the web process is up
         sys.executable, str(port), str(folders[0]), str(folders[1])],
        cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=10)
    pid = int(parent.stdout.split()[0])
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if "zombie" in status.read_text():
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 15)
        raise AssertionError("web outlived its parent")
