"""The per-packet pipeline of one source, sans-IO: RTP and RTCP bytes in, the stream's Frames out.

Per RTP packet: parse, reception statistics (RFC 3550 A.1, A.8: what receiver reports carry),
the reorder buffer (UDP only), loss detection once (``SequenceCheck``, whose count tells the
depacketizer what the loss broke), the depacketizer, then per frame the timeline (``place``),
decode times (``DtsExtractor``, video), output times (``stamp``) and the audio stage. Per RTCP
packet: sender reports tie the tracks' clocks together. Nothing here opens a socket or reads a
clock: the caller passes ``now``, so the RTSP driver, the tests and ``bench.hotpath`` drive the
very same object. A bad packet is a counter and a debug line, never an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from relay.audio.policy import AudioStage
from relay.errors import RemoteProtocolError
from relay.media import Frame, Kind, Track, restamp
from relay.rtp.dts import DtsExtractor
from relay.rtp.nal import NalDepacketizer
from relay.rtp.packet import RtpPacket
from relay.rtp.registry import Depacketizer
from relay.rtp.reorder import ReorderBuffer
from relay.rtp.rtcp import ReportBlock, SenderReport, middle_ntp, ntp_to_seconds, parse_compound
from relay.rtp.sequence import SEQ_MOD, SequenceCheck
from relay.rtp.sync import Timeline
from relay.rtp.timing import ReceptionStats

log = logging.getLogger("relay.ingest")

__all__ = ["IngestTrack", "SourceIngest"]


@dataclass(slots=True)
class IngestTrack:
    """One RTP stream of the source and the per-packet state it needs."""

    depacketizer: Depacketizer
    stats: ReceptionStats
    sequence: SequenceCheck
    reorder: ReorderBuffer | None  # UDP: packets may arrive out of order
    dts: DtsExtractor | None  # video: decode times from picture order counts
    remote_ssrc: int = 0
    last_sr: int = 0  # middle 32 bits of the last sender report's NTP time (RFC 3550 6.4.1)
    last_sr_at: float | None = None


class SourceIngest:
    """One session of one source: RTP/RTCP in, Frames on the stream's timeline out.

    Args:
        depacketizers: one per track, in track order (``track.index`` is the position).
        timeline: the stream's timeline, kept across sessions so decode times keep rising.
        audio: the stream's audio policy; its tracks for this session are computed here
            (``output_tracks``).
        epoch: the ``now`` the timeline counts from (the stream's start).
        reorder: put packets back in sequence order first (RTP over UDP).
        ssrcs: the SSRC of each track from SETUP (0 when not given), for receiver reports.
        discontinuity: mark the session's first frame as following a gap (a reconnect).
        name: the stream's name, for debug lines.
        channels: RTP over TCP: each interleaved channel's track index and whether it
            carries RTCP (``receive_interleaved``); other channels are ignored.

    Attributes:
        tracks: the source's tracks, in order.
        output_tracks: the tracks the stream carries (after the audio policy).
        last_media: ``now`` of the last RTP packet that parsed, None before the first.
        packets_received: RTP packets that parsed.
        packets_garbled: RTP packets that did not parse (payloads a depacketizer refused
            are in ``payloads_bad``).
        frames_refused: frames no decode time could be given (garbled slice headers...).
    """

    def __init__(
        self,
        depacketizers: Sequence[Depacketizer],
        timeline: Timeline,
        audio: AudioStage,
        *,
        epoch: float = 0.0,
        reorder: bool = False,
        ssrcs: Sequence[int] = (),
        discontinuity: bool = False,
        name: str = "",
        channels: Mapping[int, tuple[int, bool]] | None = None,
    ) -> None:
        self.tracks = [
            IngestTrack(
                d, ReceptionStats(d.track.clock_rate), SequenceCheck(),
                ReorderBuffer() if reorder else None,
                DtsExtractor() if d.track.kind is Kind.VIDEO else None,
            )
            for d in depacketizers
        ]
        for track, ssrc in zip(self.tracks, ssrcs, strict=False):
            track.remote_ssrc = ssrc
        self.timeline = timeline
        self.audio = audio
        self.epoch = epoch
        self.name = name
        self.channels = dict(channels or {})
        self.last_media: float | None = None
        self.packets_received = 0
        self.packets_garbled = 0
        self.frames_refused = 0
        self._discontinuity: bool | None = discontinuity  # None once the first frame is out
        timeline.reset()
        timeline.reference = next(
            (i for i, d in enumerate(depacketizers) if d.track.kind is Kind.VIDEO), None
        )
        for d in depacketizers:
            timeline.add_track(d.track.index, d.track.clock_rate)
        self.output_tracks: list[Track] = audio.tracks([d.track for d in depacketizers])

    def receive_interleaved(
        self, frames: Iterable[tuple[int, bytes | memoryview]], now: float
    ) -> list[Frame]:
        """A read's interleaved frames, (channel, data) in order as
        ``MessageReader.take_interleaved`` gives them, at ``now``: the frames to publish, in
        order. One call per read, not per packet."""
        channels = self.channels
        out: list[Frame] = []
        for channel, data in frames:
            entry = channels.get(channel)
            if entry is None:
                continue
            index, is_rtcp = entry
            if is_rtcp:
                self.receive_rtcp(index, data, now)
            else:
                ready = self.receive_rtp(index, data, now)
                if ready:
                    out += ready
        return out

    def receive_rtp(self, index: int, data: bytes | memoryview, now: float) -> list[Frame]:
        """One RTP packet of track ``index`` arrived at ``now`` (seconds, the epoch's clock);
        returns the frames to publish, in order."""
        try:
            packet = RtpPacket.parse(data)
        except RemoteProtocolError as exc:
            self.packets_garbled += 1
            log.debug("stream=%s garbled RTP: %s", self.name, exc)
            return []
        self.last_media = now
        self.packets_received += 1
        track = self.tracks[index]
        track.stats.update(packet.sequence, packet.timestamp, now)
        if track.reorder is None:
            return self._depacketize(track, packet, now)
        out: list[Frame] = []
        for ready in track.reorder.push(packet, now):
            out += self._depacketize(track, ready, now)
        return out

    def deadline(self, index: int) -> float | None:
        """When ``release_due`` has packets of track ``index`` to give up waiting for."""
        reorder = self.tracks[index].reorder
        return None if reorder is None else reorder.deadline()

    def release_due(self, index: int, now: float) -> list[Frame]:
        """The frames of packets held past their wait for a missing one (UDP)."""
        track = self.tracks[index]
        out: list[Frame] = []
        if track.reorder is not None:
            for packet in track.reorder.release_due(now):
                out += self._depacketize(track, packet, now)
        return out

    def receive_rtcp(self, index: int, data: bytes | memoryview, now: float) -> None:
        """One RTCP compound packet about track ``index``: sender reports align the tracks."""
        try:
            packets = parse_compound(data)
        except RemoteProtocolError as exc:
            log.debug("stream=%s garbled RTCP: %s", self.name, exc)
            return
        track = self.tracks[index]
        for packet in packets:
            if isinstance(packet, SenderReport):
                track.last_sr = middle_ntp(packet.ntp_timestamp)
                track.last_sr_at = now
                self.timeline.sender_report(
                    index, packet.rtp_timestamp, ntp_to_seconds(packet.ntp_timestamp)
                )

    def report_blocks(self, now: float) -> list[ReportBlock]:
        """A receiver report block per track (RFC 3550 6.4.2), in track order; each starts a
        new interval for ``fraction_lost``."""
        blocks = []
        for track in self.tracks:
            dlsr = 0 if track.last_sr_at is None else int((now - track.last_sr_at) * 65536)
            blocks.append(track.stats.report_block(track.remote_ssrc, track.last_sr, dlsr))
        return blocks

    @property
    def packets_lost(self) -> int:
        return sum(t.stats.lost for t in self.tracks)

    @property
    def payloads_bad(self) -> int:
        """RTP payloads their depacketizer could not parse."""
        return sum(t.depacketizer.bad for t in self.tracks)

    @property
    def frames_dropped(self) -> int:
        """Frames lost in depacketizing or refused a decode time."""
        return self.frames_refused + sum(t.depacketizer.dropped for t in self.tracks)

    @property
    def frames_damaged(self) -> int:
        """Video frames kept with what arrived of them (docs/loss.md)."""
        return sum(t.depacketizer.damaged for t in self.tracks
                   if isinstance(t.depacketizer, NalDepacketizer))

    @property
    def oversized_parameter_sets(self) -> int:
        return sum(t.depacketizer.oversized_parameter_sets for t in self.tracks
                   if isinstance(t.depacketizer, NalDepacketizer))

    def _depacketize(self, track: IngestTrack, packet: RtpPacket, now: float) -> list[Frame]:
        check, sequence = track.sequence, packet.sequence
        if sequence == check.expected:  # the common case inline: one call less per packet
            check.expected = (sequence + 1) % SEQ_MOD
            lost = 0
        else:
            lost = check.lost_before(sequence)
            if lost < 0:
                return []  # a duplicate or a straggler
        frames = track.depacketizer.push(packet, lost)
        if not frames:
            return frames  # most packets complete nothing
        out: list[Frame] = []
        for frame in frames:
            self._stage(track, frame, now, out)
        return out

    def _stage(self, track: IngestTrack, frame: Frame, now: float, out: list[Frame]) -> None:
        """Puts one frame on the timeline and through the audio stage."""
        index = frame.track.index
        pts = self.timeline.place(index, frame.pts, now - self.epoch)
        dts = pts
        if track.dts is not None:
            try:
                dts = track.dts.extract(frame, pts)
            except RemoteProtocolError as exc:
                self.frames_refused += 1
                log.debug("stream=%s frame dropped: %s", self.name, exc)
                return
        pts, dts = self.timeline.stamp(index, pts, dts)
        discontinuity = frame.discontinuity
        if self._discontinuity is not None:
            discontinuity, self._discontinuity = self._discontinuity, None
        # the depacketizer's frame is ours alone until published: given its times in place,
        # not built a second time
        out += self.audio.push(restamp(frame, pts, dts, discontinuity))
