"""Driver: one Stream's frames to LL-HLS files in its HLS folder (RFC 8216bis 6.2.5), on demand.

The files (the contract with the web process, which serves them): ``init.mp4``, parts
``p{msn}.{i}.m4s``, whole segments ``s{msn}.m4s`` (a segment's parts concatenated, written when
it closes), ``ll.m3u8``, ``ll_skip.m3u8`` (the delta update) and, last, ``ll.json`` =
``{"msn", "part", "part_target", "target_duration", "version"}``, whose rename tells the web
process (by inotify) that a new part is listed. Every file is written atomically (temp + rename).
Parts older than ``PART_SEGMENTS`` segments and segments leaving the window are deleted; when the
muxer stops, ``ll.json`` is removed first (so the web process stops answering), then the rest.

``run_ll_hls`` runs the muxer per the stream's ``ll_hls`` mode: ``always``; ``on-demand`` (from
the first ``ll-want NAME`` on the control socket until ``IDLE_SECONDS`` after the last, started
from the GOP cache so the first part is ready at once); ``off``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from relay.bus import Stream
from relay.drivers.control import Wants
from relay.files import TEMP_SUFFIX, DiskErrors
from relay.hls.fmp4 import CARRIED
from relay.hls.ll import (
    LlPlaylist,
    LlRestart,
    Part,
    PartCutter,
    part_name,
    segment_name,
)

log = logging.getLogger(__name__)

IDLE_SECONDS = 60.0
"""An on-demand muxer stops this long after the last ``ll-want``."""
SIDECAR = "ll.json"
_NAMES = ("ll.m3u8", "ll_skip.m3u8", "init.mp4")


@dataclass(slots=True)
class LlStats:
    """Counters of one stream's LL-HLS muxer, kept across its runs, read by the status snapshot.

    Attributes:
        mode: the configured ``ll_hls`` (on-demand | always | off).
        running: the muxer is writing parts now.
        parts_written: parts handed to the writer.
        restarts: new LL streams after a discontinuity.
    """

    mode: str = "always"
    running: bool = False
    parts_written: int = 0
    restarts: int = 0
    _cutter: PartCutter | None = None
    _overlong_before: int = 0
    _short_before: int = 0
    _cuts_before: int = 0

    def follow(self, cutter: PartCutter) -> None:
        """Count ``cutter``'s parts from now on (a new one after a restart or a stop)."""
        if self._cutter is not None:
            self._overlong_before += self._cutter.overlong_parts
            self._short_before += self._cutter.short_parts
            self._cuts_before += self._cutter.cuts_without_keyframe
        self._cutter = cutter

    @property
    def overlong_parts(self) -> int:
        """Parts longer than PART-TARGET, every run together."""
        return self._overlong_before + (self._cutter.overlong_parts if self._cutter else 0)

    @property
    def short_parts(self) -> int:
        """Parts under 85 % of PART-TARGET (uneven frame times), every run together."""
        return self._short_before + (self._cutter.short_parts if self._cutter else 0)

    @property
    def cuts_without_keyframe(self) -> int:
        """Segments cut at a part boundary without a keyframe, every run together."""
        return self._cuts_before + (self._cutter.cuts_without_keyframe if self._cutter else 0)


def remove_ll_files(out_dir: Path) -> None:
    """Remove every LL-HLS file of the folder, ``ll.json`` first."""
    (out_dir / SIDECAR).unlink(missing_ok=True)
    if not out_dir.is_dir():
        return
    for entry in os.scandir(out_dir):
        name = entry.name
        if (name in _NAMES or (name.endswith(".m4s") and name[:1] in "ps")
                or (name.endswith(TEMP_SUFFIX) and name.removesuffix(TEMP_SUFFIX).endswith(
                    (".m4s", ".mp4", "ll.m3u8", "ll_skip.m3u8", SIDECAR)))):
            os.unlink(entry.path)


class _LlWriter:
    """Turns parts into files; all its I/O is synchronous (run in a worker thread)."""

    def __init__(self, out_dir: Path, disk: DiskErrors) -> None:
        self.out_dir = out_dir
        self.disk = disk
        self.playlist: LlPlaylist | None = None
        self._pending: list[Part] = []  # parts before the target duration is known
        self._segment: list[bytes] = []  # media of the open segment's parts
        self._wall_offset = float("inf")  # wall time minus stream time: the least seen
        self._init: bytes | None = None

    def write(self, parts: list[Part], target_duration: int | None, part_target: float | None,
              now: float) -> None:
        for part in parts:
            self._write_part(part, now)
        if target_duration is None or part_target is None:
            return
        playlist = self.playlist
        if playlist is None:
            playlist = self.playlist = LlPlaylist(target_duration, part_target)
        gone: list[str] = []
        for part in self._pending:
            pdt = datetime.fromtimestamp(self._wall_offset + part.start, UTC)
            gone += playlist.add(part, pdt)
        self._pending.clear()
        if not self._write_listing(playlist):
            return
        for name in gone:
            try:
                os.unlink(self.out_dir / name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.disk.failed("ll-hls delete", self.out_dir / name, exc)

    def _write_part(self, part: Part, now: float) -> None:
        # the least lag seen: parts from the GOP cache come out in a burst, long after capture
        self._wall_offset = min(self._wall_offset, now - part.start - part.duration)
        if part.init != self._init and self.disk.write("ll-hls init", self.out_dir / "init.mp4",
                                                       part.init):
            self._init = part.init
        self.disk.write("ll-hls part", self.out_dir / part_name(part.msn, part.index),
                        part.media)
        self._segment.append(part.media)
        if part.closes_segment:
            self.disk.write("ll-hls segment", self.out_dir / segment_name(part.msn),
                            b"".join(self._segment))
            self._segment.clear()
        self._pending.append(part)

    def _write_listing(self, playlist: LlPlaylist) -> bool:
        out = self.out_dir
        disk = self.disk
        if not (disk.write("ll-hls playlist", out / "ll.m3u8", playlist.render().encode())
                and disk.write("ll-hls playlist", out / "ll_skip.m3u8",
                               playlist.render(skip=True).encode())):
            return False
        msn, index = playlist.last
        sidecar = {"msn": msn, "part": index, "part_target": playlist.part_target,
                   "target_duration": playlist.target_duration, "version": 1}
        return disk.write("ll-hls sidecar", out / SIDECAR, json.dumps(sidecar).encode())


async def run_ll_hls_sink(stream: Stream, out_dir: Path, part_seconds: float, *,
                          disk: DiskErrors, wall_clock: Callable[[], float] = time.time,
                          stats: LlStats | None = None,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Write ``stream`` as LL-HLS into ``out_dir`` until cancelled; remove the files then.

    A discontinuity (``LlRestart``) starts a new LL stream: files removed, numbers from 0, from
    the next keyframe.
    """
    stats = stats if stats is not None else LlStats()
    with stream.subscribe(name="ll-hls") as subscription:  # first: the GOP cache, at once
        await trio.to_thread.run_sync(lambda: out_dir.mkdir(parents=True, exist_ok=True))
        task_status.started()
        stats.running = True
        try:
            while True:
                await trio.to_thread.run_sync(remove_ll_files, out_dir)
                writer = _LlWriter(out_dir, disk)
                cutter: PartCutter | None = None
                try:
                    async for frame in subscription:
                        if cutter is None:
                            tracks = list(stream.tracks.values())
                            if not any(t.codec in CARRIED for t in tracks):
                                log.warning("stream=%s ll-hls: no track it can carry (H.264, "
                                            "H.265, AAC); nothing written", stream.name)
                                await trio.sleep_forever()  # a new run brings a new Stream
                            cutter = PartCutter(tracks, part_seconds, gop=stream.gop_seconds)
                            stats.follow(cutter)
                        parts = cutter.push(frame)  # muxes a part when one closes
                        if parts:
                            stats.parts_written += len(parts)
                            await trio.to_thread.run_sync(writer.write, parts,
                                                          cutter.target_duration,
                                                          cutter.part_target, wall_clock())
                    return
                except LlRestart as exc:
                    stats.restarts += 1
                    log.info("stream=%s ll-hls restarts: %s", stream.name, exc)
        finally:
            stats.running = False
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(remove_ll_files, out_dir)


async def run_ll_hls(stream: Stream, out_dir: Path, mode: str, part_seconds: float,
                     wants: Wants, *, disk: DiskErrors, idle_seconds: float = IDLE_SECONDS,
                     stats: LlStats | None = None,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The LL-HLS muxer of a stream per its ``ll_hls`` mode, until cancelled."""
    if mode == "always":
        await run_ll_hls_sink(stream, out_dir, part_seconds, disk=disk, stats=stats,
                              task_status=task_status)
        return
    task_status.started()
    if mode == "off":
        await trio.sleep_forever()
    name = stream.name
    while True:
        await wants.wait(name)
        log.info("stream=%s ll-hls started on demand", name)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_ll_hls_sink, stream, out_dir, part_seconds,
                                        disk=disk, stats=stats))
            while await wants.wait(name, idle_seconds):
                pass
            nursery.cancel_scope.cancel()
        log.info("stream=%s ll-hls stopped: no request for %.0f s", name, idle_seconds)

