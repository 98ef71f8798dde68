"""The LL-HLS sink driver: bus frames in, the LL-HLS files of the shared contract out; on demand
from the control socket's wants, stopped (files removed, ll.json first) after the idle time."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import m3u8
import trio
import trio.testing

from relay.bus import Stream
from relay.drivers.control import Wants
from relay.drivers.ll_hls_sink import run_ll_hls
from relay.files import DiskErrors
from relay.hls.ll import part_name, segment_name
from relay.media import Frame

from .encoded import av_frames


async def publish(stream: Stream, frames: list[Frame]) -> None:
    for frame in frames:
        stream.publish(frame)
        await trio.sleep(0)
    await trio.testing.wait_all_tasks_blocked()


async def wait_listed(out: Path, msn: int) -> None:
    """Wait until ll.json lists segment ``msn``: the writes run in a worker thread."""
    while True:
        try:
            if json.loads((out / "ll.json").read_text())["msn"] >= msn:
                return
        except FileNotFoundError:
            pass
        await trio.sleep(0.01)


def check_listing(out: Path) -> dict[str, int | float]:
    # ll.json first: the relay renames it after the playlists (which may be newer by then)
    sidecar: dict[str, int | float] = json.loads((out / "ll.json").read_text())
    playlist = m3u8.loads((out / "ll.m3u8").read_text())
    assert sidecar["version"] == 1 and sidecar["part_target"] == 0.32  # 8 frames at 25 fps
    assert sidecar["target_duration"] == playlist.target_duration == 1
    assert playlist.segment_map[0].uri == "init.mp4" and (out / "init.mp4").exists()
    parts = [p for s in playlist.segments for p in s.parts]
    assert part_name(int(sidecar["msn"]), int(sidecar["part"])) in [p.uri for p in parts]
    for part in parts:
        assert (out / part.uri).stat().st_size > 0
    for segment in playlist.segments:
        if segment.uri:
            assert (out / segment.uri).exists()
    m3u8.loads((out / "ll_skip.m3u8").read_text())
    # no "*.tmp" check here: the sink's writer thread may be mid-write; the tests' final
    # check (an empty folder once the sink stopped) proves none is left behind
    return sidecar


async def test_always_writes_the_contract_files_and_removes_them(tmp_path: Path) -> None:
    out = tmp_path / "cam"
    frames = av_frames(6.0)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_ll_hls, stream, out, "always", 0.333, Wants(),
                                        disk=DiskErrors("stream=cam")))
            await publish(stream, frames[: len(frames) // 2])
            await wait_listed(out, 2)
            first = check_listing(out)
            await publish(stream, frames[len(frames) // 2:])
            await wait_listed(out, 5)
            later = check_listing(out)
            assert later["msn"] > first["msn"]
            # whole segments are their parts concatenated
            msn = int(later["msn"]) - 1
            parts = sorted(out.glob(f"p{msn}.*.m4s"), key=lambda p: int(p.name.split(".")[1]))
            assert (out / segment_name(msn)).read_bytes() == b"".join(
                p.read_bytes() for p in parts)
            assert not (out / part_name(0, 0)).exists()  # old parts deleted
            nursery.cancel_scope.cancel()
    assert sorted(p.name for p in out.iterdir()) == []


async def test_on_demand_runs_from_a_want_until_idle(tmp_path: Path) -> None:
    out = tmp_path / "cam"
    frames = av_frames(4.0)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    wants = Wants()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_ll_hls, stream, out, "on-demand", 0.333, wants,
                                        disk=DiskErrors("stream=cam"), idle_seconds=2.0))
            await publish(stream, frames[:50])  # two GOPs in the cache: no one asked yet
            assert not out.exists() or not list(out.iterdir())
            wants.want("cam")
            await trio.testing.wait_all_tasks_blocked()
            await publish(stream, frames[50:])
            await wait_listed(out, 3)
            check_listing(out)  # started from the GOP cache: the second GOP is segment 0
            await trio.sleep(1)
            wants.want("cam")  # still read: kept
            await trio.sleep(1)
            assert (out / "ll.json").exists()
            while list(out.iterdir()):  # stopped 2 s after the last want, its files removed
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def test_a_running_stream_is_listed_from_the_first_part(tmp_path: Path) -> None:
    """The bus knows the GOP, so the target duration is fixed up front and the playlist is
    written with the cached GOP's parts, before the first LL segment closes."""
    out = tmp_path / "cam"
    frames = av_frames(2.5)
    stream = Stream("cam")
    stream.set_tracks(list({f.track.index: f.track for f in frames}.values()))
    await publish(stream, frames)  # keyframes at 0, 1 and 2 s: GOP 1 s, 0.5 s cached
    assert stream.gop_seconds == 1.0
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_ll_hls, stream, out, "always", 0.2, Wants(),
                                        disk=DiskErrors("stream=cam")))
            await trio.testing.wait_all_tasks_blocked()
            while not (out / "ll.json").exists():
                await trio.sleep(0.01)
            playlist = m3u8.loads((out / "ll.m3u8").read_text())
            assert playlist.target_duration == 1
            assert not any(s.uri for s in playlist.segments)  # no whole segment yet
            assert [p.uri for s in playlist.segments for p in s.parts][:1] == [part_name(0, 0)]
            nursery.cancel_scope.cancel()
