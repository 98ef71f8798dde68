"""The relay-to-web status contract: one typed, versioned snapshot (msgspec Structs).

The relay process builds a ``Snapshot`` about once a second (relay/status.py) and writes it,
JSON-encoded, to a file private to the relay and its web process; the web process decodes it and
makes ``/api/streams`` and ``/metrics`` from it alone. Both processes import this module, so a
renamed field is a type error on both sides, never a key that silently reads as missing. It
imports only msgspec and the standard library: web/ never imports trio.

``SCHEMA_VERSION`` changes with any change that a reader of the previous version would misread
(a field removed, renamed or retyped). A field added with a default does not change it: a reader
of the old version ignores it, and a new reader fills the default in.
"""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
"""The largest snapshot the web process reads (several thousand streams); a larger one is
refused, not read."""


class TrackSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One media track of a stream: what it carries and what arrived of it."""

    index: int
    kind: str  # video | audio
    codec: str
    width: int | None = None  # video only
    height: int | None = None
    fps: float | None = None  # over the last snapshot interval
    sample_rate: int | None = None  # audio only
    channels: int | None = None
    bitrate: int | None = None  # bits per second over the last snapshot interval
    frames: int = 0
    bytes: int = 0
    udp_receive_buffer: int | None = None  # bytes the kernel granted its RTP socket (UDP)


class RtmpSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One RTMP destination of a stream."""

    destination: str  # redacted: no stream key, no credentials
    state: str  # connecting | publishing | retrying | stopped
    last_error: str | None = None
    bytes_sent: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    warnings: tuple[str, ...] = ()  # what the destination will not play as sent


class LlHlsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A stream's LL-HLS muxer: its configured mode, whether it runs now, and its counters
    (kept across its on-demand runs and restarts)."""

    mode: str  # on-demand | always | off
    running: bool = False  # writing parts now (on demand: while someone reads ll.m3u8)
    parts_written: int = 0
    restarts: int = 0  # new LL streams after a discontinuity (numbers from 0 again)
    overlong_parts: int = 0  # parts longer than PART-TARGET (a single frame that long)
    short_parts: int = 0  # parts under 85 % of PART-TARGET, neither independent nor last
    cuts_without_keyframe: int = 0  # segments cut where no keyframe came in time


class StreamSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One stream: its source's state and counters, and those of its sinks."""

    name: str
    position: int = 0  # its place in the config file: workers' snapshots merge in this order
    state: str  # connecting | playing | retrying | stopped
    source: str  # redacted
    transport: str | None = None  # tcp | udp, once playing
    tracks: tuple[TrackSnapshot, ...] = ()
    skipped_tracks: tuple[str, ...] = ()  # tracks of the source that no output can carry
    packets_received: int = 0
    packets_lost: int = 0
    packets_garbled: int = 0
    frames_dropped: int = 0
    frames_damaged: int = 0  # kept with a lost fragment, for the decoder to conceal
    reconnects: int = 0
    transport_fallbacks: int = 0  # moves from UDP to TCP for sustained loss
    subscriber_drops: int = 0  # frames the bus's consumers (HLS, RTMP...) lost by falling behind
    gop_cache_overflows: int = 0  # GOPs too large for the bus's GOP cache
    last_error: str | None = None
    disk_errors: int = 0  # failed writes of its HLS files and thumbnails
    disk_error: str | None = None  # the last one: KIND FILE: REASON
    hls: str | None = None  # the playlist's URL path, if HLS is on
    hls_segments: int | None = None  # None when HLS is off
    hls_bytes_written: int | None = None
    hls_target_duration: int | None = None  # EXT-X-TARGETDURATION, once the first segment is out
    hls_target_warning: str | None = None  # why it is longer than configured, or segments start
    # without keyframes: the camera's GOP (said once)
    ll_hls: LlHlsSnapshot | None = None  # None from a relay that does not say
    rtmp: tuple[RtmpSnapshot, ...] = ()
    hls_push: str | None = None
    """The origin URL the web process PUTs HLS to, credentials included: the snapshot file is
    private, and the web process shows this URL only redacted."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the relay process tells its web process, at one instant."""

    updated: float  # Unix time of this snapshot
    streams: tuple[StreamSnapshot, ...] = ()
    disk_errors: int = 0  # failed writes of the snapshot itself (the previous one stays)
    disk_error: str | None = None
    schema_version: int = SCHEMA_VERSION


class SnapshotError(ValueError):
    """A snapshot the web process cannot use; the message is one line saying why."""


class _Version(msgspec.Struct):
    """The only field read before the version is known to match."""

    schema_version: int | None = None


_ENCODER = msgspec.json.Encoder()
_VERSION_DECODER = msgspec.json.Decoder(_Version)
_DECODER = msgspec.json.Decoder(Snapshot)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as the JSON document the relay writes."""
    return _ENCODER.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """Read a snapshot the relay wrote, checking its size, version and every field's type.

    Raises:
        SnapshotError: too large, not JSON, another schema version, or a field of the wrong
            type (msgspec names it, e.g. ``$.streams[0].packets_lost``).
    """
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"over {MAX_SNAPSHOT_BYTES} bytes")
    try:
        version = _VERSION_DECODER.decode(data).schema_version
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not a status snapshot: {exc}") from None
    if version != SCHEMA_VERSION:
        found = "no schema version" if version is None else f"schema version {version}"
        raise SnapshotError(f"{found}, this web process reads version {SCHEMA_VERSION}: the "
                            "relay and its web process come from different installs")
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not a status snapshot: {exc}") from None
