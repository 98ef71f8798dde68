"""``/metrics`` in the Prometheus text format (exposition format 0.0.4), via prometheus-client.

The relay's figures are not kept here: a custom collector turns the latest status snapshot
(the typed ``Snapshot`` of relay/status_schema.py; the tables below name the field each metric
reads) into metric families on each scrape, so the web process holds no second copy that could
drift. What only the web process sees is counted in ``ServingStats``: HLS requests and bytes
served per stream, and HLS viewers (distinct clients that fetched a stream's playlist within
``VIEWER_WINDOW`` seconds). Counters restart from zero with their process, as Prometheus
expects (``rate()`` handles resets).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from relay.status_schema import (
    LlHlsSnapshot,
    RtmpSnapshot,
    Snapshot,
    StreamSnapshot,
    TrackSnapshot,
)

if TYPE_CHECKING:
    from web.push import PushStats

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
STREAM_STATES = ("connecting", "playing", "retrying", "stopped")
RTMP_STATES = ("connecting", "publishing", "retrying", "stopped")
PUSH_STATES = ("starting", "ok", "retrying")
LL_HLS_MODES = ("on-demand", "always", "off")
VIEWER_WINDOW = 30.0
MAX_CLIENTS_PER_STREAM = 10_000
"""Viewer bookkeeping per stream is bounded: past this many distinct clients the oldest go."""


@dataclass(slots=True)
class _StreamServing:
    playlist_requests: int = 0
    segment_requests: int = 0
    bytes_served: int = 0
    clients: dict[bytes, float] = field(default_factory=dict)  # client digest -> last seen


class ServingStats:
    """What the web process served, per stream (a stream is an HLS folder name)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.streams: dict[str, _StreamServing] = {}

    def served(self, stream: str, playlist: bool, size: int, client: str) -> None:
        """Count one HLS response of ``size`` body bytes; a playlist fetch marks a viewer."""
        entry = self.streams.get(stream)
        if entry is None:
            entry = self.streams[stream] = _StreamServing()
        entry.bytes_served += size
        if not playlist:
            entry.segment_requests += 1
            return
        entry.playlist_requests += 1
        key = hashlib.blake2b(client.encode(errors="replace"), digest_size=12).digest()
        entry.clients.pop(key, None)  # re-insert: the dict stays ordered by last fetch
        entry.clients[key] = self.clock()
        if len(entry.clients) > MAX_CLIENTS_PER_STREAM:
            self._expire(entry)
            while len(entry.clients) > MAX_CLIENTS_PER_STREAM:
                del entry.clients[next(iter(entry.clients))]

    def _expire(self, entry: _StreamServing) -> None:
        horizon = self.clock() - VIEWER_WINDOW
        while entry.clients:
            oldest = next(iter(entry.clients))
            if entry.clients[oldest] >= horizon:
                break
            del entry.clients[oldest]

    def viewers(self, stream: str) -> int:
        """Distinct clients that fetched the stream's playlist in the last 30 s."""
        entry = self.streams.get(stream)
        if entry is None:
            return 0
        self._expire(entry)
        return len(entry.clients)

    def figures(self, stream: str) -> dict[str, int]:
        """The per-stream serving figures /api/streams adds to each stream."""
        entry = self.streams.get(stream) or _StreamServing()
        return {
            "hls_viewers": self.viewers(stream),
            "hls_requests": entry.playlist_requests + entry.segment_requests,
            "hls_bytes_served": entry.bytes_served,
        }


StreamCounter = tuple[str, str, Callable[[StreamSnapshot], int]]
STREAM_COUNTERS: tuple[StreamCounter, ...] = (
    ("packets_received", "RTP packets received from the source", lambda s: s.packets_received),
    ("packets_lost", "RTP packets the source sent that never arrived", lambda s: s.packets_lost),
    ("packets_garbled", "Packets from the source that did not parse",
     lambda s: s.packets_garbled),
    ("frames_dropped", "Frames the source side dropped", lambda s: s.frames_dropped),
    ("frames_damaged", "Frames kept with a lost fragment, for the decoder to conceal",
     lambda s: s.frames_damaged),
    ("reconnects", "Times the source was reconnected", lambda s: s.reconnects),
    ("transport_fallbacks", "Moves from RTP over UDP to TCP for sustained loss",
     lambda s: s.transport_fallbacks),
    ("subscriber_drops", "Frames the relay's own consumers (HLS, RTMP, thumbnails) lost by "
     "falling behind", lambda s: s.subscriber_drops),
    ("gop_cache_overflows", "GOPs too large for the bus's GOP cache (new consumers then wait for "
     "a keyframe)", lambda s: s.gop_cache_overflows),
    ("disk_errors", "Writes of the stream's HLS files and thumbnails that failed (each retried "
     "with the next one)", lambda s: s.disk_errors),
)
"""``relay_stream_NAME``: help text, and the snapshot field it counts."""

TrackFigure = tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str,
                    Callable[[TrackSnapshot], float | None]]
TRACK_FIGURES: tuple[TrackFigure, ...] = (
    (CounterMetricFamily, "relay_stream_frames_in", "Frames received from the source, per track",
     lambda t: t.frames),
    (CounterMetricFamily, "relay_stream_bytes_in",
     "Media bytes received from the source, per track", lambda t: t.bytes),
    (GaugeMetricFamily, "relay_stream_fps", "Video frames per second over the last second",
     lambda t: t.fps),
    (GaugeMetricFamily, "relay_stream_bitrate_bps",
     "Media bits per second over the last second, per track", lambda t: t.bitrate),
    (GaugeMetricFamily, "relay_stream_udp_receive_buffer_bytes", "Receive buffer the kernel "
     "granted the track's RTP socket (RTP over UDP)", lambda t: t.udp_receive_buffer),
)
"""Per-track families (labels stream, track, kind, codec): the snapshot field each reports."""

RtmpCounter = tuple[str, str, Callable[[RtmpSnapshot], int]]
RTMP_COUNTERS: tuple[RtmpCounter, ...] = (
    ("frames_sent", "Frames sent to the RTMP destination (frames out of this sink)",
     lambda r: r.frames_sent),
    ("frames_dropped", "Frames dropped for the RTMP destination (it fell behind)",
     lambda r: r.frames_dropped),
    ("bytes_sent", "Bytes sent to the RTMP destination", lambda r: r.bytes_sent),
    ("reconnects", "Times the RTMP destination was reconnected", lambda r: r.reconnects),
)
"""``relay_rtmp_NAME``: help text, and the snapshot field it counts."""

LlHlsCounter = tuple[str, str, Callable[[LlHlsSnapshot], int]]
LL_HLS_COUNTERS: tuple[LlHlsCounter, ...] = (
    ("parts_written", "LL-HLS parts the muxer wrote", lambda ll: ll.parts_written),
    ("restarts", "New LL-HLS streams after a discontinuity (part numbers from 0 again)",
     lambda ll: ll.restarts),
    ("overlong_parts", "LL-HLS parts longer than PART-TARGET (one frame that long)",
     lambda ll: ll.overlong_parts),
    ("short_parts", "LL-HLS parts under 85 % of PART-TARGET (uneven frame times)",
     lambda ll: ll.short_parts),
    ("cuts_without_keyframe", "LL-HLS segments cut where no keyframe came in time",
     lambda ll: ll.cuts_without_keyframe),
)
"""``relay_ll_hls_NAME``: help text, and the snapshot field it counts."""


def _state(family: GaugeMetricFamily, labels: list[str], current: str,
           known: tuple[str, ...]) -> None:
    """One sample per known state (and the current one, if new): 1 for the current."""
    for name in known if current in known else (*known, current):
        family.add_metric([*labels, name], 1.0 if name == current else 0.0)


class SnapshotCollector:
    """Builds every metric family from the snapshot and the serving figures at scrape time."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        serving: ServingStats,
        push: Callable[[str], PushStats | None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.snapshot = snapshot
        self.serving = serving
        self.push = push
        self.wall_clock = wall_clock

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        up = GaugeMetricFamily("relay_status_up",
                               "1 if the relay's status snapshot could be read")
        up.add_metric([], 1.0 if snapshot is not None else 0.0)
        yield up
        streams = snapshot.streams if snapshot is not None else ()
        if snapshot is not None:
            age = GaugeMetricFamily("relay_status_age_seconds",
                                    "Seconds since the relay last wrote its status snapshot")
            age.add_metric([], max(0.0, self.wall_clock() - snapshot.updated))
            yield age
            failed = CounterMetricFamily("relay_status_disk_errors", "Status snapshot writes "
                                         "that failed (this process kept the previous one)")
            failed.add_metric([], snapshot.disk_errors)
            yield failed
        yield from self._streams(streams)
        yield from self._tracks(streams)
        yield from self._rtmp(streams)
        yield from self._hls(streams)
        yield from self._ll_hls(streams)

    def _streams(self, streams: tuple[StreamSnapshot, ...]) -> Iterator[Metric]:
        state = GaugeMetricFamily("relay_stream_state",
                                  "1 for the stream's current state, 0 for the others",
                                  labels=["stream", "state"])
        counters = [(CounterMetricFamily(f"relay_stream_{key}", text, labels=["stream"]), read)
                    for key, text, read in STREAM_COUNTERS]
        for s in streams:
            _state(state, [s.name], s.state, STREAM_STATES)
            for family, read in counters:
                family.add_metric([s.name], read(s))
        yield state
        yield from (family for family, _ in counters)

    def _tracks(self, streams: tuple[StreamSnapshot, ...]) -> Iterator[Metric]:
        labels = ["stream", "track", "kind", "codec"]
        families = [(kind(name, text, labels=labels), read)
                    for kind, name, text, read in TRACK_FIGURES]
        for s in streams:
            for track in s.tracks:
                values = [s.name, str(track.index), track.kind, track.codec]
                for family, read in families:
                    value = read(track)
                    if value is not None:
                        family.add_metric(values, value)
        yield from (family for family, _ in families)

    def _rtmp(self, streams: tuple[StreamSnapshot, ...]) -> Iterator[Metric]:
        labels = ["stream", "destination"]
        state = GaugeMetricFamily("relay_rtmp_state", "1 for the RTMP destination's current "
                                  "state, 0 for the others", labels=[*labels, "state"])
        counters = [(CounterMetricFamily(f"relay_rtmp_{key}", text, labels=labels), read)
                    for key, text, read in RTMP_COUNTERS]
        for s in streams:
            for dest in s.rtmp:
                values = [s.name, dest.destination]  # redacted by the relay
                _state(state, values, dest.state, RTMP_STATES)
                for family, read in counters:
                    family.add_metric(values, read(dest))
        yield state
        yield from (family for family, _ in counters)

    def _hls(self, streams: tuple[StreamSnapshot, ...]) -> Iterator[Metric]:
        segments = CounterMetricFamily("relay_hls_segments_written",
                                       "HLS segments the relay wrote", labels=["stream"])
        written = CounterMetricFamily("relay_hls_bytes_written", "MPEG-TS bytes the relay "
                                      "wrote to HLS segments", labels=["stream"])
        target = GaugeMetricFamily("relay_hls_target_duration_seconds", "EXT-X-TARGETDURATION "
                                   "of the stream's playlist (above the configured segment "
                                   "length only when the camera's GOP is)", labels=["stream"])
        requests = CounterMetricFamily("relay_hls_requests", "HLS requests served",
                                       labels=["stream", "file"])
        served = CounterMetricFamily("relay_hls_bytes_served", "HLS body bytes served",
                                     labels=["stream"])
        viewers = GaugeMetricFamily("relay_hls_viewers", "Distinct clients that fetched the "
                                    "playlist in the last 30 s", labels=["stream"])
        push_state = GaugeMetricFamily("relay_hls_push_state", "1 for the HLS push's current "
                                       "state, 0 for the others",
                                       labels=["stream", "origin", "state"])
        pushed = CounterMetricFamily("relay_hls_push_segments", "Segments PUT to the origin",
                                     labels=["stream", "origin"])
        deleted = CounterMetricFamily("relay_hls_push_deletes", "Expired segments DELETEd "
                                      "from the origin", labels=["stream", "origin"])
        failures = CounterMetricFamily("relay_hls_push_failures", "Failed push attempts "
                                       "(each retried)", labels=["stream", "origin"])
        latency = GaugeMetricFamily("relay_hls_push_latency_seconds", "From the playlist's "
                                    "local write to its PUT finishing, last push",
                                    labels=["stream", "origin"])
        names = [s.name for s in streams]
        names += [n for n in self.serving.streams if n not in names]
        for s in streams:
            if s.hls_segments is not None:
                segments.add_metric([s.name], s.hls_segments)
            if s.hls_bytes_written is not None:
                written.add_metric([s.name], s.hls_bytes_written)
            if s.hls_target_duration is not None:
                target.add_metric([s.name], s.hls_target_duration)
        for name in names:
            entry = self.serving.streams.get(name)
            if entry is not None:
                requests.add_metric([name, "playlist"], entry.playlist_requests)
                requests.add_metric([name, "segment"], entry.segment_requests)
                served.add_metric([name], entry.bytes_served)
            viewers.add_metric([name], self.serving.viewers(name))
            push = self.push(name)
            if push is not None:
                values = [name, push.url]
                for state in PUSH_STATES:
                    push_state.add_metric([*values, state], 1.0 if push.state == state else 0.0)
                pushed.add_metric(values, push.segments_pushed)
                deleted.add_metric(values, push.segments_deleted)
                failures.add_metric(values, push.failures)
                if push.last_latency is not None:
                    latency.add_metric(values, push.last_latency)
        yield from (segments, written, target, requests, served, viewers, push_state, pushed,
                    deleted, failures, latency)


    def _ll_hls(self, streams: tuple[StreamSnapshot, ...]) -> Iterator[Metric]:
        mode = GaugeMetricFamily("relay_ll_hls_mode", "1 for the stream's configured ll_hls "
                                 "mode, 0 for the others", labels=["stream", "mode"])
        running = GaugeMetricFamily("relay_ll_hls_running", "1 while the stream's LL-HLS "
                                    "muxer writes parts", labels=["stream"])
        counters = [(CounterMetricFamily(f"relay_ll_hls_{key}", text, labels=["stream"]), read)
                    for key, text, read in LL_HLS_COUNTERS]
        for s in streams:
            ll = s.ll_hls
            if ll is None:
                continue
            _state(mode, [s.name], ll.mode, LL_HLS_MODES)
            running.add_metric([s.name], 1.0 if ll.running else 0.0)
            for family, read in counters:
                family.add_metric([s.name], read(ll))
        yield mode
        yield running
        yield from (family for family, _ in counters)


def make_registry(collector: SnapshotCollector) -> CollectorRegistry:
    """A private registry holding only the snapshot collector (no process-global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format 0.0.4."""
    return generate_latest(registry)
