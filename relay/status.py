"""What the relay knows about each stream, and the snapshot of it the web process serves.

Counters are plain attributes bumped by the drivers; ``Snapshotter.snapshot`` turns them into
the typed ``Snapshot`` of relay/status_schema.py (rates from the difference to the previous
snapshot). Only redacted URLs ever enter this module, except a stream's HLS push URL, which goes
to the private snapshot file for the web process alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relay.files import DiskErrors
from relay.media import Kind, Track
from relay.status_schema import (
    LlHlsSnapshot,
    RtmpSnapshot,
    Snapshot,
    StreamSnapshot,
    TrackSnapshot,
)

if TYPE_CHECKING:
    from relay.bus import Stream
    from relay.drivers.hls_sink import HlsStats
    from relay.drivers.ll_hls_sink import LlStats
    from relay.drivers.rtmp_sink import RtmpStats


@dataclass(slots=True)
class TrackCounters:
    frames: int = 0
    bytes: int = 0
    udp_receive_buffer: int | None = None  # bytes the kernel granted its RTP socket (UDP only)


@dataclass(slots=True)
class StreamStatus:
    """Live state of one stream, written by its drivers."""

    name: str
    source: str  # redacted
    stream: Stream
    state: str = "connecting"  # connecting | playing | retrying | stopped
    last_error: str | None = None
    transport: str | None = None
    packets_received: int = 0
    packets_lost: int = 0
    packets_garbled: int = 0
    frames_dropped: int = 0
    frames_damaged: int = 0  # kept with a lost fragment, for the decoder to conceal
    reconnects: int = 0
    transport_fallbacks: int = 0  # moves from UDP to TCP for sustained loss (transport auto)
    skipped_tracks: list[str] = field(default_factory=list)
    tracks: dict[int, TrackCounters] = field(default_factory=dict)
    hls: HlsStats | None = None  # the HLS sink's counters, if HLS is on
    ll_hls: LlStats | None = None  # the LL-HLS muxer's mode and counters
    rtmp: list[RtmpStats] = field(default_factory=list)  # one per destination
    disk: DiskErrors = field(init=False)  # failed writes of its HLS files and thumbnails
    position: int = 0  # its place in the config file: the API's order across worker processes

    def __post_init__(self) -> None:
        self.disk = DiskErrors(f"stream={self.name}")

    def count(self, track: Track, size: int) -> None:
        counters = self.tracks.get(track.index)
        if counters is None:
            counters = self.tracks[track.index] = TrackCounters()
        counters.frames += 1
        counters.bytes += size


class Snapshotter:
    """Builds snapshots; remembers the previous counters to report per-second rates.

    Args:
        redact: scrubs the configured secrets from error texts, which leave the process here.
    """

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._previous: dict[tuple[str, int], tuple[float, int, int]] = {}

    def snapshot(self, statuses: list[StreamStatus], now: float, wall: float,
                 disk: DiskErrors, hls_push: Callable[[str], str | None]) -> Snapshot:
        """The snapshot of ``statuses`` at ``now`` (monotonic) and ``wall`` (Unix time).

        Args:
            statuses: the running streams, in the order the API lists them.
            now: the clock the rates are measured on.
            wall: Unix time, the snapshot's ``updated``.
            disk: the snapshot file's own failed writes.
            hls_push: a stream's HLS push URL (credentials included), or None.
        """
        return Snapshot(updated=wall, disk_errors=disk.count, disk_error=disk.last,
                        streams=tuple(self._stream(s, now, hls_push(s.name)) for s in statuses))

    def _track(self, status: StreamStatus, track: Track, now: float) -> TrackSnapshot:
        counters = status.tracks.get(track.index, TrackCounters())
        key = (status.name, track.index)
        then, frames, size = self._previous.get(key, (now, counters.frames, counters.bytes))
        self._previous[key] = (now, counters.frames, counters.bytes)
        elapsed = now - then
        # max(0, ...): a stream re-added under the same name starts its counters anew
        fps = max(0, counters.frames - frames) / elapsed if elapsed > 0 else None
        bitrate = 8 * max(0, counters.bytes - size) / elapsed if elapsed > 0 else None
        video = track.kind is Kind.VIDEO
        return TrackSnapshot(
            index=track.index, kind=str(track.kind), codec=str(track.codec),
            width=track.width or None if video else None,
            height=track.height or None if video else None,
            fps=round(fps, 2) if video and fps is not None else None,
            sample_rate=None if video else track.sample_rate or track.clock_rate,
            channels=None if video else track.channels or None,
            bitrate=round(bitrate) if bitrate is not None else None,
            frames=counters.frames, bytes=counters.bytes,
            udp_receive_buffer=counters.udp_receive_buffer)

    def _stream(self, status: StreamStatus, now: float, hls_push: str | None) -> StreamSnapshot:
        hls = status.hls
        redact = self._redact
        bus = status.stream.statistics()
        return StreamSnapshot(
            name=status.name,
            position=status.position,
            state=status.state,
            source=status.source,
            transport=status.transport,
            tracks=tuple(self._track(status, track, now)
                         for _, track in sorted(status.stream.tracks.items())),
            skipped_tracks=tuple(status.skipped_tracks),
            packets_received=status.packets_received,
            packets_lost=status.packets_lost,
            packets_garbled=status.packets_garbled,
            frames_dropped=status.frames_dropped,
            frames_damaged=status.frames_damaged,
            reconnects=status.reconnects,
            transport_fallbacks=status.transport_fallbacks,
            subscriber_drops=bus.subscriber_drops,
            gop_cache_overflows=bus.gop_cache_overflows,
            last_error=redact(status.last_error) if status.last_error else None,
            disk_errors=status.disk.count,
            disk_error=status.disk.last,
            hls=f"/hls/{status.name}/index.m3u8" if hls is not None else None,
            hls_segments=hls.segments_written if hls is not None else None,
            hls_bytes_written=hls.bytes_written if hls is not None else None,
            hls_target_duration=hls.target_duration if hls is not None else None,
            hls_target_warning=hls.target_warning if hls is not None else None,
            ll_hls=_ll_hls(status.ll_hls),
            rtmp=tuple(
                RtmpSnapshot(destination=r.destination, state=r.state,
                             last_error=redact(r.last_error) if r.last_error else None,
                             bytes_sent=r.bytes_sent, frames_sent=r.frames_sent,
                             frames_dropped=r.frames_dropped, reconnects=r.reconnects,
                             warnings=tuple(r.warnings))
                for r in status.rtmp),
            hls_push=hls_push,
        )


def _ll_hls(stats: LlStats | None) -> LlHlsSnapshot | None:
    if stats is None:
        return None
    return LlHlsSnapshot(mode=stats.mode, running=stats.running,
                         parts_written=stats.parts_written, restarts=stats.restarts,
                         overlong_parts=stats.overlong_parts,
                         short_parts=stats.short_parts,
                         cuts_without_keyframe=stats.cuts_without_keyframe)
