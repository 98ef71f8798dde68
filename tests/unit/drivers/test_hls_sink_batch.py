"""The HLS sink takes a tick's frames in one wakeup (issue 12): the source publishes every
frame of a merged read at once, and a wakeup per frame cost a reschedule each."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from relay.bus import Stream
from relay.drivers import hls_sink
from relay.drivers.hls_sink import run_hls_sink
from relay.drivers.ticker import ReadTicker
from tests.unit.drivers.deadlines import assert_no_deadline_within
from tests.unit.hls.encoded import av_frames


class StepCounter(trio.abc.Instrument):
    """Counts the steps of the tasks whose name ends with ``suffix``."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix):
            self.steps += 1


async def test_frames_queued_together_are_taken_in_one_wakeup(tmp_path: Path) -> None:
    frames = av_frames(3.0)  # 3 s: more than one 1 s segment, written in between
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    counter = StepCounter("run_hls_sink")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(run_hls_sink, stream, tmp_path / "cam", 1.0, 3)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.add_instrument(counter)
            try:
                for frame in frames:  # one merged read's worth of frames, published at once
                    stream.publish(frame)
                await trio.testing.wait_all_tasks_blocked()
            finally:
                trio.lowlevel.remove_instrument(counter)
            nursery.cancel_scope.cancel()
    assert stats.segments_written >= 2  # every frame was pushed: segments were cut and written
    assert len(frames) > 100
    assert counter.steps < 20  # a wakeup per frame took one step per frame


async def test_a_silence_closes_the_open_segment_without_a_timer_per_stream(
    tmp_path: Path,
) -> None:
    """The idle flush is checked at the read ticks: no deadline of the sink's own is pending
    (a per-stream sleep was one a second), and a silence still lists the open segment."""
    frames = av_frames(1.5)  # less than the 4 s target: the segment stays open
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(run_hls_sink, stream, tmp_path / "cam", 4.0, 3)
            for frame in frames:
                stream.publish(frame)
            await assert_no_deadline_within(10)  # only the fail_after's
            while stats.segments_written == 0:  # the silence: IDLE_FLUSH_SECONDS
                await trio.sleep(0.05)
            await trio.testing.wait_all_tasks_blocked()
            # flushed, and no frame since: the sink leaves the ticker (and the process) asleep
            assert not ReadTicker.current()._readers
            nursery.cancel_scope.cancel()
    assert stats.segments_written == 1


async def test_frames_stuck_behind_a_slow_write_are_not_a_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A segment write slower than IDLE_FLUSH_SECONDS (a stalled disk) holds the frame loop
    while the source goes on publishing: the frames queued meanwhile are no silence, so the
    open segment is not cut early (it was, before the idle check looked at the queue)."""
    frames = av_frames(3.0)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    write_each = hls_sink._Writer.write_each
    slow = [True]

    def stalled(self: hls_sink._Writer, *args: Any) -> None:
        if slow[0]:
            slow[0] = False
            time.sleep(hls_sink.IDLE_FLUSH_SECONDS + 1.0)  # in the writer's thread
        write_each(self, *args)

    monkeypatch.setattr(hls_sink._Writer, "write_each", stalled)
    first = [f for f in frames if f.pts / f.track.clock_rate < 1.2]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(run_hls_sink, stream, tmp_path / "cam", 1.0, 10)
            for frame in first:  # the 1 s cut: its write stalls
                stream.publish(frame)
            await trio.sleep(0.5)
            for frame in frames[len(first):]:  # queued behind the stalled write
                stream.publish(frame)
            while slow[0] or stats.segments_written < 2:
                await trio.sleep(0.05)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    listed = (tmp_path / "cam" / "index.m3u8").read_text()
    durations = [float(line[8:].rstrip(",")) for line in listed.splitlines()
                 if line.startswith("#EXTINF:")]
    assert len(durations) >= 3, listed
    assert min(durations[:-1]) > 0.9, listed  # only the shutdown's last segment may be short
