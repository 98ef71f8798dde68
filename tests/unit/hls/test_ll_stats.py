"""The LL-HLS muxer's counters (LlStats), which the status snapshot reports as ``ll_hls``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio
import trio.testing

from relay.bus import Stream
from relay.drivers.control import Wants
from relay.drivers.ll_hls_sink import LlStats, run_ll_hls
from relay.files import DiskErrors
from relay.hls.ll import PartCutter
from relay.media import Frame

from .encoded import av_frames
from .test_ll_hls_sink import publish, wait_listed


def test_overlong_short_parts_and_cuts_add_up_across_the_muxers_runs() -> None:
    tracks = list({f.track.index: f.track for f in av_frames(0.2)}.values())
    stats = LlStats()
    first, second = PartCutter(tracks, 0.333), PartCutter(tracks, 0.333)
    stats.follow(first)
    first.overlong_parts, first.short_parts, first.cuts_without_keyframe = 2, 6, 1
    assert (stats.overlong_parts, stats.short_parts, stats.cuts_without_keyframe) == (2, 6, 1)
    stats.follow(second)  # a restart: the first run's counts stay
    second.overlong_parts, second.short_parts, second.cuts_without_keyframe = 3, 7, 4
    assert (stats.overlong_parts, stats.short_parts, stats.cuts_without_keyframe) == (5, 13, 5)


async def test_on_demand_counts_parts_and_restarts_and_says_when_it_runs(
        tmp_path: Path) -> None:
    out = tmp_path / "cam"
    frames = av_frames(4.0)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    wants = Wants()
    stats = LlStats(mode="on-demand")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_ll_hls, stream, out, "on-demand", 0.333, wants,
                                        disk=DiskErrors("stream=cam"), idle_seconds=1.0,
                                        stats=stats))
            await publish(stream, frames[:50])
            assert not stats.running and stats.parts_written == 0  # nobody asked yet
            wants.want("cam")
            while not stats.running:  # its folder is made in a worker thread first
                await trio.sleep(0.01)
            await publish(stream, frames[50:150])
            await wait_listed(out, 1)
            written = stats.parts_written
            assert written >= len(list(out.glob("p*.m4s"))) > 0
            assert stats.restarts == 0
            last = frames[149]
            # the decode time steps back: a new LL stream, counted
            stream.publish(Frame(last.track, last.pts - 3000, last.dts - 3000, True,
                                 last.data))
            await publish(stream, frames[150:])
            while stats.restarts == 0:  # the sink's writes run in a worker thread
                await trio.sleep(0.01)
            assert stats.restarts == 1 and stats.running
            while stats.running:  # stopped 1 s after the last want; the counts stay
                await trio.sleep(0.05)
            assert stats.parts_written >= written and stats.restarts == 1
            nursery.cancel_scope.cancel()
