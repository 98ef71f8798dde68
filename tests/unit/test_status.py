"""The status schema (relay/status_schema.py) and the relay's snapshot of its live counters."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.bus import Stream
from relay.drivers.hls_sink import HlsStats
from relay.drivers.ll_hls_sink import LlStats
from relay.drivers.rtmp_sink import RtmpStats
from relay.files import DiskErrors
from relay.logs import Redactor
from relay.media import Codec, Track
from relay.status import Snapshotter, StreamStatus
from relay.status_schema import (
    MAX_SNAPSHOT_BYTES,
    SCHEMA_VERSION,
    LlHlsSnapshot,
    RtmpSnapshot,
    Snapshot,
    SnapshotError,
    StreamSnapshot,
    TrackSnapshot,
    decode_snapshot,
    encode_snapshot,
)


def strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Any value of a schema type the relay can produce (finite floats, 64-bit counters)."""
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=20)
    if tp is type(None):
        return st.none()
    if get_origin(tp) in (Union, types.UnionType):
        return st.one_of(*map(strategy, get_args(tp)))
    if get_origin(tp) is tuple:
        return st.lists(strategy(get_args(tp)[0]), max_size=3).map(tuple)
    hints = get_type_hints(tp)
    return st.builds(tp, **{name: strategy(hints[name]) for name in tp.__struct_fields__
                            if name != "schema_version"})  # the one value the relay writes


@given(strategy(Snapshot))
def test_any_snapshot_survives_encode_and_decode(snapshot: Snapshot) -> None:
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_the_version_is_written_and_another_is_refused_in_one_line() -> None:
    data = json.loads(encode_snapshot(Snapshot(updated=1.0)))
    assert data["schema_version"] == SCHEMA_VERSION
    for version, found in ((SCHEMA_VERSION + 1, f"schema version {SCHEMA_VERSION + 1}"),
                           (None, "no schema version")):
        data["schema_version"] = version
        with pytest.raises(SnapshotError) as error:
            decode_snapshot(json.dumps(data).encode())
        assert str(error.value) == (f"{found}, this web process reads version {SCHEMA_VERSION}:"
                                    " the relay and its web process come from different installs")
    del data["schema_version"]
    with pytest.raises(SnapshotError, match="^no schema version"):
        decode_snapshot(json.dumps(data).encode())


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "not a status snapshot: JSON is malformed"),
    (b"[]", "not a status snapshot: Expected `object`, got `array`"),
    (b'{"schema_version": %d, "updated": 1, "streams": [{"name": "a", "state": "playing", '
     b'"source": "s", "packets_lost": "7"}]}' % SCHEMA_VERSION,
     "not a status snapshot: Expected `int`, got `str` - at `$.streams[0].packets_lost`"),
    (b'{"schema_version": %d, "updated": 1, "streams": [{"name": "a"}]}' % SCHEMA_VERSION,
     "not a status snapshot: Object missing required field `state` - at `$.streams[0]`"),
])
def test_a_garbled_snapshot_is_refused_naming_where(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotError) as error:
        decode_snapshot(data)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_an_oversized_snapshot_is_refused_before_it_is_parsed() -> None:
    big = encode_snapshot(Snapshot(updated=1.0, disk_error="x" * MAX_SNAPSHOT_BYTES))
    with pytest.raises(SnapshotError, match=f"^over {MAX_SNAPSHOT_BYTES} bytes$"):
        decode_snapshot(big)


def live_status() -> StreamStatus:
    """A stream with a video and an audio track, HLS, two RTMP destinations, a disk error."""
    stream = Stream("cam1")
    stream.set_tracks([Track(index=0, codec=Codec.H264, clock_rate=90000, width=640, height=360),
                       Track(index=1, codec=Codec.AAC, clock_rate=48000, sample_rate=48000,
                             channels=2)])
    status = StreamStatus("cam1", "rtsp://192.0.2.10/s", stream, state="playing",
                          transport="udp", packets_received=900, packets_lost=3,
                          packets_garbled=1, frames_dropped=2, frames_damaged=4, reconnects=5,
                          transport_fallbacks=1, skipped_tracks=["2 (video/VP8)"],
                          last_error="camera went away")
    status.hls = HlsStats(segments_written=7, bytes_written=70_000, target_duration=12,
                          target_warning="keyframe interval 12.00 s is longer than the 10 s "
                                         "segment target: EXT-X-TARGETDURATION 12 s")
    status.ll_hls = LlStats(mode="on-demand", running=True, parts_written=90, restarts=1)
    status.rtmp = [RtmpStats("rtmp://a.example/app/***", state="publishing", bytes_sent=10,
                             frames_sent=20, frames_dropped=1, reconnects=2,
                             warnings=["G.711 is sent as AAC"]),
                   RtmpStats("rtmp://b.example/app/***")]
    status.disk.failed("hls segment", Path("/hls/cam1/seg00007.ts"), OSError(28, "No space"))
    return status


def test_the_relay_snapshots_every_counter_and_rates_over_the_interval() -> None:
    status = live_status()
    snapshotter = Snapshotter(str)
    disk = DiskErrors("relay")
    push = {"cam1": "http://u:p@origin.example/live/"}.get
    status.stream.subscriber_drops, status.stream.gop_cache_overflows = 6, 1
    first = snapshotter.snapshot([status], 100.0, 1_700_000_000.0, disk, push)
    assert [t.fps for t in first.streams[0].tracks] == [None, None]  # no interval yet
    for _ in range(25):
        status.count(status.stream.tracks[0], 1000)
    status.count(status.stream.tracks[1], 500)
    status.tracks[1].udp_receive_buffer = 4 << 20
    disk.failed("status snapshot", Path("/run/status.json"), OSError(28, "No space"))
    snapshot = snapshotter.snapshot([status], 101.0, 1_700_000_001.0, disk, push)
    assert snapshot == Snapshot(
        updated=1_700_000_001.0, disk_errors=1,
        disk_error="status snapshot status.json: No space (ENOSPC)",
        streams=(StreamSnapshot(
            name="cam1", state="playing", source="rtsp://192.0.2.10/s", transport="udp",
            tracks=(TrackSnapshot(index=0, kind="video", codec="h264", width=640, height=360,
                                  fps=25.0, bitrate=200_000, frames=25, bytes=25_000),
                    TrackSnapshot(index=1, kind="audio", codec="aac", sample_rate=48000,
                                  channels=2, bitrate=4000, frames=1, bytes=500,
                                  udp_receive_buffer=4 << 20)),
            skipped_tracks=("2 (video/VP8)",), packets_received=900, packets_lost=3,
            packets_garbled=1, frames_dropped=2, frames_damaged=4, reconnects=5,
            transport_fallbacks=1, subscriber_drops=6, gop_cache_overflows=1,
            last_error="camera went away", disk_errors=1,
            disk_error="hls segment seg00007.ts: No space (ENOSPC)",
            hls="/hls/cam1/index.m3u8", hls_segments=7, hls_bytes_written=70_000,
            hls_target_duration=12,
            hls_target_warning="keyframe interval 12.00 s is longer than the 10 s segment "
                               "target: EXT-X-TARGETDURATION 12 s",
            ll_hls=LlHlsSnapshot(mode="on-demand", running=True, parts_written=90, restarts=1),
            rtmp=(RtmpSnapshot(destination="rtmp://a.example/app/***", state="publishing",
                               bytes_sent=10, frames_sent=20, frames_dropped=1, reconnects=2,
                               warnings=("G.711 is sent as AAC",)),
                  RtmpSnapshot(destination="rtmp://b.example/app/***", state="connecting")),
            hls_push="http://u:p@origin.example/live/"),))
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_the_snapshot_carries_every_field_of_the_live_status() -> None:
    """A counter added to StreamStatus must reach the schema (or be named here as internal)."""
    internal = {"stream", "tracks", "hls", "rtmp", "disk"}  # snapshotted in their own shapes
    live = set(StreamStatus.__dataclass_fields__) - internal
    assert live <= set(StreamSnapshot.__struct_fields__)
    assert {"tracks", "hls", "rtmp", "disk_errors", "disk_error"} <= set(
        StreamSnapshot.__struct_fields__)


def test_the_snapshot_scrubs_the_configured_secrets_from_error_texts() -> None:
    """Error texts leave the process in the snapshot: a peer may quote a key outside a URL."""
    status = live_status()
    status.last_error = "camera said: bad password hunter2"
    status.rtmp[0].last_error = "server refused key streamkey123"
    redact = Redactor()
    redact.set_secrets(["hunter2", "streamkey123"])
    stream = Snapshotter(redact).snapshot([status], 1.0, 2.0, DiskErrors("relay"),
                                          lambda _: None).streams[0]
    assert stream.last_error == "camera said: bad password ***"
    assert stream.rtmp[0].last_error == "server refused key ***"
    assert stream.rtmp[1].last_error is None
