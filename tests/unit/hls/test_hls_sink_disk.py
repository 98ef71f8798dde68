"""The HLS sink on a disk that fills up and frees again (a real tmpfs): it never stops."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import m3u8
import pytest
import trio
import trio.testing

from relay.bus import Stream
from relay.drivers.hls_sink import HlsStats, run_hls_sink
from relay.files import DiskErrors
from relay.media import Frame
from tests.smalldisk import FILLER, small_disk

from .encoded import av_frames
from .test_hls_sink import check_folder


async def wait_until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await trio.sleep(0.005)


def playlist(out: Path) -> m3u8.M3U8:
    return m3u8.loads((out / "index.m3u8").read_text())


async def test_segments_that_do_not_fit_are_skipped_and_writing_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay.files")
    frames = av_frames(12.0, audio=False)  # 300 frames: the subscription's queue holds them all

    def between(start: float, end: float) -> list[Frame]:
        return [f for f in frames if start * 90000 <= f.dts < end * 90000]

    stream = Stream("cam")
    stream.set_tracks([frames[0].track])
    stats = HlsStats()
    errors = DiskErrors("stream=cam")
    with small_disk(tmp_path / "mnt") as disk, trio.fail_after(60):
        out = disk.path / "cam"
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_hls_sink(
                stream, out, 1.0, 20, stats, disk=errors, task_status=task_status))
            for frame in between(0, 4):
                stream.publish(frame)
            # counted when the segment is written; listed a moment later, in the same thread
            await wait_until(lambda: stats.segments_written == 3
                             and len(playlist(out).segments) == 3)
            before = playlist(out)
            disk.fill()
            for frame in between(4, 8):  # closes 4 segments, none of which fits
                stream.publish(frame)
            await wait_until(lambda: errors.count >= 8)  # each: its segment and the playlist
            assert sorted(p.name for p in out.iterdir() if not p.name.startswith("seg")) == [
                "index.m3u8"]  # no temp file left behind
            assert playlist(out).dumps() == before.dumps()  # the last good one, still served
            assert stats.segments_written == 3
            disk.free()
            for frame in between(8, 12):
                stream.publish(frame)
            await wait_until(lambda: stats.segments_written == 7)
            stream.close()  # the sink closes and lists the open segment, then ENDLIST
        assert not (disk.path / FILLER).exists()
        after = check_folder(out)  # every listed segment decodes, starts on a keyframe
    assert after.is_endlist
    uris = [s.uri for s in after.segments]
    assert uris[:3] == [s.uri for s in before.segments]
    # seg00003..6 did not fit; their numbers are not reused
    assert uris == [f"seg{n:05d}.ts" for n in (0, 1, 2, 7, 8, 9, 10, 11)]
    assert after.media_sequence >= before.media_sequence
    assert [s.discontinuity for s in after.segments] == [False] * 3 + [True] + [False] * (
        len(uris) - 4)
    assert stats.segments_written == 8
    assert errors.count == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left on device (ENOSPC)" in warnings[0]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "stream=cam disk: writes work again (8 failed during the outage)"]


async def test_a_read_only_folder_is_tried_again_until_it_can_be_prepared(
    tmp_path: Path, autojump_clock: trio.testing.MockClock,
) -> None:
    errors = DiskErrors("stream=cam")
    with small_disk(tmp_path / "mnt", "1m") as disk:
        out = disk.path / "cam"
        disk.remount("ro")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(run_hls_sink, Stream("cam"), out, disk=errors))
            await wait_until(lambda: errors.count >= 2)  # tried again, not given up
            assert errors.last == "hls folder cam: Read-only file system (EROFS)"
            disk.remount("rw")
            await wait_until(out.is_dir)
            nursery.cancel_scope.cancel()
