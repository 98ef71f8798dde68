"""/metrics scraped over real HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from msgspec.structs import replace
from prometheus_client.parser import text_string_to_metric_families

from relay.status_schema import (
    SCHEMA_VERSION,
    RtmpSnapshot,
    Snapshot,
    StreamSnapshot,
    TrackSnapshot,
    encode_snapshot,
)
from tests.unit.web.test_app import NOW, serve

SNAPSHOT = Snapshot(
    updated=NOW - 2,
    streams=(
        StreamSnapshot(
            name="cam1", state="playing", source="rtsp://192.0.2.10/s",
            tracks=(
                TrackSnapshot(index=0, kind="video", codec="h264", width=640, height=360,
                              fps=25.0, bitrate=1_200_000, frames=2500, bytes=15_000_000),
                TrackSnapshot(index=1, kind="audio", codec="aac", sample_rate=48000, channels=1,
                              bitrate=64000, frames=4700, bytes=800_000),
            ),
            packets_received=12000, packets_lost=7, packets_garbled=1,
            frames_dropped=3, reconnects=2, subscriber_drops=11, hls="/hls/cam1/index.m3u8",
            hls_segments=42, hls_bytes_written=5_000_000,
            rtmp=(RtmpSnapshot(destination="rtmp://live.example.com/app/***", state="publishing",
                               bytes_sent=9_000_000, frames_sent=7000, frames_dropped=5,
                               reconnects=1),
                  RtmpSnapshot(destination="rtmp://other.example.com/app/***", state="retrying",
                               last_error="connection refused", reconnects=4)),
        ),
        StreamSnapshot(name="cam2", state="retrying", source="rtsp://192.0.2.11/s",
                       reconnects=9),
    ),
)


def write(path: Path, data: Snapshot) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(encode_snapshot(data))
    os.replace(tmp, path)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_metrics_from_snapshot_and_serving(folders: tuple[Path, Path]) -> None:
    write(folders[1], SNAPSHOT)

    async def body(client: TestClient) -> None:
        for _ in range(3):
            r = await client.get("/hls/cam1/index.m3u8", headers={"Accept-Encoding": "identity"})
            assert r.status == 200
        assert (await client.get("/hls/cam1/seg00000.ts")).status == 200
        assert (await client.get("/hls/cam1/seg00000.ts", headers={"Range": "bytes=0-99"})
                ).status == 206
        assert (await client.get("/hls/cam1/seg09999.ts")).status == 404  # not counted
        r = await client.get("/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        found = samples(await r.text())
        v = lambda name, **labels: value(found, name, **labels)  # noqa: E731
        assert v("relay_status_up") == 1
        assert v("relay_status_age_seconds") == pytest.approx(2)
        assert v("relay_stream_state", stream="cam1", state="playing") == 1
        assert v("relay_stream_state", stream="cam1", state="retrying") == 0
        assert v("relay_stream_state", stream="cam2", state="retrying") == 1
        video = dict(stream="cam1", track="0", kind="video", codec="h264")
        audio = dict(stream="cam1", track="1", kind="audio", codec="aac")
        assert v("relay_stream_frames_in_total", **video) == 2500
        assert v("relay_stream_bytes_in_total", **video) == 15_000_000
        assert v("relay_stream_bytes_in_total", **audio) == 800_000
        assert v("relay_stream_fps", **video) == 25
        assert v("relay_stream_bitrate_bps", **audio) == 64000
        assert v("relay_stream_packets_received_total", stream="cam1") == 12000
        assert v("relay_stream_packets_lost_total", stream="cam1") == 7
        assert v("relay_stream_packets_garbled_total", stream="cam1") == 1
        assert v("relay_stream_subscriber_drops_total", stream="cam1") == 11
        assert v("relay_stream_reconnects_total", stream="cam2") == 9
        dest = dict(stream="cam1", destination="rtmp://live.example.com/app/***")
        other = dict(stream="cam1", destination="rtmp://other.example.com/app/***")
        assert v("relay_rtmp_state", state="publishing", **dest) == 1
        assert v("relay_rtmp_state", state="retrying", **other) == 1
        assert v("relay_rtmp_state", state="publishing", **other) == 0
        assert v("relay_rtmp_frames_sent_total", **dest) == 7000
        assert v("relay_rtmp_frames_dropped_total", **dest) == 5
        assert v("relay_rtmp_bytes_sent_total", **dest) == 9_000_000
        assert v("relay_rtmp_reconnects_total", **other) == 4
        assert v("relay_hls_segments_written_total", stream="cam1") == 42
        assert v("relay_hls_bytes_written_total", stream="cam1") == 5_000_000
        assert ("relay_hls_segments_written_total", frozenset({("stream", "cam2")})) \
            not in found
        assert v("relay_hls_requests_total", stream="cam1", file="playlist") == 3
        assert v("relay_hls_requests_total", stream="cam1", file="segment") == 2
        playlist_size = len((folders[0] / "cam1" / "index.m3u8").read_bytes())
        assert v("relay_hls_bytes_served_total", stream="cam1") == \
            3 * playlist_size + 1880 + 100
        assert v("relay_hls_viewers", stream="cam1") == 1  # one client, three fetches
        r = await client.get("/hls/cam1/index.m3u8", headers={"Accept-Encoding": "gzip",
                                                              "User-Agent": "other player"})
        compressed = int(r.headers["Content-Length"])
        assert compressed < playlist_size
        found = samples(await (await client.get("/metrics")).text())
        assert value(found, "relay_hls_viewers", stream="cam1") == 2
        assert value(found, "relay_hls_bytes_served_total", stream="cam1") == \
            4 * playlist_size + 1980 - playlist_size + compressed  # bytes on the wire
        assert v("relay_hls_viewers", stream="cam2") == 0

    serve(folders, body)


def test_metrics_without_snapshot(folders: tuple[Path, Path]) -> None:
    async def body(client: TestClient) -> None:
        r = await client.get("/metrics")
        assert r.status == 200
        found = samples(await r.text())
        assert value(found, "relay_status_up") == 0
        folders[1].write_text(json.dumps({"schema_version": SCHEMA_VERSION, "updated": 1,
                                          "streams": [{"name": 5}, "x", {"name": "a"}]}))
        found = samples(await (await client.get("/metrics")).text())
        assert value(found, "relay_status_up") == 0  # refused whole, never half read
        assert not any(name == "relay_stream_state" for name, _ in found)

    serve(folders, body)


def test_disk_errors_are_counted(folders: tuple[Path, Path]) -> None:
    disk_full = "hls segment seg00004.ts: No space left on device (ENOSPC)"
    cam1 = replace(SNAPSHOT.streams[0], disk_errors=6, disk_error=disk_full)
    write(folders[1], replace(SNAPSHOT, streams=(cam1, *SNAPSHOT.streams[1:]), disk_errors=3,
                              disk_error="status snapshot status.json: No space left"))

    async def body(client: TestClient) -> None:
        found = samples(await (await client.get("/metrics")).text())
        assert value(found, "relay_stream_disk_errors_total", stream="cam1") == 6
        assert value(found, "relay_stream_disk_errors_total", stream="cam2") == 0
        assert value(found, "relay_status_disk_errors_total") == 3
        api = await (await client.get("/api/streams")).json()
        assert (api[0]["disk_errors"], api[0]["disk_error"]) == (6, disk_full)

    serve(folders, body)
