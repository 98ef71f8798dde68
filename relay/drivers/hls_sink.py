"""Driver: one Stream's frames to an HLS folder on disk (RFC 8216 section 6.2.1, 6.2.2).

Subscribes to the bus, feeds the Segmenter, and writes ``segNNNNN.ts`` then ``index.m3u8``, each
atomically (temp file in the same folder, then ``os.replace``), so a reader never sees a partial
file. Segments leaving the window are deleted once their availability period is over. On
cancellation (or the stream closing) the open segment is closed, listed, and the playlist is
rewritten with EXT-X-ENDLIST under a shielded cancel scope.

Numbering continues after the highest segment number found in the folder, so a restarted relay
never reuses a URI that a browser or CDN may have cached (segments are served as immutable).

A disk error (full, read-only, failing) never ends the sink: a segment that cannot be written is
left out of the playlist (its number is not reused, and the next listed segment carries
EXT-X-DISCONTINUITY), a playlist that cannot be written is written whole with the next segment,
and a folder that cannot be prepared is tried again every ``DISK_RETRY_SECONDS``. Each failure is
recorded in the stream's ``DiskErrors``; the segmenter and the playlist keep their state.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio

from relay.bus import Stream
from relay.drivers.ticker import ReadTicker
from relay.files import TEMP_SUFFIX, DiskErrors
from relay.hls.playlist import MediaPlaylist
from relay.hls.segmenter import MAX_SEGMENT_BYTES, Segment, Segmenter

log = logging.getLogger(__name__)

PLAYLIST = "index.m3u8"
_SEGMENT_NAME = re.compile(r"seg(\d{5,12})\.ts")
IDLE_FLUSH_SECONDS = 2.0
"""A stream silent this long (a camera gone, reconnecting) gets its open segment closed and
listed at once, instead of when the source comes back."""
_CLOCK_RESYNC_SECONDS = 2.0
"""Program date-times follow the stream clock; they re-anchor to the wall clock when the stream
falls behind it by more than this (a stall), or at a discontinuity, never going backwards."""
DISK_RETRY_SECONDS = 5.0
"""A folder that could not be prepared (created, cleaned) is tried again after this long."""


@dataclass(slots=True)
class HlsStats:
    """Counters of one HLS sink, read by the status snapshot.

    Attributes:
        segments_written: segments written since start.
        last_segment_at: Unix time of the last segment written, None before the first.
        bytes_written: TS bytes written.
        segments_deleted: expired segments removed from disk.
        target_duration: EXT-X-TARGETDURATION in use, None before the first segment.
        target_warning: why the target duration is longer than configured, or why segments
            start without keyframes (``Segmenter.target_warning``); None if neither.
        overlong_segments: segments longer than the target duration (a GOP longer than planned).
        frames_dropped: frames the segmenter dropped (waiting for a keyframe, bad DTS).
        frames_skipped: frames of a codec HLS/TS cannot carry (e.g. G.711), not written.
        segments_failed: segments FFmpeg refused to mux (lost; the next one is flagged).
        cuts_without_keyframe: segments cut at a non-keyframe, none having come in time.
        cuts_for_size: segments cut early at the segmenter's byte bound.
        playlist: path of the playlist written.
    """

    segments_written: int = 0
    last_segment_at: float | None = None
    bytes_written: int = 0
    segments_deleted: int = 0
    target_duration: int | None = None
    target_warning: str | None = None
    overlong_segments: int = 0
    frames_dropped: int = 0
    frames_skipped: int = 0
    segments_failed: int = 0
    cuts_without_keyframe: int = 0
    cuts_for_size: int = 0
    playlist: str | None = None


def prepare_dir(out_dir: Path) -> int:
    """Create the folder, remove temp files and old segments; return the next segment number."""
    out_dir.mkdir(parents=True, exist_ok=True)
    highest = -1
    for entry in os.scandir(out_dir):
        if entry.name.endswith(TEMP_SUFFIX):
            os.unlink(entry.path)
            continue
        match = _SEGMENT_NAME.fullmatch(entry.name)
        if match:
            highest = max(highest, int(match.group(1)))
            os.unlink(entry.path)
    return highest + 1


class _Writer:
    """Turns segments into files and keeps the playlist; all its I/O is synchronous."""

    def __init__(self, out_dir: Path, segment_seconds: float, window: int,
                 sequence: int, stats: HlsStats, disk: DiskErrors) -> None:
        self.out_dir = out_dir
        self.segment_seconds = segment_seconds
        self.window = window
        self.sequence = sequence
        self.stats = stats
        self.disk = disk
        self.playlist: MediaPlaylist | None = None
        self._missing = False  # a segment was not written: the next listed one is discontinuous
        self._wall_offset: float | None = None  # wall time minus stream time
        self._last_end: float | None = None  # wall time the last segment listed ends
        self._cutting = False  # the last segment was cut without a keyframe: logged already

    def write(self, segments: list[Segment], segmenter: Segmenter, now: float,
              arrival: float | None = None) -> None:
        """Write segments; ``arrival`` is the wall time their last frame arrived (default now)."""
        for segment in segments:
            self._write_one(segment, segmenter, now, arrival)
        if segments:
            self._write_playlist()
            self._delete_expired(now)

    def write_each(self, closed: list[list[Segment]], segmenter: Segmenter,
                   now: float) -> None:
        """``write`` for each push's segments in turn."""
        for segments in closed:
            self.write(segments, segmenter, now)

    def _write_one(self, segment: Segment, segmenter: Segmenter, now: float,
                   arrival: float | None = None) -> None:
        if self.playlist is None:
            target = segmenter.target_duration  # fixed by the segmenter with its first segment
            assert target is not None
            self.playlist = MediaPlaylist(target, self.window, media_sequence=self.sequence)
            self.stats.target_duration = target
        end = segment.start + segment.duration
        # the segment ends when its last frame arrived (now, unless closed after a silence)
        candidate = (now if arrival is None else arrival) - end
        if (self._wall_offset is None or segment.discontinuity
                or candidate - self._wall_offset > _CLOCK_RESYNC_SECONDS):
            self._wall_offset = candidate
        if self._last_end is not None:  # program date-times never go back
            self._wall_offset = max(self._wall_offset, self._last_end - segment.start)
        self._last_end = self._wall_offset + end
        uri = f"seg{self.sequence:05d}.ts"
        self.sequence += 1
        stats = self.stats
        stats.segments_failed = segmenter.segments_failed
        stats.frames_dropped = segmenter.frames_dropped
        stats.frames_skipped = segmenter.frames_skipped
        cuts = (segmenter.cuts_without_keyframe, segmenter.cuts_for_size)
        cutting = cuts != (stats.cuts_without_keyframe, stats.cuts_for_size)
        if cutting and not self._cutting:  # one line per run of such cuts
            log.warning("stream=%s hls segment cut at a frame that is not a keyframe (none within "
                        "EXT-X-TARGETDURATION %d s, or MAX_SEGMENT_BYTES %d reached); players "
                        "joining there start at the next keyframe", self.out_dir.name,
                        segmenter.target_duration, MAX_SEGMENT_BYTES)
        self._cutting = cutting
        stats.cuts_without_keyframe, stats.cuts_for_size = cuts
        if segmenter.target_warning != stats.target_warning:  # set once by the segmenter
            stats.target_warning = segmenter.target_warning
            log.warning("stream=%s hls %s", self.out_dir.name, stats.target_warning)
        if not self.disk.write("hls segment", self.out_dir / uri, segment.data):
            self._missing = True
            return
        pdt = datetime.fromtimestamp(self._wall_offset + segment.start, UTC)
        self.playlist.add(uri, segment.duration, pdt, segment.discontinuity or self._missing,
                          now=now)
        self._missing = False
        stats.segments_written += 1
        stats.bytes_written += len(segment.data)
        stats.last_segment_at = now
        if self.playlist.overlong > stats.overlong_segments:
            log.warning("stream=%s hls segment of %.3f s exceeds EXT-X-TARGETDURATION %d "
                        "(the GOP grew); listed anyway", self.out_dir.name, segment.duration,
                        self.playlist.target_duration)
        stats.overlong_segments = self.playlist.overlong

    def _write_playlist(self) -> None:
        assert self.playlist is not None
        path = self.out_dir / PLAYLIST
        if self.disk.write("hls playlist", path, self.playlist.render().encode()):
            self.stats.playlist = str(path)

    def _delete_expired(self, now: float) -> None:
        assert self.playlist is not None
        for uri in self.playlist.expired(now):
            path = self.out_dir / uri
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # left on disk; the next start's prepare_dir removes it
                self.disk.failed("hls delete", path, exc)
                continue
            self.disk.ok("hls delete")
            self.stats.segments_deleted += 1

    def finish(self, segments: list[Segment], segmenter: Segmenter, now: float) -> None:
        for segment in segments:
            self._write_one(segment, segmenter, now)
        if self.playlist is not None:
            self.playlist.end()
            self._write_playlist()
            self._delete_expired(now)


async def run_hls_sink(
    stream: Stream,
    out_dir: Path,
    segment_seconds: float = 10.0,
    window: int = 6,
    stats: HlsStats | None = None,
    *,
    disk: DiskErrors | None = None,
    wall_clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[HlsStats] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write ``stream`` as live HLS into ``out_dir`` until cancelled or the stream closes.

    Args:
        stream: the bus stream to segment.
        out_dir: the stream's HLS folder (``DIR/NAME``); created if missing.
        segment_seconds: segment target duration.
        window: segments listed in the playlist.
        stats: counters to update (a new ``HlsStats`` if None).
        disk: where failed writes are recorded (the stream's, kept across restarts).
        wall_clock: Unix time source, for program date-times and segment expiry.
        task_status: ``started()`` with the stats object once subscribed.
    """
    stats = stats if stats is not None else HlsStats()
    disk = disk if disk is not None else DiskErrors(f"stream={stream.name}")
    while True:
        try:
            sequence = await trio.to_thread.run_sync(prepare_dir, out_dir)
            break
        except OSError as exc:
            disk.failed("hls folder", out_dir, exc)
            await trio.sleep(DISK_RETRY_SECONDS)
    disk.ok("hls folder")
    writer = _Writer(out_dir, segment_seconds, window, sequence, stats, disk)
    segmenter = Segmenter(segment_seconds, has_video=stream.has_video)
    if sequence:
        segmenter.mark_discontinuity()  # a restart: whatever came before is not continuous
    lock = trio.Lock()  # the writes of the frame loop and of the idle flush never interleave
    last = [trio.current_time(), wall_clock()]  # arrival of the latest frame: monotonic, wall

    arrived = [trio.Event()]  # set by the frame loop: a silence after it is worth watching

    async def flush_when_idle() -> None:
        """Checked at each read tick (no timer per stream, whose expiry costs a cancellation),
        and only after frames came: a stream without a source leaves the ticker asleep."""
        ticker = ReadTicker.current()

        def silent(now: float) -> bool:
            # frames waiting for the loop (stuck behind a slow write) are not a silence
            return now - last[0] >= IDLE_FLUSH_SECONDS and not subscription.queued

        while True:
            await arrived[0].wait()
            arrived[0] = trio.Event()
            await ticker.read(silent)
            if not silent(trio.current_time()):
                continue  # frames came since the tick that saw the silence
            segments = segmenter.flush()
            if segments:
                # Lock.acquire takes a free lock before yielding: this write goes first
                async with lock:
                    await trio.to_thread.run_sync(writer.write, segments, segmenter,
                                                  wall_clock(), last[1])

    with stream.subscribe(name="hls") as subscription:
        task_status.started(stats)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flush_when_idle)
                first = True
                async for frame in subscription:
                    last[0] = trio.current_time()
                    last[1] = now = wall_clock()
                    arrived[0].set()
                    # One wakeup takes every frame queued (the source publishes a tick's
                    # frames at once); pushes do not await, so none interleaves a flush.
                    closed: list[list[Segment]] = []  # what each push closed
                    while True:
                        if first or frame.discontinuity:
                            # The source may have come back with other tracks.
                            segmenter.has_video = stream.has_video
                            first = False
                        segments = segmenter.push(frame)
                        if segments:
                            closed.append(segments)
                        try:
                            frame = subscription.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break  # the stream's end ends the loop at its next receive
                    if closed:
                        # Muxing is done; the file writes go to a thread so a slow disk never
                        # stalls the trio loop that also carries ingest. Each push's segments
                        # are listed as they were closed: one playlist write per push.
                        async with lock:
                            await trio.to_thread.run_sync(writer.write_each, closed, segmenter,
                                                          now)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(writer.finish, segmenter.flush(), segmenter,
                                              wall_clock())
                log.info("stream=%s hls closed, %d segments written", stream.name,
                         stats.segments_written)
