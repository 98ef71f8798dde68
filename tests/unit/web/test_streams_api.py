"""What /api/streams adds to the snapshot: viewers, serving figures, thumbnails; nothing secret."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from relay.status_schema import StreamSnapshot, TrackSnapshot
from tests.unit.web.test_app import NOW, write_status
from web.app import make_app
from web.metrics import MAX_CLIENTS_PER_STREAM, VIEWER_WINDOW, ServingStats

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"


def run(folders: tuple[Path, Path], thumbs: Path | None, body) -> None:  # noqa: F811
    async def main() -> None:
        app = make_app(folders[0], folders[1], thumbnails_dir=thumbs, push=False,
                       clock=lambda: NOW)
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())


def test_viewers_expire_and_are_bounded() -> None:
    now = [100.0]
    stats = ServingStats(clock=lambda: now[0])
    stats.served("cam", True, 10, "1.2.3.4 vlc")
    stats.served("cam", True, 10, "1.2.3.4 vlc")
    stats.served("cam", True, 10, "1.2.3.5 vlc")
    stats.served("cam", False, 1000, "9.9.9.9 x")  # segments alone do not make a viewer
    assert stats.viewers("cam") == 2 and stats.viewers("other") == 0
    now[0] += VIEWER_WINDOW - 1
    stats.served("cam", True, 10, "1.2.3.5 vlc")
    now[0] += 2
    assert stats.viewers("cam") == 1
    assert stats.figures("cam") == {"hls_viewers": 1, "hls_requests": 5,
                                    "hls_bytes_served": 1040}
    for i in range(MAX_CLIENTS_PER_STREAM + 50):
        stats.served("big", True, 1, f"client {i}")
    assert stats.viewers("big") == MAX_CLIENTS_PER_STREAM


def test_streams_api_adds_figures_and_thumbnail(folders: tuple[Path, Path], tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    (thumbs / "cam2.jpg").symlink_to(tmp_path / "outside.jpg")
    write_status(folders[1], NOW, [
        StreamSnapshot(name="cam1", state="playing", source="rtsp://192.0.2.10/s",
                       hls="/hls/cam1/index.m3u8",
                       tracks=(TrackSnapshot(index=0, kind="video", codec="H264"),),
                       hls_push="http://user:hunter2hunter2@origin.example/live/cam1/"),
        StreamSnapshot(name="cam2", state="retrying", source="rtsp://192.0.2.11/s")])

    relay = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    relay.bind(str(folders[1].parent / "relay.sock"))

    async def body(client: TestClient) -> None:
        await client.get("/hls/cam1/index.m3u8", headers={"User-Agent": "a"})
        await client.get("/hls/cam1/index.m3u8", headers={"User-Agent": "b"})
        r = await client.get("/api/streams")
        text = await r.text()
        assert "hunter2" not in text and "user:" not in text
        cam1, cam2 = json.loads(text)
        assert cam1["hls_viewers"] == 2 and cam1["hls_requests"] == 2
        assert cam1["hls_bytes_served"] > 0 and cam2["hls_viewers"] == 0
        # offered for a video stream: the relay makes it when asked
        assert cam1["thumbnail"] == "/api/streams/cam1/thumbnail.jpg"
        assert cam2["thumbnail"] is None  # no video track
        assert (await client.get("/api/streams/cam1/thumbnail.jpg")).status == 404
        assert relay.recv(256) == b"thumb cam1"  # asked of the relay's control socket
        assert (await client.get("/api/streams/cam2/thumbnail.jpg")).status == 404  # symlink
        (thumbs / "cam1.jpg").write_bytes(JPEG)
        cam1 = (await (await client.get("/api/streams")).json())[0]
        assert cam1["thumbnail"] == "/api/streams/cam1/thumbnail.jpg"
        r = await client.get(cam1["thumbnail"])
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert r.headers["Cache-Control"] == "no-cache" and await r.read() == JPEG
        for path in ("/api/streams/..%2fthumbs%2fcam1/thumbnail.jpg",
                     "/api/streams/.cam1/thumbnail.jpg", "/api/streams/cam1/../cam1.jpg"):
            assert (await client.get(path)).status == 404, path

    with relay:
        run(folders, thumbs, body)


def test_no_thumbnail_folder(folders: tuple[Path, Path]) -> None:
    write_status(folders[1], NOW)

    async def body(client: TestClient) -> None:
        assert (await client.get("/api/streams/cam1/thumbnail.jpg")).status == 404
        assert (await (await client.get("/api/streams")).json())[0]["thumbnail"] is None

    run(folders, None, body)
