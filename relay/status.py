"""What the relay knows about each stream, and the JSON snapshot the web process serves.

Counters are plain attributes bumped by the drivers; ``snapshot`` turns them into the
``/api/streams`` document (rates from the difference to the previous snapshot). Only redacted
URLs ever enter this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay.bus import Stream
from relay.files import DiskErrors
from relay.media import Kind, Track


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
    hls: Any = None  # the HLS sink's stats object, if HLS is on
    rtmp: list[Any] = field(default_factory=list)  # one RtmpStats per destination
    disk: DiskErrors = field(init=False)  # failed writes of its HLS files and thumbnails

    def __post_init__(self) -> None:
        self.disk = DiskErrors(f"stream={self.name}")

    def count(self, track: Track, size: int) -> None:
        counters = self.tracks.get(track.index)
        if counters is None:
            counters = self.tracks[track.index] = TrackCounters()
        counters.frames += 1
        counters.bytes += size


class Snapshotter:
    """Builds snapshots; remembers the previous counters to report per-second rates."""

    def __init__(self) -> None:
        self._previous: dict[tuple[str, int], tuple[float, int, int]] = {}

    def snapshot(self, statuses: list[StreamStatus], now: float, wall: float) -> dict[str, Any]:
        return {"updated": wall, "streams": [self._stream(s, now) for s in statuses]}

    def _stream(self, status: StreamStatus, now: float) -> dict[str, Any]:
        tracks = []
        for index, track in sorted(status.stream.tracks.items()):
            counters = status.tracks.get(index, TrackCounters())
            key = (status.name, index)
            then, frames, size = self._previous.get(key, (now, counters.frames, counters.bytes))
            self._previous[key] = (now, counters.frames, counters.bytes)
            elapsed = now - then
            # max(0, ...): a stream re-added under the same name starts its counters anew
            fps = max(0, counters.frames - frames) / elapsed if elapsed > 0 else None
            bitrate = 8 * max(0, counters.bytes - size) / elapsed if elapsed > 0 else None
            entry: dict[str, Any] = {"kind": str(track.kind), "codec": str(track.codec)}
            if track.kind is Kind.VIDEO:
                entry.update(width=track.width or None, height=track.height or None)
                entry["fps"] = round(fps, 2) if fps is not None else None
            else:
                entry.update(sample_rate=track.sample_rate or track.clock_rate,
                             channels=track.channels or None)
            entry["bitrate"] = round(bitrate) if bitrate is not None else None
            entry["frames"] = counters.frames
            entry["bytes"] = counters.bytes
            entry["udp_receive_buffer"] = counters.udp_receive_buffer
            entry["index"] = index
            tracks.append(entry)
        hls = status.hls
        return {
            "name": status.name,
            "state": status.state,
            "source": status.source,
            "transport": status.transport,
            "tracks": tracks,
            "skipped_tracks": status.skipped_tracks,
            "packets_received": status.packets_received,
            "packets_lost": status.packets_lost,
            "packets_garbled": status.packets_garbled,
            "frames_dropped": status.frames_dropped,
            "frames_damaged": status.frames_damaged,
            "reconnects": status.reconnects,
            "transport_fallbacks": status.transport_fallbacks,
            "last_error": status.last_error,
            "disk_errors": status.disk.count,
            "disk_error": status.disk.last,
            "hls": f"/hls/{status.name}/index.m3u8" if hls is not None else None,
            "hls_segments": getattr(hls, "segments_written", None),
            "hls_bytes_written": getattr(hls, "bytes_written", None),
            "rtmp": [
                {
                    "destination": r.destination,
                    "state": r.state,
                    "last_error": r.last_error,
                    "bytes_sent": r.bytes_sent,
                    "frames_sent": r.frames_sent,
                    "frames_dropped": r.frames_dropped,
                    "reconnects": r.reconnects,
                    "warnings": r.warnings,
                }
                for r in status.rtmp
            ],
        }
