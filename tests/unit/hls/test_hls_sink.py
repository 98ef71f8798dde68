"""The HLS sink driver: bus frames in, an HLS folder on disk out."""

from __future__ import annotations

import io
from pathlib import Path

import av
import m3u8
import trio

from relay.bus import Stream
from relay.drivers.hls_sink import HlsStats, run_hls_sink
from relay.media import Frame

from .encoded import av_frames


class FakeWallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def publish(stream: Stream, frames: list[Frame]) -> None:
    for frame in frames:
        stream.publish(frame)
        await trio.sleep(0)
    await trio.testing.wait_all_tasks_blocked()


def check_folder(out: Path) -> m3u8.M3U8:
    playlist = m3u8.loads((out / "index.m3u8").read_text())
    for segment in playlist.segments:
        with av.open(io.BytesIO((out / segment.uri).read_bytes()), format="mpegts") as c:
            first = next(p for p in c.demux(video=0) if p.size)
            assert first.is_keyframe
    assert not list(out.glob("*.tmp"))
    return playlist


async def test_writes_segments_and_final_playlist_on_cancel(tmp_path: Path) -> None:
    out = tmp_path / "cam"
    out.mkdir()
    (out / "seg00007.ts").write_bytes(b"old")
    (out / "index.m3u8.tmp").write_bytes(b"half")
    frames = av_frames(5.5)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(run_hls_sink, stream, out, 1.0, 3)
            assert isinstance(stats, HlsStats)
            await publish(stream, frames)
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    playlist = check_folder(out)
    assert playlist.is_endlist
    assert playlist.target_duration == 1  # the 1 s target: the 1 s GOP fits it
    assert [s.uri for s in playlist.segments] == ["seg00011.ts", "seg00012.ts", "seg00013.ts"]
    assert playlist.media_sequence == 11
    assert playlist.segments[-1].duration == 0.52  # the open segment (13 frames), flushed
    assert not (out / "seg00007.ts").exists()
    assert playlist.discontinuity_sequence == 1  # old segments found: seg00008 was flagged
    assert stats.segments_written == 6
    assert stats.bytes_written == sum(p.stat().st_size for p in out.glob("seg*.ts"))
    assert stats.last_segment_at is not None and stats.target_duration == 1
    assert stats.target_warning is None


async def test_stream_close_ends_playlist_and_expired_segments_are_deleted(
    tmp_path: Path,
) -> None:
    frames = av_frames(8.0)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    clock = FakeWallClock()
    stats = HlsStats()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_hls_sink(
                stream, tmp_path, 1.0, 2, stats, wall_clock=clock,
                task_status=task_status))
            for frame in frames:
                clock.now = 1_700_000_000.0 + frame.pts / frame.track.clock_rate
                stream.publish(frame)
                if frame.key and frame.track.index == 0 and frame.pts:
                    while stats.segments_written < frame.pts // 90000:  # let the sink write
                        await trio.sleep(0.001)
            clock.now = 1_700_000_008.5
            stream.close()
    playlist = check_folder(tmp_path)
    assert playlist.is_endlist
    assert len(playlist.segments) == 2
    # Segment k (1 s) is written at t=k+1 and leaves the 2-segment window at t=k+3; it stays
    # for itself (1 s) and the 2 s playlist: deletable from t=k+6. Closed at t=8.5: 0..2 gone.
    on_disk = sorted(p.name for p in tmp_path.glob("seg*.ts"))
    assert on_disk == ["seg00003.ts", "seg00004.ts", "seg00005.ts", "seg00006.ts",
                       "seg00007.ts"]
    assert stats.segments_deleted == 3
    assert playlist.segments[0].program_date_time.timestamp() == 1_700_000_006.0
    assert not any(s.discontinuity for s in playlist.segments)


async def test_stream_without_keyframes_keeps_the_playlist_moving(tmp_path: Path,
                                                                   caplog) -> None:
    """One IDR in 12 s: segments of EXT-X-TARGETDURATION (the 2 s target) are listed anyway,
    one log line for the cuts and one for the target."""
    out = tmp_path / "cam"
    frames = av_frames(12.0, keyint=12 * 25, audio=False)  # within the subscription's queue
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(run_hls_sink, stream, out, 2.0, 6)
            await publish(stream, frames)
            stream.close()  # the sink ends after the frames it has queued
    playlist = m3u8.loads((out / "index.m3u8").read_text())
    assert playlist.target_duration == 2
    assert [s.duration for s in playlist.segments] == [2.0] * 6
    assert stats.cuts_without_keyframe == 5 and stats.overlong_segments == 0
    lines = [r.getMessage() for r in caplog.records if "not a keyframe" in r.getMessage()]
    assert len(lines) == 1 and "stream=cam" in lines[0]
    assert stats.target_warning == ("no keyframe in 12.0 s after the first: segments are cut "
                                    "without one at EXT-X-TARGETDURATION 2 s")
    lines = [r.getMessage() for r in caplog.records if "no keyframe in" in r.getMessage()]
    assert lines == [f"stream=cam hls {stats.target_warning}"]
